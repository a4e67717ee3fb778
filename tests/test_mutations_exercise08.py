"""Typical mistakes in exercise_08's student modules, each caught by its own public check.

Every mutation plants one mistake in a copy of the source solution (``networks.py``,
``training.py``); then the check calls of the notebook's graded cells (the visible call and the
hidden ones) run on the copy. The graded cell of the part with the mistake must fail with a
message that names the cause and what to change, and every other graded cell must pass: a
mistake is reported where it is, never elsewhere.

``python tests/test_mutations_exercise08.py`` prints the table of mistakes and messages.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutants import (  # noqa: E402
    Mutation,
    assert_covers,
    assert_names_the_cause,
    failures_of,
    graded_check_calls,
    import_copy,
    plant,
    print_table,
)

PACKAGE = ROOT / "exercise_08" / "exercise_code"

NOTEBOOK = ROOT / "exercise_08" / "autoencoder.ipynb"
CHECKS = graded_check_calls(
    NOTEBOOK,
    [
        "test_encoder",
        "test_decoder",
        "test_autoencoder",
        "test_classifier",
        "test_autoencoder_steps",
        "test_classifier_steps",
    ],
    lambda code: {"checks": code.checks},
)
"""The graded cells' calls of the public checks (visible and hidden), by grade id."""

END = "    ### END " + "SOLUTION\n"  # built from pieces: nbgrader matches its markers anywhere
AE_STEP = f"""    loss = reconstruction_loss(model(images), images, loss_kind)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
{END}    return loss.item()
"""
CLS_STEP = f"""    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
{END}    return loss.item(), count_correct(logits, labels)
"""
ENCODER_LAYERS = """        sizes = [NUM_PIXELS, *self.hidden_sizes]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
"""


def _m(mistake, module, old, new, check, *says) -> Mutation:
    return Mutation(mistake, module, old, new, check, says)


def _ae_step(mistake, new, *says) -> Mutation:
    return _m(mistake, "training.py", AE_STEP, new, "test_autoencoder_steps", *says)


def _cls_step(mistake, new, *says) -> Mutation:
    return _m(mistake, "training.py", CLS_STEP, new, "test_classifier_steps", *says)


