"""Benchmark of exercise 08: notebook runtime and test accuracies of the reference recipe.

    python bench/bench_exercise08.py [--seeds 5] [--jobs 2] [--notebook] [--going-further]

Prints one table. For every seed it trains, with the reference solution and the hyperparameters
of the notebook's hyperparameter cell (read from exercise_08/autoencoder.ipynb, so the two never
drift apart):

- the autoencoder on the unlabeled images;
- "scratch, 100": a classifier from scratch on the 100 labeled training images (section 5);
- "frozen, 100": the pretrained encoder frozen, only the head trained (section 7, step 1);
- "fine-tune only, 100": the pretrained encoder fine-tuned at once, without step 1 (for
  comparison: what the head-first step is worth);
- "transfer, 100": step 1, then fine-tuning everything (section 7, step 2);
- "final transfer": the notebook's final model (pretrained, fine-tuned at once with
  augmentation on train + val labels, section 8);
- "final scratch": the same final recipe from a fresh encoder;

and measures each on the 10,000 official MNIST test images (public: anyone can download them).
The two final models are also measured on the private hidden test set that grading uses (the
official test images distorted with the course key, ``autograder.data.load_hidden_set``). Only
this instructor-side script reads either (run ``python -m autograder data`` first).
``--going-further`` adds pseudo-labelling rounds (section 10) for the first seed, ``--notebook``
times the source notebook executed top to bottom with nbclient in a temporary copy.
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
from exercise_08.exercise_code.data import load_split  # noqa: E402
from exercise_08.exercise_code.going_further import self_training  # noqa: E402
from exercise_08.exercise_code.networks import Autoencoder, Classifier, Encoder  # noqa: E402

NOTEBOOK = ROOT / "exercise_08" / "autoencoder.ipynb"
DATA = ROOT / "data"
RAW = DATA / "MNIST" / "raw"
PRIVATE = ("final transfer", "final scratch")
"""The runs also measured on the private hidden test set (the handed-in recipe and its control)."""


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


def run_seed(seed: int, going_further: bool) -> dict:
    """Train the notebook's models with one seed; return their test accuracies.

    ``result[name]`` is the accuracy on the public test set, ``result[f"{name}, private"]`` (for
    the runs in PRIVATE) the one on the private hidden test set.
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
    training.train_autoencoder(
        autoencoder,
        unlabeled[:-1000],
        unlabeled[-1000:],
        epochs=hp["AE_EPOCHS"],
        batch_size=hp["AE_BATCH_SIZE"],
        lr=hp["AE_LR"],
        loss_kind=hp["RECONSTRUCTION_LOSS"],
        seed=seed,
    )
    result["ae_seconds"] = time.perf_counter() - started

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
    tune_final = {
        **final,
        "epochs": hp["FINAL_EPOCHS"],
        "lr": lr,
        "encoder_lr": hp["FINAL_ENCODER_LR"],
    }
    # name: (encoder, train_classifier options of each step, one after the other); scratch
    # runs train the fresh encoder at the head's rate (encoder_lr None)
    runs = {
        "scratch, 100": (fresh, [{**tune_100, "encoder_lr": None}]),
        "frozen, 100": (pretrained, [head_100]),
        "fine-tune only, 100": (pretrained, [tune_100]),
        "transfer, 100": (pretrained, [head_100, tune_100]),
        "final scratch": (fresh, [{**tune_final, "encoder_lr": None}]),
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
    if going_further:
        torch.manual_seed(seed)
        _, rounds = self_training(
            autoencoder.encoder,
            models["final transfer"],
            all_labeled,
            unlabeled,
            transform=digit_augmentation(),
            evaluate=public,
            seed=seed,
        )
        result["going further"] = rounds[-1]["accuracy"]
        result["rounds"] = [round(r["accuracy"], 4) for r in rounds]
    result["seconds"] = time.perf_counter() - started
    return result


def time_notebook() -> tuple[float, dict[str, float]]:
    """Execute the source notebook in a temporary copy; return (seconds, slowest cells)."""
    import nbformat
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

        def on_cell_executed(cell, cell_index, execute_reply) -> None:
            now = time.perf_counter()
            first_line = cell.source.splitlines()[0] if cell.source else ""
            cell_seconds[f"cell {cell_index} ({first_line[:30]})"] = now - last[0]
            last[0] = now

        started = time.perf_counter()
        env_before = os.environ.pop("TQDM_DISABLE", None)
        try:
            NotebookClient(
                notebook,
                timeout=900,
                kernel_name="python3",
                resources={"metadata": {"path": str(folder)}},
                on_cell_executed=on_cell_executed,
            ).execute()
        finally:
            if env_before is not None:
                os.environ["TQDM_DISABLE"] = env_before
        seconds = time.perf_counter() - started
    slowest = dict(sorted(cell_seconds.items(), key=lambda kv: -kv[1])[:4])
    return seconds, slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="seeds trained in parallel")
    parser.add_argument("--notebook", action="store_true", help="time the source notebook")
    parser.add_argument("--going-further", action="store_true", help="pseudo-labelling, seed 0")
    args = parser.parse_args()

    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    if args.notebook:
        seconds, slowest = time_notebook()
        print(f"notebook top to bottom: {seconds:.1f} s (load {os.getloadavg()[0]:.1f})")
        for name, cell in slowest.items():
            print(f"  {cell:5.1f} s  {name}")

    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(run_seed, seed, args.going_further and seed == 0)
            for seed in range(args.seeds)
        ]
        results = [future.result() for future in futures]

    if not results:
        return
    columns = [
        "scratch, 100",
        "frozen, 100",
        "fine-tune only, 100",
        "transfer, 100",
        "final scratch",
        "final transfer",
    ]
    if args.going_further:
        columns.append("going further")
    print("\npublic test accuracy (10,000 official MNIST test images)")
    print("| seed | " + " | ".join(columns) + " | seconds |")
    print("|---" * (len(columns) + 2) + "|")
    for r in results:
        cells = [f"{r[c]:.4f}" if c in r else "" for c in columns]
        print(f"| {r['seed']} | " + " | ".join(cells) + f" | {r['seconds']:.0f} |")
    for label, summary in (("mean", statistics.mean), ("min", min)):
        cells = [f"{summary([r[c] for r in results if c in r]):.4f}" for c in columns]
        print(f"| {label} | " + " | ".join(cells) + " | |")
    print("\nprivate hidden test set vs public test set (10,000 images each)")
    print("| seed | " + " | ".join(f"{c}: private | public" for c in PRIVATE) + " |")
    print("|---" * (2 * len(PRIVATE) + 1) + "|")
    keys = [key for c in PRIVATE for key in (f"{c}, private", c)]
    for r in results:
        print(f"| {r['seed']} | " + " | ".join(f"{r[key]:.4f}" for key in keys) + " |")
    for label, summary in (("mean", statistics.mean), ("min", min)):
        cells = [f"{summary([r[key] for r in results]):.4f}" for key in keys]
        print(f"| {label} | " + " | ".join(cells) + " |")
    pairs = (
        ("transfer, 100", "scratch, 100"),
        ("final transfer", "scratch, 100"),
        ("final transfer", "final scratch"),
    )
    for a, b in pairs:
        wins = sum(r[a] > r[b] for r in results)
        print(f"{a} beats {b} on {wins} of {len(results)} seeds")
    for r in results:
        if "rounds" in r:
            print(f"going further, seed {r['seed']}: accuracy after each round {r['rounds']}")


if __name__ == "__main__":
    main()
