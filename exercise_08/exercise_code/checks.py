"""Public checks that the notebook's graded cells run on your code (given).

Each check runs your code on small models or batches and raises an AssertionError with one
sentence saying what is wrong and what to change. Every check tests ONE part: the network
checks build only the class they test (the autoencoder and classifier checks plug in stand-in
encoders and decoders that are known to be right), and the step checks train small stand-in
models built here, not your Encoder and Decoder. So a mistake shows up in the check of the part
that has it, and in no other.

The checks test properties (shapes, what a step does to the gradients and the weights, the
value of the loss), not your code line by line. Passing them is a good sign, not a guarantee:
the grader runs checks like these on other sizes.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .model_rules import check_model_file, load_checked_model
from .networks import Autoencoder, Classifier, Decoder, Encoder
from .submission import require_saved
from .training import (
    accuracy,
    autoencoder_train_step,
    autoencoder_val_step,
    classifier_train_step,
    classifier_val_step,
    evaluate_autoencoder,
    predict,
)

STEP_LR = 0.5
"""Learning rate of the SGD step whose effect on the weights the step checks compare."""


# --- Inputs and stand-in models -------------------------------------------------------------


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    """Random float32 images (n, 1, 28, 28) in [0, 1]."""
    return torch.rand((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed))


def labeled_patterns(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Easy labeled images: faint noise plus a bright band at rows 2*label to 2*label+4."""
    labels = torch.arange(n) % 10
    images = random_images(n, seed) * 0.3
    for image, label in zip(images, labels, strict=True):
        image[0, 2 * label : 2 * label + 4] = 1.0
    return images, labels


class StandInEncoder(nn.Sequential):
    """A known-good encoder for the checks: flatten -> Linear -> ReLU -> Linear(., latent_dim)."""

    def __init__(self, latent_dim: int, hidden: int = 16) -> None:
        super().__init__(
            nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, latent_dim)
        )
        self.latent_dim, self.hidden_sizes = latent_dim, (hidden,)


def stand_in_decoder(latent_dim: int, hidden: int = 16) -> nn.Module:
    """A known-good decoder for the checks: codes (N, latent_dim) -> images (N, 1, 28, 28)."""
    return nn.Sequential(
        nn.Linear(latent_dim, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 784),
        nn.Sigmoid(),
        nn.Unflatten(1, (1, 28, 28)),
    )


def _seeded(seed: int, make: Callable[[], nn.Module]) -> nn.Module:
    """``make()`` with torch's generator seeded; the notebook's generator is left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return make()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numbers in a model."""
    return sum(p.numel() for p in model.parameters())


def linear_layer_sizes(model: nn.Module) -> list[tuple[int, int]]:
    """(in_features, out_features) of every nn.Linear, in the order they were created."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def assert_linear_only(model: nn.Module) -> None:
    """Only linear layers and simple activations: no convolutions in this exercise."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            raise AssertionError(
                f"{type(module).__name__} found: only nn.Linear layers are allowed."
            )


def _layer_kinds(layers: nn.Sequential) -> list[str]:
    """The class names of a Sequential's layers, reshaping layers left out."""
    reshaping = (nn.Flatten, nn.Unflatten, nn.Identity)
    return [type(m).__name__ for m in layers if not isinstance(m, reshaping)]


def _sequential_layers(model: nn.Module, name: str) -> nn.Sequential:
    layers = getattr(model, "layers", None)
    assert isinstance(layers, nn.Sequential), (
        f"{name}.layers is {type(layers).__name__}, not an nn.Sequential: build self.layers in "
        f"__init__ as nn.Sequential(...) of the layers in {name}'s docstring."
    )
    return layers


# --- The networks ---------------------------------------------------------------------------


