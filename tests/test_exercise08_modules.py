"""The exercise's modules, tested directly: shapes, gradients, training steps, freezing, stubs."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exercise_08.exercise_code import checks, submission, training  # noqa: E402
from exercise_08.exercise_code.networks import (  # noqa: E402
    Autoencoder,
    Classifier,
    Decoder,
    Encoder,
)

CODE_DIR = ROOT / "exercise_08" / "exercise_code"
BEGIN, END = "### BEGIN " + "SOLUTION", "### END " + "SOLUTION"


def test_public_checks_pass_on_the_reference_solution() -> None:
    checks.check_encoder()
    checks.check_decoder()
    checks.check_autoencoder()
    checks.check_classifier()
    checks.check_autoencoder_steps()
    checks.check_classifier_steps()


def test_the_trained_model_checks_return_nothing_so_their_cells_show_no_out_value(
    tmp_path: Path,
) -> None:
    """A check cell ends with the check's call: a returned number would show as a stray Out[]."""
    torch.manual_seed(0)
    images, labels = checks.labeled_patterns(20)
    path = tmp_path / "classifier.pt2"
    submission.save_model(Classifier(Encoder(4, (16,))), path)

    assert checks.check_trained_autoencoder(Autoencoder(4, (16,)), images, max_error=1.0) is None
    assert checks.check_saved_classifier(path, images, labels, min_accuracy=0.0) is None


@pytest.mark.parametrize("seed", range(40))
def test_encoder_check_passes_whatever_the_initial_weights(seed: int) -> None:
    """A correct encoder whose random latent codes happen to be all positive still passes."""
    torch.manual_seed(seed)
    checks.check_encoder(latent_dim=3, hidden_sizes=(20,))


@pytest.mark.parametrize("latent_dim, hidden_sizes", [(2, (16,)), (32, (512, 128)), (7, (9, 8, 7))])
def test_shapes_and_ranges(latent_dim: int, hidden_sizes: tuple[int, ...]) -> None:
    images = torch.rand(3, 1, 28, 28)
    autoencoder = Autoencoder(latent_dim, hidden_sizes)
    z = autoencoder.encoder(images)
    x_hat = autoencoder(images)
    logits = Classifier(Encoder(latent_dim, hidden_sizes))(images)

    assert z.shape == (3, latent_dim)
    assert x_hat.shape == (3, 1, 28, 28) and 0 <= x_hat.min() and x_hat.max() <= 1
    assert Decoder(latent_dim, hidden_sizes)(z).shape == (3, 1, 28, 28)
    assert logits.shape == (3, 10)


def test_networks_use_linear_layers_only() -> None:
    for model in (Autoencoder(), Classifier(Encoder())):
        kinds = {type(m) for m in model.modules()}
        assert nn.Linear in kinds
        assert not any(issubclass(kind, nn.modules.conv._ConvNd) for kind in kinds)


