"""The trusted checks (probes + verdicts in each exercise's grading/ folder), without the sandbox.

The reference solution passes every cell; each typical mistake, planted in a copy of the
solution, fails exactly the cells it should, with a sentence naming its cause; probe data that
was made up (not computed from the seed's inputs) fails.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from autograder_standin import END_SOLUTION

from autograder.grading import trusted

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "data"


def _probes(exercise: str):
    spec = importlib.util.spec_from_file_location(
        f"probes_{exercise}", trusted.probes_path(exercise)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _as_data(raw: dict) -> dict:
    """What the grader reads back: tensors become arrays, like the worker's data.npz."""
    return {k: v.detach().numpy() if isinstance(v, torch.Tensor) else v for k, v in raw.items()}


def verdicts_for(exercise: str, code: Path, files: Path, key: bytes = b"k" * 32) -> dict:
    """``{cell: (passed, message)}`` with ``code/exercise_code`` as the student's modules."""
    for name in [m for m in sys.modules if m == "exercise_code" or m.startswith("exercise_code.")]:
        del sys.modules[name]
    sys.path.insert(0, str(code))
    try:
        probes, judges = _probes(exercise), trusted.verdicts(exercise)
        results = {}
        for cell in judges.JUDGES:
            seed = trusted.check_seed(key, "submission", cell)
            data = _as_data(probes.run(cell, seed, str(files)))
            context = trusted.Context(exercise, seed, DATA_DIR)
            results[cell] = judges.judge(cell, data, context)
        return results
    finally:
        sys.path.remove(str(code))
        for name in [
            m for m in sys.modules if m == "exercise_code" or m.startswith("exercise_code.")
        ]:
            del sys.modules[name]


def mutated_copy(exercise: str, tmp_path: Path, module: str, old: str, new: str) -> Path:
    """A copy of the SOURCE exercise with ``old`` replaced by ``new`` in ``module``."""
    copy = tmp_path / exercise
    shutil.copytree(
        ROOT / exercise, copy, ignore=shutil.ignore_patterns("models", "grading", "*.zip")
    )
    path = copy / "exercise_code" / module
    text = path.read_text()
    assert old in text, f"{old!r} is not in {module}: update the mutation"
    path.write_text(text.replace(old, new, 1))
    return copy


@pytest.fixture(scope="module")
def saved_autoencoder(tmp_path_factory, prepared_data_dir) -> Path:
    """A files/ folder with a briefly trained autoencoder saved as the notebook saves it."""
    sys.path.insert(0, str(ROOT))
    from exercise_08.exercise_code import networks, training

    folder = tmp_path_factory.mktemp("files")
    data = trusted.Context("exercise_08", 0, prepared_data_dir)
    images = data.split("unlabeled").images[:-1000]
    torch.manual_seed(0)
    model = networks.Autoencoder(32, (256, 64))
    training.train_autoencoder(model, images, images[-500:], epochs=3, batch_size=256)
    (folder / "models").mkdir()
    torch.save(
        {
            "latent_dim": 32,
            "hidden_sizes": [256, 64],
            "state_dict": model.state_dict(),
            "history": {},
        },
        folder / "models" / "autoencoder.pt",
    )
    return folder


def test_the_reference_solutions_pass_every_trusted_check(saved_autoencoder):
    results = verdicts_for("exercise_08", ROOT / "exercise_08", saved_autoencoder)
    results |= verdicts_for(
        "exercise_08_optional", ROOT / "exercise_08_optional", ROOT / "exercise_08_optional"
    )
    assert {cell: message for cell, (passed, message) in results.items() if not passed} == {}