def check_encoder(latent_dim: int = 8, hidden_sizes: tuple[int, ...] = (64, 32)) -> None:
    """Encoder: the layers of the docstring in order, no activation at the end, output shape."""
    encoder = Encoder(latent_dim, hidden_sizes)
    label = f"Encoder({latent_dim}, {hidden_sizes})"
    layers = _sequential_layers(encoder, "Encoder")
    assert_linear_only(encoder)
    expected = list(zip([784, *hidden_sizes], [*hidden_sizes, latent_dim], strict=True))
    sizes = linear_layer_sizes(layers)
    assert sizes == expected, (
        f"{label} has linear layers (in, out) {sizes}; expected {expected}: 784 pixels, then "
        "each hidden size in order, then latent_dim."
    )
    kinds = _layer_kinds(layers)
    wanted = ["Linear", "ReLU"] * len(hidden_sizes) + ["Linear"]
    assert kinds[-1] == "Linear", (
        f"{label}.layers ends with {kinds[-1]}: apply no activation after the last Linear layer "
        "(the latent code may take any real value, negative ones included)."
    )
    assert kinds == wanted, (
        f"{label}.layers is {kinds}; expected {wanted}: one nn.ReLU() after each hidden "
        "Linear layer, none after the last."
    )
    images = random_images(5)
    z = encoder(images)
    assert isinstance(z, torch.Tensor), f"Encoder.forward returned {type(z).__name__}: set z."
    assert z.shape == (5, latent_dim), (
        f"Encoder.forward returned shape {tuple(z.shape)} for images (5, 1, 28, 28); expected "
        f"(5, {latent_dim})."
    )
    last_layer_output = layers(images.flatten(start_dim=1))
    if not torch.allclose(z, last_layer_output):
        assert not torch.allclose(z, torch.relu(last_layer_output)), (
            "Encoder.forward applies a ReLU to the last layer's output: return the latent code "
            "as the last Linear layer gives it (negative values carry information too)."
        )
        raise AssertionError(
            "Encoder.forward does not return self.layers applied to the flattened images "
            "(N, 784): use each layer once, in order, and nothing after the last one."
        )
    print(f"Encoder check passed: (5, 1, 28, 28) -> {tuple(z.shape)}, layers {expected}.")


def check_decoder(latent_dim: int = 8, hidden_sizes: tuple[int, ...] = (64, 32)) -> None:
    """Decoder: the mirrored layer sizes, the final Sigmoid, output shape and range."""
    decoder = Decoder(latent_dim, hidden_sizes)
    label = f"Decoder({latent_dim}, {hidden_sizes})"
    layers = _sequential_layers(decoder, "Decoder")
    assert_linear_only(decoder)
    mirrored = [latent_dim, *reversed(hidden_sizes), 784]
    expected = list(zip(mirrored[:-1], mirrored[1:], strict=True))
    sizes = linear_layer_sizes(layers)
    if sizes != expected:
        in_encoder_order = [latent_dim, *hidden_sizes, 784]
        assert sizes != list(zip(in_encoder_order[:-1], in_encoder_order[1:], strict=True)), (
            f"{label} goes through hidden_sizes in the encoder's order {sizes}; the decoder "
            f"mirrors the encoder, so take hidden_sizes in reverse: {expected}."
        )
        raise AssertionError(
            f"{label} has linear layers (in, out) {sizes}; expected {expected}: latent_dim, then "
            "the hidden sizes in reverse order, then 784 pixels."
        )
    kinds = _layer_kinds(layers)
    assert kinds[-1] == "Sigmoid", (
        f"{label}.layers ends with {kinds[-1]}: end it with nn.Sigmoid(), which keeps every "
        "output pixel in [0, 1] like the input images."
    )
    wanted = ["Linear", "ReLU"] * len(hidden_sizes) + ["Linear", "Sigmoid"]
    assert kinds == wanted, (
        f"{label}.layers is {kinds}; expected {wanted}: one nn.ReLU() after each hidden "
        "Linear layer, nn.Sigmoid() after the last."
    )
    codes = torch.randn(5, latent_dim, generator=torch.Generator().manual_seed(0)) * 10
    x_hat = decoder(codes)
    assert isinstance(x_hat, torch.Tensor), f"Decoder.forward returned {type(x_hat).__name__}."
    assert x_hat.shape != (5, 784), (
        "Decoder.forward returned shape (5, 784): reshape the layers' output to images "
        "(N, 1, 28, 28), e.g. with .unflatten(1, (1, 28, 28))."
    )
    assert x_hat.shape == (5, 1, 28, 28), (
        f"Decoder.forward returned shape {tuple(x_hat.shape)} for codes (5, {latent_dim}); "
        "expected (5, 1, 28, 28)."
    )
    assert torch.allclose(x_hat.flatten(start_dim=1), layers(codes)), (
        "Decoder.forward does not return self.layers applied to the latent codes: use each "
        "layer once, in order, then reshape."
    )
    print(f"Decoder check passed: (5, {latent_dim}) -> (5, 1, 28, 28), values in [0, 1].")