def test_gradients_flow_from_the_classifier_loss_into_the_encoder() -> None:
    model = Classifier(Encoder(8, (32,)))
    loss = nn.functional.cross_entropy(model(torch.rand(4, 1, 28, 28)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_autoencoder_training_lowers_the_loss_on_a_small_batch() -> None:
    torch.manual_seed(0)
    model = Autoencoder(4, (32,))
    images, _ = checks.labeled_patterns(32)
    history = training.train_autoencoder(
        model, images, images[:8], epochs=15, batch_size=8, lr=1e-2
    )
    assert history["train_loss"][-1] < 0.8 * history["train_loss"][0]
    assert len(history["batch_loss"]) == 15 * 4 and len(history["val_loss"]) == 15


def test_classifier_training_fits_a_small_batch_and_keeps_the_best_epoch() -> None:
    torch.manual_seed(0)
    images, labels = checks.labeled_patterns(40)
    val_images, val_labels = checks.labeled_patterns(20, seed=1)
    model = Classifier(Encoder(8, (32,)))
    history = training.train_classifier(
        model, (images, labels), (val_images, val_labels), epochs=20, lr=1e-2
    )
    best = history["best_epoch"]

    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history["val_acc"][best] == max(history["val_acc"]) >= 0.9
    kept_loss, kept_accuracy = training.evaluate_classifier(model, val_images, val_labels)
    assert kept_accuracy == history["val_acc"][best]
    assert kept_loss == pytest.approx(history["val_loss"][best], rel=1e-5)


def test_a_frozen_encoder_stays_unchanged_while_the_head_learns() -> None:
    torch.manual_seed(0)
    images, labels = checks.labeled_patterns(20)
    model = Classifier(Encoder(8, (32,)))
    encoder_before = copy.deepcopy(model.encoder.state_dict())
    head_before = copy.deepcopy(model.head.state_dict())

    training.train_classifier(model, (images, labels), epochs=3, encoder_lr=0.0)

    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, encoder_before[key]), key
    assert any(not torch.equal(v, head_before[k]) for k, v in model.head.state_dict().items())


def test_transfer_in_two_steps_continues_from_the_head_only_step() -> None:
    """Step 1 trains the head on the frozen encoder, step 2 fine-tunes that same model;
    the joined history marks the epoch that was kept, counted from the start of step 1."""
    torch.manual_seed(0)
    images, labels = checks.labeled_patterns(20)
    val_data = checks.labeled_patterns(10, seed=1)
    model = Classifier(Encoder(8, (32,)))
    encoder_before = copy.deepcopy(model.encoder.state_dict())
    step_1 = training.train_classifier(model, (images, labels), val_data, epochs=4, encoder_lr=0)
    assert all(torch.equal(v, encoder_before[k]) for k, v in model.encoder.state_dict().items())
    step_2 = training.train_classifier(model, (images, labels), val_data, epochs=6, lr=1e-2)
    assert any(not torch.equal(v, encoder_before[k]) for k, v in model.encoder.state_dict().items())

    joined = training.join_histories(step_1, step_2)
    assert joined["train_loss"] == step_1["train_loss"] + step_2["train_loss"]
    assert joined["val_acc"] == step_1["val_acc"] + step_2["val_acc"]
    assert joined["best_epoch"] == 4 + step_2["best_epoch"]
    assert isinstance(step_2["best_epoch"], int)


def test_lower_encoder_learning_rate_gets_its_own_parameter_group() -> None:
    model = Classifier(Encoder(8, (32,)))
    optimizer = training.make_optimizer(model, lr=1e-3, encoder_lr=1e-5)
    rates = sorted(group["lr"] for group in optimizer.param_groups)
    assert rates == [1e-5, 1e-3]
    assert all(p.requires_grad for p in model.encoder.parameters())


def test_make_optimizer_changes_no_model_even_for_a_frozen_encoder() -> None:
    model = Classifier(Encoder(8, (32,)))
    optimizer = training.make_optimizer(model, lr=1e-3, encoder_lr=0)
    assert [len(group["params"]) for group in optimizer.param_groups] == [2]
    assert all(p.requires_grad for p in model.parameters())


def test_train_classifier_freezes_the_encoder_only_while_it_trains(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """encoder_lr=0: no gradient is computed for the encoder during training; afterwards the
    model is trainable as before."""
    torch.manual_seed(0)
    images, labels = checks.labeled_patterns(20)
    model = Classifier(Encoder(8, (32,)))
    seen = []
    step = training.classifier_train_step

    def spy(model, images, labels, optimizer):
        result = step(model, images, labels, optimizer)
        seen.append([p.grad for p in model.encoder.parameters()])
        return result

    monkeypatch.setattr(training, "classifier_train_step", spy)
    training.train_classifier(model, (images, labels), epochs=2, encoder_lr=0)

    assert seen and all(grad is None for grads in seen for grad in grads)
    assert all(p.requires_grad for p in model.parameters())


def test_augment_batch_draws_new_parameters_per_image() -> None:
    from exercise_08.exercise_code.augmentation import augment_batch, digit_augmentation

    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 10:18, 12:16] = 1.0
    batch = image.repeat(8, 1, 1, 1)
    torch.manual_seed(0)
    augmented = augment_batch(batch, digit_augmentation())
    assert augmented.shape == batch.shape
    assert len({tuple(a.flatten().tolist()) for a in augmented}) > 1
    assert augment_batch(batch, None) is batch


def strip_solutions(text: str, relative: str) -> str:
    """What the release makes of a student module: every region becomes a stub that names the
    function or method to implement (see the contract in autograder/release.py)."""
    import ast

    spans = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                spans.append((child.lineno, child.end_lineno, name))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(text), "")
    lines, out, inside = text.splitlines(keepends=True), [], False
    for number, line in enumerate(lines, start=1):
        if BEGIN in line:
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            what = max((s for s in spans if s[0] < number <= s[1]), key=lambda s: s[0])[2]
            out.append(f"{indent}# YOUR CODE HERE\n")
            out.append(f'{indent}raise NotImplementedError("Implement {what} in {relative}")\n')
        elif END in line:
            inside = False
        elif not inside:
            out.append(line)
    return "".join(out)