EXERCISE_08_MISTAKES = {
    # name: (module, old, new, failing cell, words in its message)
    "relu after the encoder's last layer": (
        "networks.py",
        "layers.append(nn.Linear(sizes[-1], latent_dim))",
        "layers += [nn.Linear(sizes[-1], latent_dim), nn.ReLU()]",
        "test_encoder",
        "no ReLU after the last nn.Linear",
    ),
    "decoder without sigmoid": (
        "networks.py",
        "layers += [nn.Linear(sizes[-1], NUM_PIXELS), nn.Sigmoid()]",
        "layers += [nn.Linear(sizes[-1], NUM_PIXELS)]",
        "test_decoder",
        "nn.Sigmoid()",
    ),
    "decoder in the encoder's order": (
        "networks.py",
        "sizes = [latent_dim, *reversed(self.hidden_sizes)]",
        "sizes = [latent_dim, *self.hidden_sizes]",
        "test_decoder",
        "has the linear layers",
    ),
    "autoencoder forward skips the decoder": (
        "networks.py",
        "x_hat = self.decoder(self.encoder(x))",
        "x_hat = self.encoder(x)",
        "test_autoencoder",
        "self.decoder(self.encoder(x))",
    ),
    "classifier copies the encoder": (
        "networks.py",
        "self.encoder = encoder\n",
        "self.encoder = __import__('copy').deepcopy(encoder)\n",
        "test_classifier",
        "not a copy",
    ),
    "relu before the head": (
        "networks.py",
        "logits = self.head(self.encoder(x))",
        "logits = self.head(torch.relu(self.encoder(x)))",
        "test_classifier",
        "ReLU between the encoder and the head",
    ),
    "detached encoder": (
        "networks.py",
        "logits = self.head(self.encoder(x))",
        "logits = self.head(self.encoder(x).detach())",
        "test_classifier",
        "Gradients do not reach the encoder",
    ),
    "autoencoder step without zero_grad": (
        "training.py",
        "loss_kind)\n    optimizer.zero_grad()\n    loss.backward()",
        "loss_kind)\n    loss.backward()",
        "test_autoencoder_steps",
        "zero_grad() before loss.backward()",
    ),
    "autoencoder step ignores loss_kind": (
        "training.py",
        "images, loss_kind)\n    optimizer.zero_grad()",
        "images)\n    optimizer.zero_grad()",
        "test_autoencoder_steps",
        "ignores loss_kind='l1'",
    ),
    "classifier step without zero_grad": (
        "training.py",
        "    loss = F.cross_entropy(logits, labels)\n    optimizer.zero_grad()\n",
        "    loss = F.cross_entropy(logits, labels)\n",
        "test_classifier_steps",
        "zero_grad() before loss.backward()",
    ),
    "softmax before cross-entropy": (
        "training.py",
        "loss = F.cross_entropy(logits, labels)\n    optimizer",
        "loss = F.cross_entropy(logits.softmax(1), labels)\n    optimizer",
        "test_classifier_steps",
        "softmax before the loss",
    ),
    "classifier step without optimizer.step()": (
        "training.py",
        f"backward()\n    optimizer.step()\n    {END_SOLUTION}\n    return loss.item(), count",
        f"backward()\n    {END_SOLUTION}\n    return loss.item(), count",
        "test_classifier_steps",
        "call optimizer.step()",
    ),
    "classifier step returns the loss tensor": (
        "training.py",
        f"    optimizer.step()\n    {END_SOLUTION}\n    return loss.item(), count",
        "    optimizer.step()\n    return loss, count_correct(logits, labels)\n"
        f"    {END_SOLUTION}\n    return loss.item(), count",
        "test_classifier_steps",
        "return loss.item() (a Python float)",
    ),
}


@pytest.mark.parametrize("mistake", sorted(EXERCISE_08_MISTAKES))
def test_each_exercise_08_mistake_fails_its_cell_only_and_names_the_cause(
    mistake, tmp_path, saved_autoencoder
):
    module, old, new, cell, words = EXERCISE_08_MISTAKES[mistake]
    copy = mutated_copy("exercise_08", tmp_path, module, old, new)
    results = verdicts_for("exercise_08", copy, saved_autoencoder)
    failed = {c: message for c, (passed, message) in results.items() if not passed}
    assert set(failed) == {cell}, failed
    assert words in failed[cell]