def check_autoencoder(latent_dim: int = 4, seed: int = 0) -> None:
    """Autoencoder.forward: x_hat = decoder(encoder(x)), and gradients reach both parts.

    Runs forward with stand-in encoder and decoder (known to be right) in place of yours, so
    it fails only for a mistake in Autoencoder.forward.
    """
    model = Autoencoder.__new__(Autoencoder)  # an Autoencoder without building its parts
    nn.Module.__init__(model)
    model.encoder = _seeded(seed, lambda: StandInEncoder(latent_dim))
    model.decoder = _seeded(seed + 1, lambda: stand_in_decoder(latent_dim))
    images = random_images(3, seed)
    x_hat = model(images)
    assert isinstance(x_hat, torch.Tensor), (
        f"Autoencoder.forward returned {type(x_hat).__name__}: set x_hat."
    )
    assert x_hat.shape == images.shape, (
        f"Autoencoder.forward returned shape {tuple(x_hat.shape)} for images "
        f"{tuple(images.shape)}: return the decoder's output for the encoder's latent codes."
    )
    expected = model.decoder(model.encoder(images))
    assert torch.allclose(x_hat, expected), (
        "Autoencoder.forward does not return decoder(encoder(x)): decode the latent codes "
        "of the images."
    )
    F.mse_loss(x_hat, images).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert not missing, (
        f"No gradient reaches {missing[0].split('.')[0]} ({len(missing)} parameters): do not "
        "detach the latent code or the output (.detach(), torch.no_grad())."
    )
    print("Autoencoder check passed: x_hat = decoder(encoder(x)), gradients reach all layers.")


def check_classifier(latent_dim: int = 6, seed: int = 0) -> None:
    """Classifier: logits = head(encoder(x)) with one Linear head; the encoder is kept, trained.

    Uses a stand-in encoder (known to be right), so it fails only for a mistake in Classifier.
    """
    encoder = _seeded(seed, lambda: StandInEncoder(latent_dim))
    model = _seeded(seed + 1, lambda: Classifier(encoder))
    assert model.encoder is encoder, (
        "Classifier.encoder is not the encoder it was given (a copy?): keep that one object "
        "(self.encoder = encoder) so that training the classifier trains the pretrained encoder."
    )
    assert isinstance(model.head, nn.Module), (
        f"Classifier.head is {type(model.head).__name__}: set self.head to an nn.Linear layer."
    )
    assert_linear_only(model)
    head_sizes = linear_layer_sizes(model.head)
    assert head_sizes == [(latent_dim, 10)], (
        f"The head has linear layers {head_sizes}; expected one Linear(encoder.latent_dim, 10) "
        f"= [({latent_dim}, 10)]."
    )
    images = random_images(7, seed)
    logits = model(images)
    assert isinstance(logits, torch.Tensor), (
        f"Classifier.forward returned {type(logits).__name__}: set logits."
    )
    assert logits.shape == (7, 10), (
        f"Classifier.forward returned shape {tuple(logits.shape)} for 7 images; expected (7, 10)."
    )
    head = next(m for m in model.head.modules() if isinstance(m, nn.Linear))
    codes = encoder(images)
    expected = F.linear(codes, head.weight, head.bias)
    if not torch.allclose(logits, expected, atol=1e-5):
        assert not torch.allclose(logits, F.linear(codes.relu(), head.weight, head.bias)), (
            "Classifier.forward applies a ReLU between the encoder and the head: pass the "
            "latent code to the head as it is (its negative values carry information too)."
        )
        assert not torch.allclose(logits.sum(dim=1), torch.ones(7)), (
            "Classifier.forward returns probabilities (softmax): return the head's raw logits; "
            "F.cross_entropy applies the softmax itself."
        )
        raise AssertionError(
            "Classifier.forward does not return head(encoder(x)): one linear head on the latent "
            "code, with no activation before or after it."
        )
    logits.sum().backward()
    assert all(p.grad is not None for p in encoder.parameters()), (
        "No gradient reaches the encoder: run the images through self.encoder in forward "
        "without .detach() or torch.no_grad()."
    )
    print("Classifier check passed: (7, 1, 28, 28) -> (7, 10), gradients reach the encoder.")