MUTATIONS = [
    _m(
        "a ReLU after the encoder's last layer",
        "networks.py",
        "        layers.append(nn.Linear(sizes[-1], latent_dim))",
        "        layers += [nn.Linear(sizes[-1], latent_dim), nn.ReLU()]",
        "test_encoder",
        "ends with ReLU",
        "no activation after the last Linear layer",
    ),
    _m(
        "a ReLU on the latent code in Encoder.forward",
        "networks.py",
        "z = self.layers(x.flatten(start_dim=1))",
        "z = torch.relu(self.layers(x.flatten(start_dim=1)))",
        "test_encoder",
        "applies a ReLU to the last layer's output",
    ),
    _m(
        "no ReLU between the encoder's hidden layers",
        "networks.py",
        ENCODER_LAYERS,
        ENCODER_LAYERS.replace("[nn.Linear(n_in, n_out), nn.ReLU()]", "[nn.Linear(n_in, n_out)]"),
        "test_encoder",
        "one nn.ReLU() after each hidden Linear layer",
    ),
    _m(
        "the decoder takes hidden_sizes in the encoder's order",
        "networks.py",
        "sizes = [latent_dim, *reversed(self.hidden_sizes)]",
        "sizes = [latent_dim, *self.hidden_sizes]",
        "test_decoder",
        "take hidden_sizes in reverse",
    ),
    _m(
        "no sigmoid at the end of the decoder",
        "networks.py",
        "layers += [nn.Linear(sizes[-1], NUM_PIXELS), nn.Sigmoid()]",
        "layers += [nn.Linear(sizes[-1], NUM_PIXELS)]",
        "test_decoder",
        "end it with nn.Sigmoid()",
    ),
    _m(
        "the decoder's output is not reshaped to images",
        "networks.py",
        "x_hat = self.layers(z).unflatten(1, IMAGE_SHAPE)",
        "x_hat = self.layers(z)",
        "test_decoder",
        "returned shape (5, 784)",
        "reshape",
    ),
    _m(
        "the autoencoder detaches the latent code",
        "networks.py",
        "x_hat = self.decoder(self.encoder(x))",
        "x_hat = self.decoder(self.encoder(x).detach())",
        "test_autoencoder",
        "No gradient reaches encoder",
        "do not detach",
    ),
    _m(
        "the autoencoder returns the latent code",
        "networks.py",
        "x_hat = self.decoder(self.encoder(x))",
        "x_hat = self.encoder(x)",
        "test_autoencoder",
        "return the decoder's output",
    ),
    _m(
        "the classifier copies the encoder it is given",
        "networks.py",
        "        self.head = nn.Linear(encoder.latent_dim, num_classes)\n",
        "        self.head = nn.Linear(encoder.latent_dim, num_classes)\n"
        '        self.encoder = __import__("copy").deepcopy(encoder)\n',
        "test_classifier",
        "a copy",
        "self.encoder = encoder",
    ),
    _m(
        "a ReLU between the encoder and the head",
        "networks.py",
        "logits = self.head(self.encoder(x))",
        "logits = self.head(torch.relu(self.encoder(x)))",
        "test_classifier",
        "applies a ReLU between the encoder and the head",
    ),
    _m(
        "the classifier returns probabilities (softmax)",
        "networks.py",
        "logits = self.head(self.encoder(x))",
        "logits = self.head(self.encoder(x)).softmax(dim=1)",
        "test_classifier",
        "returns probabilities",
        "raw logits",
    ),
    _ae_step(
        "autoencoder step without optimizer.zero_grad()",
        AE_STEP.replace("    optimizer.zero_grad()\n", ""),
        "gradients of earlier steps add up",
        "call optimizer.zero_grad() before loss.backward()",
    ),
    _ae_step(
        "autoencoder step without optimizer.step()",
        AE_STEP.replace("    optimizer.step()\n", ""),
        "changed no weight",
        "call optimizer.step() after loss.backward()",
    ),
    _ae_step(
        "autoencoder step resets the gradients between backward and step",
        AE_STEP.replace(
            "    optimizer.zero_grad()\n    loss.backward()\n",
            "    loss.backward()\n    optimizer.zero_grad()\n",
        ),
        "gradients were reset after loss.backward()",
    ),
    _ae_step(
        "autoencoder step ignores loss_kind",
        AE_STEP.replace(
            "reconstruction_loss(model(images), images, loss_kind)",
            "reconstruction_loss(model(images), images)",
        ),
        "returned the L2 loss for loss_kind='l1'",
        "pass loss_kind on to reconstruction_loss",
    ),
    _ae_step(
        "autoencoder step computes the loss on a detached reconstruction",
        AE_STEP.replace(
            "model(images), images, loss_kind", "model(images).detach(), images, loss_kind"
        ),
        "found no graph",
        ".detach()",
    ),
    _ae_step(
        "autoencoder step returns the loss tensor",
        AE_STEP.replace("    return loss.item()\n", "    return loss\n"),
        "returned the loss as a tensor",
        "return loss.item()",
    ),
    _m(
        "autoencoder validation step calls backward()",
        "training.py",
        f"    loss = reconstruction_loss(model(images), images, loss_kind)\n{END}",
        f"    loss = reconstruction_loss(model(images), images, loss_kind)\n"
        f"    loss.backward()\n{END}",
        "test_autoencoder_steps",
        "autoencoder_val_step calls backward()",
    ),
    _cls_step(
        "classifier step without optimizer.zero_grad()",
        CLS_STEP.replace("    optimizer.zero_grad()\n", ""),
        "classifier_train_step lets the gradients of earlier steps add up",
        "call optimizer.zero_grad() before loss.backward()",
    ),
    _cls_step(
        "classifier step calls optimizer.step() before loss.backward()",
        CLS_STEP.replace(
            "    loss.backward()\n    optimizer.step()\n",
            "    optimizer.step()\n    loss.backward()\n",
        ),
        "changed no weight",
        "call optimizer.step() after loss.backward()",
    ),
    _cls_step(
        "classifier step without loss.backward()",
        CLS_STEP.replace("    loss.backward()\n", ""),
        "computed no gradient",
        "call loss.backward()",
    ),
    _cls_step(
        "softmax before cross-entropy",
        CLS_STEP.replace(
            "F.cross_entropy(logits, labels)", "F.cross_entropy(logits.softmax(dim=1), labels)"
        ),
        "applies softmax before F.cross_entropy",
        "pass the raw logits",
    ),
    _cls_step(
        "classifier step returns the loss tensor",
        CLS_STEP.replace("return loss.item(), count_correct", "return loss, count_correct"),
        "classifier_train_step returned the loss as a tensor",
        "return loss.item()",
    ),
    _m(
        "classifier validation step with F.nll_loss on the logits",
        "training.py",
        f"    loss = F.cross_entropy(logits, labels)\n{END}",
        f"    loss = F.nll_loss(logits, labels)\n{END}",
        "test_classifier_steps",
        "classifier_val_step uses F.nll_loss",
        "use F.cross_entropy on the raw logits",
    ),
]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """The checks train tiny models: on a busy machine threads cost more than they give."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_reference_solution_passes_every_check(tmp_path: Path) -> None:
    assert failures_of(PACKAGE, None, CHECKS, tmp_path, "mutant_reference") == {}


def test_every_graded_check_catches_a_typical_mistake() -> None:
    assert_covers(MUTATIONS, CHECKS, NOTEBOOK)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.mistake for m in MUTATIONS])
def test_a_typical_mistake_fails_only_its_check_and_names_the_cause(
    mutation: Mutation, tmp_path: Path
) -> None:
    failures = failures_of(PACKAGE, mutation, CHECKS, tmp_path, f"mutant_{id(mutation)}")

    assert set(failures) == {mutation.check}, failures
    assert_names_the_cause(mutation, failures[mutation.check])


@contextlib.contextmanager
def planted(mistake: str | None, work: Path) -> Iterator[ModuleType]:
    """The exercise package with one mistake of MUTATIONS planted (None: the reference)."""
    mutation = next((m for m in MUTATIONS if m.mistake == mistake), None)
    assert mistake is None or mutation is not None, mistake
    name = f"planted_{abs(hash(mistake))}"
    try:
        yield import_copy(plant(PACKAGE, mutation, work), name)
    finally:
        for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[module]


def trained_autoencoder_failure(code: ModuleType) -> str:
    """The message of the trained-autoencoder check for an autoencoder that never trained."""
    torch.manual_seed(0)
    untrained = code.networks.Autoencoder(4, (16,))
    with pytest.raises(AssertionError) as failure:
        code.checks.check_trained_autoencoder(untrained, code.checks.random_images(20))
    return str(failure.value)


def saved_classifier_failure(code: ModuleType, work: Path) -> str:
    """The message of the saved-classifier check for a classifier that never trained."""
    torch.manual_seed(0)
    path = code.submission.save_model(
        code.networks.Classifier(code.networks.Encoder(4, (16,))), work / "classifier.pt2"
    )
    images, labels = code.checks.labeled_patterns(40)
    with pytest.raises(AssertionError) as failure:
        code.checks.check_saved_classifier(path, images, labels)
    return str(failure.value)


def test_a_poor_autoencoder_is_blamed_on_a_failing_step_not_on_the_hyperparameters(
    tmp_path: Path,
) -> None:
    with planted("autoencoder step without optimizer.zero_grad()", tmp_path) as code:
        message = trained_autoencoder_failure(code)

    assert "because an earlier part is wrong" in message, message
    assert "the check of the autoencoder steps (section 3) fails" in message
    assert "call optimizer.zero_grad() before loss.backward()" in message
    assert "AE_EPOCHS" not in message and "longer" not in message


def test_a_poor_saved_classifier_is_blamed_on_the_first_failing_part(tmp_path: Path) -> None:
    with planted("classifier step without optimizer.zero_grad()", tmp_path) as code:
        message = saved_classifier_failure(code, tmp_path)

    assert "the check of the classifier steps (section 3) fails" in message, message
    assert "call optimizer.zero_grad() before loss.backward()" in message
    assert "improve the final model" not in message


def test_with_every_part_right_a_poor_model_gets_hyperparameter_advice(tmp_path: Path) -> None:
    with planted(None, tmp_path) as code:
        autoencoder_message = trained_autoencoder_failure(code)
        classifier_message = saved_classifier_failure(code, tmp_path)

    assert "train the autoencoder longer (AE_EPOCHS)" in autoencoder_message
    assert "improve the final model (section 8)" in classifier_message
    assert "earlier part" not in autoencoder_message + classifier_message


if __name__ == "__main__":
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as work:
        print_table(PACKAGE, MUTATIONS, CHECKS, Path(work))