OPTIONAL_MISTAKES = {
    "dropout keeps p instead of 1 - p": (
        "mask = (rng.random(x.shape) >= p) / (1 - p)",
        "mask = (rng.random(x.shape) < p) / (1 - p)",
        {"test_dropout_forward"},
        "test_dropout_forward",
        "probability of DROPPING",
    ),
    "dropout backward scales twice": (
        "dx = dout * mask\n",
        "dx = dout * mask / (1 - dropout_param['p'])\n",
        {"test_dropout_backward"},
        "test_dropout_backward",
        "scales twice",
    ),
    "batch norm with the unbiased variance": (
        "var = x.var(axis=0)\n        inv_std",
        "var = x.var(axis=0, ddof=1)\n        inv_std",
        {"test_batchnorm_forward", "test_batchnorm_backward", "test_batchnorm_running_stats"},
        "test_batchnorm_forward",
        "unbiased variance",
    ),
    "running statistics rebound, not updated in place": (
        "running_mean *= 1 - momentum\n        running_mean += momentum * mu",
        "bn_param['running_mean'] = (1 - momentum) * running_mean + momentum * mu",
        {"test_batchnorm_running_stats"},
        "test_batchnorm_running_stats",
        "IN PLACE",
    ),
    "running variance from the biased batch variance": (
        "running_var += momentum * var * n / (n - 1)",
        "running_var += momentum * var",
        {"test_batchnorm_running_stats"},
        "test_batchnorm_running_stats",
        "UNBIASED",
    ),
    "layer norm over the batch axis": (
        "mu = x.mean(axis=1, keepdims=True)\n    var = x.var(axis=1, keepdims=True)",
        "mu = x.mean(axis=0, keepdims=True)\n    var = x.var(axis=0, keepdims=True)",
        {"test_layernorm_forward", "test_layernorm_backward"},
        "test_layernorm_forward",
        "wrong axis",
    ),
}


@pytest.mark.parametrize("mistake", sorted(OPTIONAL_MISTAKES))
def test_each_optional_mistake_fails_its_cells_and_names_the_cause(mistake, tmp_path):
    old, new, cells, cell, words = OPTIONAL_MISTAKES[mistake]
    copy = mutated_copy("exercise_08_optional", tmp_path, "layers.py", old, new)
    shutil.copyfile(
        ROOT / "exercise_08_optional" / "regularization.ipynb", copy / "regularization.ipynb"
    )
    results = verdicts_for("exercise_08_optional", copy, copy)
    failed = {c: message for c, (passed, message) in results.items() if not passed}
    assert set(failed) == cells, failed
    assert words in failed[cell]
    for dependent in cells - {cell}:
        assert "fix" in failed[dependent] or words in failed[dependent], failed[dependent]


def test_made_up_probe_data_fails_because_the_inputs_come_from_a_secret_seed():
    sys.path.insert(0, str(ROOT / "exercise_08"))
    try:
        probes = _probes("exercise_08")
        judges = trusted.verdicts("exercise_08")
        data = _as_data(probes.run("test_autoencoder", 1234, None))
        context = trusted.Context("exercise_08", 1234, DATA_DIR)
        assert judges.judge("test_autoencoder", data, context) == (True, "")
        other = trusted.Context("exercise_08", 4321, DATA_DIR)
        passed, message = judges.judge("test_autoencoder", data, other)
        assert not passed and "self.decoder(self.encoder(x))" in message
        garbage = {"out": np.zeros((6, 1, 28, 28), np.float32), "grads": np.zeros(3, np.float32)}
        assert not judges.judge("test_autoencoder", garbage, context)[0]
    finally:
        sys.path.remove(str(ROOT / "exercise_08"))


def test_seeds_are_secret_per_submission_and_cell_and_repeatable():
    key = b"course key".ljust(32, b"!")
    seeds = {trusted.check_seed(key, s, c) for s in ("a", "b") for c in ("test_x", "test_y")}
    assert len(seeds) == 4
    assert trusted.check_seed(key, "a", "test_x") == trusted.check_seed(key, "a", "test_x")
    assert trusted.check_seed(b"other key".ljust(32, b"!"), "a", "test_x") not in seeds