# --- The steps ------------------------------------------------------------------------------


def _run_step(name: str, call: Callable[[], object], training: bool) -> object:
    """``call()``, with the errors that typical mistakes raise turned into what to change."""
    try:
        return call()
    except AttributeError as error:
        for unset in ("loss", "logits"):
            method = {"loss": "'item'", "logits": "'argmax'"}[unset]
            if "'NoneType' object" in str(error) and method in str(error):
                raise AssertionError(
                    f"{name} left {unset} = None: set {unset} in your code (see the comment "
                    "above it)."
                ) from error
        raise
    except RuntimeError as error:
        if "does not require grad" not in str(error):
            raise
        if not training:
            raise AssertionError(
                f"{name} calls backward(): a validation step only measures the loss; no "
                "backward, no optimizer step."
            ) from error
        raise AssertionError(
            f"{name}: loss.backward() found no graph to go back through: compute the loss from "
            "model(images) directly, not under torch.no_grad() or from a .detach()ed tensor."
        ) from error


def _as_float_loss(name: str, value: object) -> float:
    assert not isinstance(value, torch.Tensor), (
        f"{name} returned the loss as a tensor: return loss.item(), a Python float (a tensor "
        "keeps the whole graph alive and breaks the history and the plots)."
    )
    assert isinstance(value, float), (
        f"{name} returned the loss as {type(value).__name__}: return loss.item(), a Python float."
    )
    return value


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


def _gradients(model: nn.Module, loss_of: Callable[[nn.Module], torch.Tensor]) -> list:
    """The gradient of ``loss_of(model)`` for each parameter, computed on a copy of the model."""
    twin = copy.deepcopy(model)
    return list(torch.autograd.grad(loss_of(twin), list(twin.parameters())))


def _check_one_step(
    name: str,
    step: Callable[[nn.Module, torch.optim.Optimizer], float],
    model: nn.Module,
    loss_of: Callable[[nn.Module], torch.Tensor],
) -> None:
    """What every training step must do to the gradients and the weights.

    ``step(model, optimizer)`` runs the student's step and returns its loss; ``loss_of(model)``
    is the loss of the batch that the step should backpropagate (the reference, as a tensor).
    """
    # Gradients left over from an earlier step (here: all ones) must not add up with new ones.
    stale = copy.deepcopy(model)
    true_gradients = _gradients(stale, loss_of)
    for parameter in stale.parameters():
        parameter.grad = torch.ones_like(parameter)
    step(stale, torch.optim.SGD(stale.parameters(), lr=0.0))
    added = [p.grad for p in stale.parameters()]
    if all(g is not None for g in added) and all(
        torch.allclose(g, t + 1, atol=1e-6) for g, t in zip(added, true_gradients, strict=True)
    ):
        raise AssertionError(
            f"{name} lets the gradients of earlier steps add up: call optimizer.zero_grad() "
            "before loss.backward()."
        )
    # One step of SGD must move the weights by -lr * gradient of the batch's loss.
    moved = copy.deepcopy(model)
    before = [p.detach().clone() for p in moved.parameters()]
    reached = []  # parameters that loss.backward() reached
    hooks = [
        p.register_post_accumulate_grad_hook(lambda p: reached.append(p))
        for p in moved.parameters()
    ]
    step(moved, torch.optim.SGD(moved.parameters(), lr=STEP_LR))
    for hook in hooks:
        hook.remove()
    after = [p.detach() for p in moved.parameters()]
    if all(torch.equal(a, b) for a, b in zip(after, before, strict=True)):
        assert reached, (
            f"{name} changed no weight and computed no gradient: call loss.backward(), then "
            "optimizer.step()."
        )
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in moved.parameters()), (
            f"{name} changed no weight because the gradients were reset after loss.backward(): "
            "call optimizer.zero_grad() first, then loss.backward(), then optimizer.step()."
        )
        raise AssertionError(
            f"{name} changed no weight: call optimizer.step() after loss.backward()."
        )
    expected = [b - STEP_LR * g for b, g in zip(before, true_gradients, strict=True)]
    assert all(torch.allclose(a, e, atol=1e-5) for a, e in zip(after, expected, strict=True)), (
        f"{name} did not move the weights by one optimizer step along the gradient of the "
        "batch's loss: call loss.backward() on the loss you return, then optimizer.step() once."
    )