@pytest.fixture
def student_package(tmp_path: Path) -> Path:
    """A copy of exercise_code with the solution regions of every student module stubbed."""
    package = tmp_path / "exercise_code"
    package.mkdir()
    for source in CODE_DIR.glob("*.py"):
        text = source.read_text()
        if BEGIN in text:
            text = strip_solutions(text, f"exercise_code/{source.name}")
        (package / source.name).write_text(text)
    return tmp_path


def test_student_modules_are_the_ones_with_solution_regions() -> None:
    students = sorted(p.name for p in CODE_DIR.glob("*.py") if BEGIN in p.read_text())
    assert students == ["networks.py", "training.py"]


STUB_PROBES = {
    "networks.Encoder()": "Implement Encoder.__init__ in exercise_code/networks.py",
    "networks.Decoder()": "Implement Decoder.__init__ in exercise_code/networks.py",
    "networks.Autoencoder()": "Implement Encoder.__init__ in exercise_code/networks.py",
    "training.autoencoder_val_step(None, None)": (
        "Implement autoencoder_val_step in exercise_code/training.py"
    ),
    "training.classifier_train_step(None, None, None, None)": (
        "Implement classifier_train_step in exercise_code/training.py"
    ),
}


@pytest.mark.parametrize("call", sorted(STUB_PROBES))
def test_student_stubs_say_what_to_implement(student_package: Path, call: str) -> None:
    """In the student version, calling unimplemented code names what to implement and where."""
    script = f"from exercise_code import networks, training\n{call}\n"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=student_package, capture_output=True, text=True
    )
    last_line = result.stderr.strip().splitlines()[-1]
    assert result.returncode != 0
    assert last_line == f"NotImplementedError: {STUB_PROBES[call]}"


def test_a_plot_that_fails_leaves_no_empty_figure() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from exercise_08.exercise_code import plots

    before = plt.get_fignums()
    with pytest.raises(KeyError):
        plots.plot_autoencoder_history({"batch_loss": [0.5], "train_loss": [0.4]})  # no val_loss
    assert plt.get_fignums() == before


def test_the_bar_charts_legend_covers_no_bar() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from exercise_08.exercise_code import plots

    results = {
        name: {"val": 0.95, "public test": 0.97}
        for name in ("from scratch", "pretrained, frozen", "pretrained, fine-tuned")
    }
    figure = plots.plot_accuracies(results, title="legend test")
    figure.canvas.draw()
    (axes,) = figure.axes
    legend = axes.get_legend().get_window_extent()
    bars = [patch.get_window_extent() for patch in axes.patches]
    assert len(bars) == 6 and not any(legend.overlaps(bar) for bar in bars)
    plt.close(figure)
