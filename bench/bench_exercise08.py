"""Benchmark of exercise 08: test accuracies of the reference recipe, learning curve, runtime.

    python bench/bench_exercise08.py [--seeds 5] [--jobs 2] [--curve] [--going-further] [--notebook]

For every seed it trains, with the reference solution and the hyperparameters of the notebook's
hyperparameter cell (read from exercise_08/autoencoder.ipynb, so the two never drift apart):

- the autoencoder on the unlabeled images;
- "scratch, 100": a classifier from scratch on the 100 labeled training images (section 5);
- "frozen, 100": the pretrained encoder frozen, only the head trained (section 7, step 1);
- "fine-tune only, 100": the pretrained encoder fine-tuned at once, without step 1 (for
  comparison: what the head-first step is worth);
- "transfer, 100": step 1, then fine-tuning everything (section 7, step 2);
- "final transfer": the notebook's final model (pretrained, fine-tuned at once with
  augmentation on train + val labels while a consistency loss keeps learning from the unlabeled
  images, section 8);
- "final scratch": the same augmentation and labels from a fresh encoder, labels only (what a
  network without the unlabeled images gets: the comparison the notebook makes);
- "final scratch + unlabeled": a fresh encoder with everything the final model has except the
  pretraining (the same consistency loss on the unlabeled images): what the autoencoder's start
  adds on top of using the unlabeled images during the final training;

and measures each on the 10,000 official MNIST test images (public: anyone can download them).
The two final models are also measured on the private hidden test set that grading uses (the
official test images distorted with the course key, ``autograder.data.load_hidden_set``); the
bench prints by how much final transfer beats final scratch there (mean and minimum over seeds).
Only this instructor-side script reads either (run ``python -m autograder data`` first).

- ``--curve``: the learning curve, scratch vs transfer with the final recipe (augmentation, the
  same number of training steps) for CURVE_LABELS labeled images drawn class-balanced from the
  unlabeled pool (the bench knows their labels), measured on the private hidden set; it writes
  CURVE_FIGURE, the picture the notebook shows.
- ``--going-further``: section 10's experiment (virtual adversarial training with entropy
  minimization on the 100 labeled training images and the unlabeled ones) on the first
  GOING_FURTHER_SEEDS seeds: public test accuracy, seconds of wall and CPU time, on
  cpu_count // jobs torch threads; it checks that the model passes the hand-in rules by saving
  it as a student would.
- ``--notebook``: times the source notebook executed top to bottom with nbclient in a temporary
  copy.

The last line of the output is ``SUMMARY {json}`` for tools: per seed the final models'
accuracies as fractions (and going further's, else null), and the notebook's seconds (or null).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from autograder.data import load_hidden_set  # noqa: E402
from exercise_08.exercise_code import mnist_files, training  # noqa: E402
from exercise_08.exercise_code.augmentation import digit_augmentation  # noqa: E402
from exercise_08.exercise_code.data import load_split, split_file  # noqa: E402
from exercise_08.exercise_code.going_further import run_going_further  # noqa: E402
from exercise_08.exercise_code.networks import Autoencoder, Classifier, Encoder  # noqa: E402
from exercise_08.exercise_code.submission import save_model  # noqa: E402

NOTEBOOK = ROOT / "exercise_08" / "autoencoder.ipynb"
DATA = ROOT / "data"
RAW = DATA / "MNIST" / "raw"
PRIVATE = ("final transfer", "final scratch", "final scratch + unlabeled")
"""The runs also measured on the private hidden test set (the handed-in recipe and its control)."""
CURVE_LABELS = (10, 30, 100, 300, 1000)
"""Numbers of labeled images on the learning curve (10 % of them of each digit)."""
CURVE_FIGURE = ROOT / "exercise_08" / "figures" / "learning_curve.png"
"""The learning-curve picture the notebook shows (written by ``--curve``)."""
GOING_FURTHER_SEEDS = 3
"""``--going-further`` runs on the first seeds only (it takes minutes per seed)."""


def notebook_hyperparameters() -> dict:
    """The values of the notebook's hyperparameter cell (the cell that sets LATENT_DIM)."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "LATENT_DIM =" in "".join(c["source"]))
    values: dict = {}
    exec(source, {}, values)
    return values