def _check_training_lowers_the_loss(
    name: str,
    step: Callable[[nn.Module, torch.optim.Optimizer], float],
    model: nn.Module,
    steps: int,
) -> tuple[float, float]:
    """A few Adam steps on one batch lower the loss (the last line of defence)."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = [step(model, optimizer) for _ in range(steps)]
    assert losses[-1] < losses[0] * 0.9, (
        f"{steps} steps of {name} did not lower the loss ({losses[0]:.4f} -> {losses[-1]:.4f}) "
        "although each step looked right: train the model you are given, with the optimizer "
        "you are given."
    )
    return losses[0], losses[-1]


def _check_unchanged(name: str, model: nn.Module, before: dict) -> None:
    changed = [k for k, v in model.state_dict().items() if not torch.equal(before[k], v)]
    assert not changed, (
        f"{name} changed the weights ({changed[0]}): a validation step only measures."
    )


def _wrong_autoencoder_loss(name: str, returned: float, model, images, kind: str) -> str | None:
    """The typical mistake that explains a wrong reconstruction loss, if there is one."""
    other = "l1" if kind == "l2" else "l2"
    other_loss = {"l1": F.l1_loss, "l2": F.mse_loss}[other](model(images), images).item()
    if _close(returned, other_loss):
        return (
            f"{name} returned the {other.upper()} loss for loss_kind={kind!r}: pass loss_kind on "
            "to reconstruction_loss."
        )
    summed = {"l1": F.l1_loss, "l2": F.mse_loss}[kind](model(images), images, reduction="sum")
    if _close(returned, summed.item()):
        return (
            f"{name} returned the loss summed over all pixels: use reconstruction_loss, the "
            "mean over all pixels of all images."
        )
    return None


def check_autoencoder_steps(batch_size: int = 16, steps: int = 20, seed: int = 0) -> None:
    """autoencoder_val_step and autoencoder_train_step, on a stand-in autoencoder.

    Validation: returns the mean L2 / L1 reconstruction loss and changes no weight. Training:
    returns the batch's loss as a float, resets the gradients, backpropagates and takes one
    optimizer step; a few steps lower the loss.
    """
    model = _seeded(seed, lambda: nn.Sequential(StandInEncoder(4), stand_in_decoder(4)))
    images, _ = labeled_patterns(batch_size, seed)
    losses = {"l2": F.mse_loss, "l1": F.l1_loss}

    model.eval()
    weights = copy.deepcopy(model.state_dict())
    for kind, loss_function in losses.items():
        name = "autoencoder_val_step"
        returned = _run_step(name, lambda k=kind: autoencoder_val_step(model, images, k), False)
        returned = _as_float_loss(name, returned)
        with torch.no_grad():
            expected = loss_function(model(images), images).item()
            wrong = _wrong_autoencoder_loss(name, returned, model, images, kind)
        assert _close(returned, expected), wrong or (
            f"{name} returned {returned:.5f} for loss_kind={kind!r}; the {kind.upper()} "
            f"reconstruction loss of the batch is {expected:.5f}."
        )
    _check_unchanged("autoencoder_val_step", model, weights)

    model.train()
    name = "autoencoder_train_step"
    for kind, loss_function in losses.items():

        def step(m: nn.Module, optimizer: torch.optim.Optimizer, kind: str = kind) -> float:
            returned = _run_step(
                name, lambda: autoencoder_train_step(m, images, optimizer, kind), True
            )
            return _as_float_loss(name, returned)

        def loss_of(m: nn.Module, loss_function=loss_function) -> torch.Tensor:
            return loss_function(m(images), images)

        probe = copy.deepcopy(model)
        expected = loss_of(probe).item()
        returned = step(probe, torch.optim.SGD(probe.parameters(), lr=0.0))
        with torch.no_grad():
            wrong = _wrong_autoencoder_loss(name, returned, model, images, kind)
        assert _close(returned, expected), wrong or (
            f"{name} returned {returned:.5f} for loss_kind={kind!r}; the {kind.upper()} "
            f"reconstruction loss of the batch before the step is {expected:.5f}."
        )
        _check_one_step(name, step, model, loss_of)
    first, last = _check_training_lowers_the_loss(name, step, model, steps)
    print(f"Autoencoder steps passed: training loss {first:.4f} -> {last:.4f}.")


def _wrong_classifier_loss(name: str, returned: float, logits, labels) -> str | None:
    """The typical mistake that explains a wrong cross-entropy, if there is one."""
    if _close(returned, F.cross_entropy(logits.softmax(dim=1), labels).item()):
        return (
            f"{name} applies softmax before F.cross_entropy, which applies log-softmax itself: "
            "pass the raw logits."
        )
    if _close(returned, F.nll_loss(logits, labels).item()):
        return (
            f"{name} uses F.nll_loss on the logits, which expects log-probabilities: use "
            "F.cross_entropy on the raw logits."
        )
    if _close(returned, F.cross_entropy(logits, labels, reduction="sum").item()):
        return f"{name} sums the loss over the batch: use F.cross_entropy's mean (the default)."
    return None


def check_classifier_steps(batch_size: int = 20, steps: int = 20, seed: int = 0) -> None:
    """classifier_val_step and classifier_train_step, on a stand-in classifier.

    Both return (the batch's cross-entropy as a float, the number of correct predictions); the
    validation step changes no weight; the training step resets the gradients, backpropagates
    the cross-entropy of the raw logits and takes one optimizer step; a few steps lower the loss.
    """
    model = _seeded(seed, lambda: nn.Sequential(StandInEncoder(8, hidden=32), nn.Linear(8, 10)))
    images, labels = labeled_patterns(batch_size, seed)

    def check_result(name: str, result: object, logits: torch.Tensor) -> float:
        assert isinstance(result, tuple) and len(result) == 2, (
            f"{name} returned {type(result).__name__}; keep the given line that returns "
            "(loss.item(), count_correct(logits, labels))."
        )
        returned, correct = _as_float_loss(name, result[0]), result[1]
        expected = F.cross_entropy(logits, labels).item()
        assert _close(returned, expected), _wrong_classifier_loss(
            name, returned, logits, labels
        ) or (
            f"{name} returned the loss {returned:.4f}; the cross-entropy of the batch's logits "
            f"is {expected:.4f}."
        )
        right = int((logits.argmax(dim=1) == labels).sum())
        assert correct == right, (
            f"{name} counted {correct} correct of {len(labels)}, the logits of the batch give "
            f"{right}: set logits to model(images) of this batch, before the update."
        )
        return returned

    model.eval()
    name = "classifier_val_step"
    weights = copy.deepcopy(model.state_dict())
    result = _run_step(name, lambda: classifier_val_step(model, images, labels), False)
    with torch.no_grad():
        check_result(name, result, model(images))
    _check_unchanged(name, model, weights)

    model.train()
    name = "classifier_train_step"

    def step(m: nn.Module, optimizer: torch.optim.Optimizer) -> float:
        return _run_step(name, lambda: classifier_train_step(m, images, labels, optimizer), True)[0]

    def loss_of(m: nn.Module) -> torch.Tensor:
        return F.cross_entropy(m(images), labels)

    probe = copy.deepcopy(model)
    with torch.no_grad():
        logits = probe(images)
    result = _run_step(
        name,
        lambda: classifier_train_step(
            probe, images, labels, torch.optim.SGD(probe.parameters(), lr=0.0)
        ),
        True,
    )
    check_result(name, result, logits)
    _check_one_step(name, step, model, loss_of)
    first, last = _check_training_lowers_the_loss(name, step, model, steps)
    print(f"Classifier steps passed: training loss {first:.3f} -> {last:.3f}.")


# --- The trained models ---------------------------------------------------------------------

PARTS = {
    "the encoder (section 2)": check_encoder,
    "the decoder (section 2)": check_decoder,
    "the autoencoder (section 2)": check_autoencoder,
    "the classifier (section 2)": check_classifier,
    "the autoencoder steps (section 3)": check_autoencoder_steps,
    "the classifier steps (section 3)": check_classifier_steps,
}
"""The checks of the parts a trained model is made of, in the notebook's order."""

AUTOENCODER_PARTS = (
    "the encoder (section 2)",
    "the decoder (section 2)",
    "the autoencoder (section 2)",
    "the autoencoder steps (section 3)",
)
"""The parts that the trained autoencoder depends on."""


def failing_part(parts: tuple[str, ...] | None = None) -> str | None:
    """The first of ``parts`` (names in PARTS; None: all of them) whose check fails, as one
    sentence with that check's message, or None when they all pass.

    A trained model that falls short is most often the result of a mistake in one of its parts,
    not of its hyperparameters: this is what the trained-model checks say first.
    """
    for name in parts or tuple(PARTS):
        try:
            with torch.random.fork_rng(), contextlib.redirect_stdout(io.StringIO()):
                PARTS[name]()
        except Exception as error:  # an AssertionError, or e.g. a NotImplementedError
            kind = "" if isinstance(error, AssertionError) else f"{type(error).__name__}: "
            message = f"{kind}{error}".strip()
            return f"the check of {name} fails: {message}{'' if message.endswith('.') else '.'}"
    return None


def _short_of(result: str, parts: tuple[str, ...] | None, advice: str) -> str:
    """Why a trained model fell short: an earlier part that fails its check, else ``advice``."""
    cause = failing_part(parts)
    if cause is None:
        return f"{result}: {advice}"
    return (
        f"{result} because an earlier part is wrong: {cause} Fix that part first (its check "
        "cell says how), then run the notebook again from there; hyperparameters will not help."
    )


def check_trained_autoencoder(
    autoencoder: nn.Module, images: torch.Tensor, max_error: float = 0.035
) -> None:
    """The trained autoencoder's mean squared reconstruction error on ``images`` is below
    ``max_error``, its reconstructions have the images' shape and lie in [0, 1]."""
    with torch.no_grad():
        reconstructions = autoencoder.eval()(images[:50])
    assert reconstructions.shape == images[:50].shape, (
        f"The autoencoder returns shape {tuple(reconstructions.shape)} for images "
        f"{tuple(images[:50].shape)}."
    )
    assert 0 <= float(reconstructions.min()) and float(reconstructions.max()) <= 1, (
        "The autoencoder's reconstructions leave [0, 1]: end the decoder with nn.Sigmoid()."
    )
    error = evaluate_autoencoder(autoencoder, images, "l2")
    print(f"Mean squared reconstruction error on {len(images):,} held-out images: {error:.4f}")
    if error >= max_error:
        raise AssertionError(
            _short_of(
                f"The reconstruction error {error:.4f} is not below {max_error}",
                AUTOENCODER_PARTS,
                "train the autoencoder longer (AE_EPOCHS) or with a larger latent code "
                "(LATENT_DIM), in section 4.",
            )
        )


def check_saved_classifier(
    path: str | Path, images: torch.Tensor, labels: torch.Tensor, min_accuracy: float = 0.6
) -> None:
    """The saved classifier follows the model rules and reaches ``min_accuracy`` on the images."""
    full_path = require_saved(str(path))
    check_model_file(full_path)
    model = load_checked_model(full_path).module()
    reached = accuracy(model, images, labels)
    print(f"Saved classifier: accuracy {reached:.2f} on {len(labels)} labeled images")
    if reached < min_accuracy:
        raise AssertionError(
            _short_of(
                f"The saved classifier reaches {reached:.2f}, below {min_accuracy}",
                None,
                "improve the final model (section 8) and run its cell again.",
            )
        )
    one_by_one = torch.cat([predict(model, images[i : i + 1]) for i in range(5)])
    assert torch.allclose(one_by_one, predict(model, images[:5]), atol=1e-4), (
        "The saved classifier gives other logits for an image alone than in a batch: its "
        "forward must treat every image on its own."
    )