def as_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 28, 28) and labels (N,) as float32 (N, 1, 28, 28) in [0, 1] and int64."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def public_test() -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000 official MNIST test images (public)."""
    return as_tensors(
        mnist_files.read_idx(RAW / "t10k-images-idx3-ubyte"),
        mnist_files.read_idx(RAW / "t10k-labels-idx1-ubyte"),
    )


def pool_labels() -> torch.Tensor:
    """The true labels of the unlabeled pool (instructor side: for the learning curve only)."""
    indices = json.loads(split_file(DATA, "unlabeled").read_bytes())
    labels = mnist_files.read_idx(RAW / "train-labels-idx1-ubyte")[indices]
    return torch.from_numpy(labels.astype(np.int64))


def balanced_subset(labels: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """``count // 10`` random indices of each digit in ``labels``, drawn with ``seed``."""
    generator = torch.Generator().manual_seed(10_000 + seed)
    per_class = [
        (labels == digit)
        .nonzero()
        .flatten()[torch.randperm(int((labels == digit).sum()), generator=generator)[: count // 10]]
        for digit in range(10)
    ]
    return torch.cat(per_class)


def final_steps_epochs(hp: dict, count: int) -> int:
    """Epochs for ``count`` labeled images that give the final recipe's number of steps."""
    steps = hp["FINAL_EPOCHS"] * -(-200 // 25)  # 200 labeled images, batches of 25
    return max(1, round(steps / -(-count // 25)))


def run_seed(seed: int, curve: bool, going_further: bool, going_further_threads: int = 1) -> dict:
    """Train the notebook's models with one seed; return their test accuracies.

    ``result[name]`` is the accuracy on the public test set, ``result[f"{name}, private"]`` (for
    the runs in PRIVATE) the one on the private hidden test set; with ``curve``,
    ``result["curve"][kind][count]`` the private accuracy of kind "scratch" / "transfer" with
    ``count`` labels. With ``going_further``, section 10 on the 100 labeled training images, on
    ``going_further_threads`` torch threads (the rest runs on one).
    """
    torch.set_num_threads(1)
    hp = notebook_hyperparameters()
    train, val = load_split("labeled_train"), load_split("labeled_val")
    unlabeled = load_split("unlabeled").images
    public = public_test()
    private = as_tensors(*load_hidden_set(DATA))
    all_labeled = (torch.cat([train.images, val.images]), torch.cat([train.labels, val.labels]))
    lr = hp["CLASSIFIER_LR"]
    result: dict = {"seed": seed}
    started = time.perf_counter()

    torch.manual_seed(seed)
    autoencoder = Autoencoder(hp["LATENT_DIM"], hp["HIDDEN_SIZES"])
    ae_strength = hp.get("AE_AUGMENTATION", 0)
    training.train_autoencoder(
        autoencoder,
        unlabeled[:-1000],
        unlabeled[-1000:],
        epochs=hp["AE_EPOCHS"],
        batch_size=hp["AE_BATCH_SIZE"],
        lr=hp["AE_LR"],
        loss_kind=hp["RECONSTRUCTION_LOSS"],
        seed=seed,
        **({"transform": digit_augmentation(ae_strength)} if ae_strength else {}),
    )
    result["ae_seconds"] = time.perf_counter() - started
    result["ae_mse"] = training.evaluate_autoencoder(autoencoder, unlabeled[-1000:])

    def fresh() -> Encoder:
        return Encoder(hp["LATENT_DIM"], hp["HIDDEN_SIZES"])

    def pretrained() -> Encoder:
        return copy.deepcopy(autoencoder.encoder)

    few_labels = {"train_data": (train.images, train.labels), "val_data": (val.images, val.labels)}
    final = {"train_data": all_labeled, "transform": digit_augmentation()}
    head_only = {"lr": hp["HEAD_LR"], "encoder_lr": 0.0}  # transfer, step 1
    head_100 = {**few_labels, **head_only, "epochs": hp["HEAD_EPOCHS"]}
    tune_100 = {
        **few_labels,
        "epochs": hp["CLASSIFIER_EPOCHS"],
        "lr": lr,
        "encoder_lr": hp["ENCODER_LR"],
    }
    labels_only = {**final, "epochs": hp["FINAL_EPOCHS"], "lr": lr, "encoder_lr": None}
    tune_final = {
        **labels_only,
        "encoder_lr": hp["FINAL_ENCODER_LR"],
        "unlabeled": unlabeled[:-1000],
        "unlabeled_batch_size": hp["UNLABELED_BATCH_SIZE"],
        "consistency_weight": hp["CONSISTENCY_WEIGHT"],
        "consistency_threshold": hp["CONSISTENCY_THRESHOLD"],
    }
    # name: (encoder, train_classifier options of each step, one after the other); scratch
    # runs train the fresh encoder at the head's rate (encoder_lr None)
    runs = {
        "scratch, 100": (fresh, [{**tune_100, "encoder_lr": None}]),
        "frozen, 100": (pretrained, [head_100]),
        "fine-tune only, 100": (pretrained, [tune_100]),
        "transfer, 100": (pretrained, [head_100, tune_100]),
        "final scratch": (fresh, [labels_only]),
        "final scratch + unlabeled": (fresh, [{**tune_final, "encoder_lr": None}]),
        "final transfer": (pretrained, [tune_final]),
    }
    models = {}
    for name, (encoder, steps) in runs.items():
        torch.manual_seed(seed)
        model = Classifier(encoder())
        for options in steps:
            training.train_classifier(model, seed=seed, **options)
        result[name] = training.accuracy(model, *public)
        if name in PRIVATE:
            result[f"{name}, private"] = training.accuracy(model, *private)
        models[name] = model
    result["margin, private"] = result["final transfer, private"] - result["final scratch, private"]
    if curve:
        labels = pool_labels()
        result["curve"] = {"scratch": {}, "transfer": {}}
        for count in CURVE_LABELS:
            chosen = balanced_subset(labels, count, seed)
            subset = {
                "train_data": (unlabeled[chosen], labels[chosen]),
                "epochs": final_steps_epochs(hp, count),
            }
            for kind, encoder, options in (
                ("scratch", fresh, labels_only),
                ("transfer", pretrained, tune_final),
            ):
                torch.manual_seed(seed)
                model = Classifier(encoder())
                training.train_classifier(model, seed=seed, **{**options, **subset})
                result["curve"][kind][count] = training.accuracy(model, *private)
    if going_further:
        torch.set_num_threads(going_further_threads)
        gf_started, gf_cpu = time.perf_counter(), time.process_time()
        model, log = run_going_further((train.images, train.labels), unlabeled, public, seed)
        result["going further seconds"] = time.perf_counter() - gf_started
        result["going further cpu seconds"] = time.process_time() - gf_cpu  # all its threads
        result["going further threads"] = going_further_threads
        result["going further load"] = os.getloadavg()[0]
        result["going further"] = log[-1]["accuracy"]
        result["checkpoints"] = {entry["step"]: round(entry["accuracy"], 4) for entry in log}
        with tempfile.TemporaryDirectory() as folder:
            save_model(model, Path(folder) / "classifier.pt2")  # the hand-in rules, or it raises
            result["going further rules"] = "passed"
    result["seconds"] = time.perf_counter() - started
    return result


def plot_learning_curve(results: list[dict], path: Path) -> None:
    """Private hidden-set accuracy against the number of labels: mean over seeds, and the band
    between the lowest and the highest seed; the final models (200 labels) as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    counts = list(CURVE_LABELS)
    for kind, final, colour in (
        ("scratch", "final scratch", "tab:orange"),
        ("transfer", "final transfer", "tab:blue"),
    ):
        values = np.array([[r["curve"][kind][c] for c in counts] for r in results])
        ax.plot(counts, values.mean(0), "o-", color=colour, label=f"{kind} (mean)")
        ax.fill_between(counts, values.min(0), values.max(0), color=colour, alpha=0.2)
        finals = [r[f"{final}, private"] for r in results]
        ax.errorbar(
            [200],
            [statistics.mean(finals)],
            yerr=[[statistics.mean(finals) - min(finals)], [max(finals) - statistics.mean(finals)]],
            fmt="s",
            color=colour,
            capsize=4,
            label=f"{final} (the notebook's 200 labels)",
        )
    ax.set_xscale("log")
    ax.set_xticks(counts + [200], [str(c) for c in counts + [200]])
    ax.set(
        xlabel="labeled training images (10% of each digit), log scale",
        ylabel="accuracy on the private hidden test set",
        title=f"Scratch vs pretrained encoder, augmented ({len(results)} seeds: mean, min-max)",
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def time_notebook() -> tuple[float, float, dict[str, float]]:
    """Execute the source notebook in a temporary copy.

    Returns (wall seconds, the kernel's CPU seconds, the slowest cells' wall seconds). On a busy
    shared machine the wall time says little; the kernel computes on one thread, so its CPU
    time is what the notebook takes on an otherwise idle core (kernel start not included).
    """
    import nbformat
    import psutil
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "exercise_08"
        shutil.copytree(
            NOTEBOOK.parent,
            folder,
            ignore=shutil.ignore_patterns("models", "*.zip", "__pycache__", ".ipynb_checkpoints"),
        )
        notebook = nbformat.read(folder / NOTEBOOK.name, as_version=4)
        cell_seconds: dict[str, float] = {}
        last = [time.perf_counter()]
        kernel_cpu = [0.0]

        def on_cell_executed(cell, cell_index, execute_reply) -> None:
            now = time.perf_counter()
            first_line = cell.source.splitlines()[0] if cell.source else ""
            cell_seconds[f"cell {cell_index} ({first_line[:30]})"] = now - last[0]
            last[0] = now
            times = psutil.Process(client.km.provisioner.pid).cpu_times()
            kernel_cpu[0] = times.user + times.system

        started = time.perf_counter()
        env_before = os.environ.pop("TQDM_DISABLE", None)
        try:
            client = NotebookClient(
                notebook,
                timeout=900,
                kernel_name="python3",
                resources={"metadata": {"path": str(folder)}},
                on_cell_executed=on_cell_executed,
            )
            client.execute()
        finally:
            if env_before is not None:
                os.environ["TQDM_DISABLE"] = env_before
        seconds = time.perf_counter() - started
    slowest = dict(sorted(cell_seconds.items(), key=lambda kv: -kv[1])[:4])
    return seconds, kernel_cpu[0], slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="seeds trained in parallel")
    parser.add_argument("--notebook", action="store_true", help="time the source notebook")
    parser.add_argument("--curve", action="store_true", help=f"learning curve -> {CURVE_FIGURE}")
    parser.add_argument(
        "--going-further",
        action="store_true",
        help=f"section 10, first {GOING_FURTHER_SEEDS} seeds",
    )
    args = parser.parse_args()

    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    notebook_seconds = notebook_cpu = None
    if args.notebook:
        notebook_seconds, notebook_cpu, slowest = time_notebook()
        print(
            f"notebook top to bottom: {notebook_seconds:.1f} s (load {os.getloadavg()[0]:.1f}), "
            f"the kernel's CPU time {notebook_cpu:.1f} s"
        )
        for name, cell in slowest.items():
            print(f"  {cell:5.1f} s  {name}")

    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(
                run_seed,
                seed,
                args.curve,
                args.going_further and seed < GOING_FURTHER_SEEDS,
                max(1, (os.cpu_count() or 1) // args.jobs),
            )
            for seed in range(args.seeds)
        ]
        results = [future.result() for future in futures]

    if results:
        print_tables(results, args.going_further)
    if results and args.curve:
        print_curve(results)
        plot_learning_curve(results, CURVE_FIGURE)
        print(f"wrote {CURVE_FIGURE}")
    summary = {
        "seeds": [
            {
                "seed": r["seed"],
                "final_transfer_private": r["final transfer, private"],
                "final_scratch_private": r["final scratch, private"],
                "final_transfer_public": r["final transfer"],
                "final_scratch_public": r["final scratch"],
                "final_scratch_unlabeled_private": r["final scratch + unlabeled, private"],
                "final_scratch_unlabeled_public": r["final scratch + unlabeled"],
                "going_further_public": r.get("going further"),
                "going_further_seconds": r.get("going further seconds"),
                "going_further_cpu_seconds": r.get("going further cpu seconds"),
            }
            for r in results
        ],
        "notebook_seconds": notebook_seconds,
        "notebook_cpu_seconds": notebook_cpu,
    }
    print("SUMMARY " + json.dumps(summary))


def print_tables(results: list[dict], going_further: bool) -> None:
    """The public table, the private/public table of the final models and the margins."""
    columns = [
        "scratch, 100",
        "frozen, 100",
        "fine-tune only, 100",
        "transfer, 100",
        "final scratch",
        "final scratch + unlabeled",
        "final transfer",
    ]
    if going_further:
        columns.append("going further")
    print("\npublic test accuracy (10,000 official MNIST test images)")
    print("| seed | " + " | ".join(columns) + " | AE mse | seconds |")
    print("|---" * (len(columns) + 3) + "|")
    for r in results:
        cells = [f"{r[c]:.4f}" if c in r else "" for c in columns]
        print(
            f"| {r['seed']} | " + " | ".join(cells) + f" | {r['ae_mse']:.4f} | {r['seconds']:.0f} |"
        )
    for label, summary in (("mean", statistics.mean), ("min", min)):
        cells = [f"{summary([r[c] for r in results if c in r]):.4f}" for c in columns]
        print(f"| {label} | " + " | ".join(cells) + " | | |")
    print("\nprivate hidden test set vs public test set (10,000 images each)")
    print("| seed | " + " | ".join(f"{c}: private | public" for c in PRIVATE) + " | margin |")
    print("|---" * (2 * len(PRIVATE) + 2) + "|")
    keys = [key for c in PRIVATE for key in (f"{c}, private", c)] + ["margin, private"]
    for r in results:
        cells = [f"{r[key]:.4f}" for key in keys[:-1]] + [f"{r['margin, private']:+.4f}"]
        print(f"| {r['seed']} | " + " | ".join(cells) + " |")
    for label, summary in (("mean", statistics.mean), ("min", min)):
        cells = [f"{summary([r[key] for r in results]):.4f}" for key in keys[:-1]]
        cells.append(f"{summary([r['margin, private'] for r in results]):+.4f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    margins = [r["margin, private"] for r in results]
    ahead = sum(m > 0 for m in margins)
    print(
        "final transfer - final scratch on the private hidden set: "
        f"mean {statistics.mean(margins):+.4f}, min {min(margins):+.4f} "
        f"(transfer ahead on {ahead} of {len(margins)} seeds)"
    )
    pretraining = [
        r["final transfer, private"] - r["final scratch + unlabeled, private"] for r in results
    ]
    print(
        "final transfer - final scratch + unlabeled (what the pretraining adds) on the private "
        f"hidden set: mean {statistics.mean(pretraining):+.4f}, min {min(pretraining):+.4f}"
    )
    pairs = (
        ("transfer, 100", "scratch, 100"),
        ("final transfer", "scratch, 100"),
        ("final transfer", "final scratch"),
    )
    for a, b in pairs:
        wins = sum(r[a] > r[b] for r in results)
        print(f"{a} beats {b} on {wins} of {len(results)} seeds (public test set)")
    done = [r for r in results if "going further" in r]
    for r in done:
        print(
            f"going further, seed {r['seed']}: accuracy after steps {r['checkpoints']}, "
            f"{r['going further seconds']:.0f} s ({r['going further cpu seconds']:.0f} s of CPU, "
            f"{r['going further threads']} threads, load {r['going further load']:.1f} at the "
            f"end), hand-in rules {r['going further rules']}"
        )
    if done:
        accuracies = [r["going further"] for r in done]
        seconds = [r["going further seconds"] for r in done]
        cpu = [r["going further cpu seconds"] for r in done]
        print(
            f"going further ({len(done)} seeds, public test set): "
            f"mean {statistics.mean(accuracies):.4f}, min {min(accuracies):.4f}; "
            f"{statistics.mean(seconds):.0f} s mean, {max(seconds):.0f} s max "
            f"(CPU: {statistics.mean(cpu):.0f} s mean, {max(cpu):.0f} s max)"
        )


def print_curve(results: list[dict]) -> None:
    """The learning curve as a table: private accuracy, mean [min, max] over seeds."""
    print("\nlearning curve: private hidden test accuracy, mean [min, max] over seeds")
    print("| labels | scratch | transfer | transfer - scratch (mean, min) |")
    print("|---|---|---|---|")
    for count in CURVE_LABELS:
        cells = []
        for kind in ("scratch", "transfer"):
            values = [r["curve"][kind][count] for r in results]
            cells.append(f"{statistics.mean(values):.4f} [{min(values):.4f}, {max(values):.4f}]")
        gaps = [r["curve"]["transfer"][count] - r["curve"]["scratch"][count] for r in results]
        cells.append(f"{statistics.mean(gaps):+.4f}, {min(gaps):+.4f}")
        print(f"| {count} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
