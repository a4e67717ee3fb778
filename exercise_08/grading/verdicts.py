"""Verdicts of exercise_08's graded cells, decided in the grader's own process from probe data.

Instructor side only (never released). Each verdict gets the data a probe (:mod:`.probes`)
returned from the sandbox, and a context (:class:`autograder.trusted.Context`: the seed, the
reference solution's modules, the public splits). It rebuilds the probe's inputs from the seed,
runs the reference solution on them and compares. When they differ, it looks for the typical
mistake that explains the difference (a known wrong variant of the reference) so that the
student reads the cause and what to change, never a fix that does not match what failed.

``judge(check, data, context)`` returns ``(passed, message)``; the message is "" when passed.

Probe data is hostile data: any number in it may be NaN or infinite, and NaN compares False
with everything, so ``nan >= limit`` would let it through. Every check therefore looks for
non-finite numbers first (:func:`non_finite`) and fails with a sentence naming them, and every
threshold is written as ``not (value < limit)``, which NaN can never pass.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import probes

Result = tuple[bool, str]
PASS: Result = (True, "")
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}
MAX_LATENT_DIM = 128
"""A saved autoencoder's bottleneck may hold at most this many numbers (784 would copy the
image: no bottleneck at all)."""


def fail(message: str) -> Result:
    return False, message


def is_finite(value: object) -> bool:
    """Whether ``value`` (an array, a number, or a list of them) holds finite numbers only;
    anything else (text, None) counts as finite here: other checks judge its type."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "fc" or bool(np.isfinite(value).all())
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(is_finite(item) for item in value)
    return True


def non_finite(data: dict, prefix: str = "", skip: tuple[str, ...] = ()) -> str:
    """The first key (of those starting with ``prefix``, none ending in ``skip``) whose value
    holds NaN or an infinity, else ""."""
    for key, value in data.items():
        if key.startswith(prefix) and not (skip and key.endswith(skip)) and not is_finite(value):
            return key
    return ""


def non_finite_message(what: str, key: str, change: str) -> str:
    """The sentence for NaN or infinite numbers in ``key`` of what a probe returned."""
    return f"{what} gave NaN or infinite numbers ({key}), so it cannot pass; {change}"


def close(value: object, expected: torch.Tensor) -> bool:
    """Whether probe data ``value`` is an array equal to ``expected`` up to float rounding."""
    if not isinstance(value, np.ndarray) or value.shape != tuple(expected.shape):
        return False
    if value.dtype.kind != "f" or not np.isfinite(value).all():
        return False
    return bool(torch.allclose(torch.from_numpy(value).double(), expected.double(), **TOLERANCE))


def _load_linear(model: nn.Module, data: dict, prefix: str) -> bool:
    """Copy the probe's linear weights (in order) into ``model``'s; False if they do not fit
    or are not all finite."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for number, layer in enumerate(layers):
            weight, bias = data.get(f"{prefix}w{number}"), data.get(f"{prefix}b{number}")
            if not isinstance(weight, np.ndarray) or weight.shape != tuple(layer.weight.shape):
                return False
            if not isinstance(bias, np.ndarray) or bias.shape != tuple(layer.bias.shape):
                return False
            if not (is_finite(weight) and is_finite(bias)):
                return False
            layer.weight.copy_(torch.from_numpy(weight))
            layer.bias.copy_(torch.from_numpy(bias))
    return True


def _sizes(data: dict, prefix: str) -> list[tuple[int, int]] | None:
    count = data.get(f"{prefix}layers")
    if not isinstance(count, int) or not 0 <= count <= 64:
        return None
    shapes = [data.get(f"{prefix}w{n}") for n in range(count)]
    if not all(isinstance(s, np.ndarray) and s.ndim == 2 for s in shapes):
        return None
    return [(int(s.shape[1]), int(s.shape[0])) for s in shapes]


# ----------------------------------------------------------------------------- networks


def judge_networks(data: dict, context, decoder: bool) -> Result:
    networks = context.reference("networks")
    kind = "Decoder" if decoder else "Encoder"
    for case, (latent, hidden) in enumerate(probes.network_cases(context.seed)):
        prefix, label = f"c{case}_", f"{kind}({latent}, {hidden})"
        if f"{prefix}error" in data:
            return fail(
                f"{label} raised {data[f'{prefix}error']}; fix that in exercise_code/networks.py."
            )
        bad = non_finite(data, prefix)
        if bad:
            return fail(
                non_finite_message(
                    label,
                    bad,
                    "initialize its layers as nn.Linear does (do not overwrite the weights) and "
                    "check exercise_code/networks.py.",
                )
            )
        sizes = [784, *hidden, latent]
        if decoder:
            sizes = sizes[::-1]
        expected = list(zip(sizes[:-1], sizes[1:], strict=True))
        found = _sizes(data, prefix)
        if found != expected:
            return fail(
                f"{label} has the linear layers (in, out) {found}, expected {expected} as in the "
                "docstring; build one nn.Linear per step, in that order."
            )
        model = networks.Decoder(latent, hidden) if decoder else networks.Encoder(latent, hidden)
        if not _load_linear(model, data, prefix):
            return fail(f"{label}'s linear layers need a bias (nn.Linear's default, bias=True).")
        inputs = (
            probes.network_input(context.seed, case, latent)
            if decoder
            else probes.images(context.seed + case, 5 + case)
        )
        with torch.no_grad():
            expected_out = model(inputs)
        out = data.get(f"{prefix}out")
        if not isinstance(out, np.ndarray) or out.shape != tuple(expected_out.shape):
            shape = None if not isinstance(out, np.ndarray) else out.shape
            return fail(
                f"{label} returned shape {shape} for {tuple(inputs.shape)}, expected "
                f"{tuple(expected_out.shape)}"
                + ("; reshape the (N, 784) output to (N, 1, 28, 28)." if decoder else ".")
            )
        if close(out, expected_out):
            continue
        return fail(_network_mistake(label, out, model, inputs, decoder))
    return PASS


def _network_mistake(label: str, out: np.ndarray, model: nn.Module, inputs, decoder: bool) -> str:
    """Name the typical mistake that makes ``out`` differ from the reference ``model``."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        pre = inputs.flatten(1) if not decoder else inputs
        for number, layer in enumerate(linears):
            pre = layer(pre)
            if number < len(linears) - 1:
                pre = torch.relu(pre)
    if not decoder and close(out, torch.relu(pre)):
        return (
            f"{label} applies an activation after its last layer; the latent code must be that "
            "layer's output as it is (no ReLU after the last nn.Linear)."
        )
    if decoder and close(out, pre.unflatten(1, probes.IMAGE_SHAPE)):
        return f"{label} lacks the final sigmoid; end self.layers with nn.Sigmoid()."
    if decoder and (out.min() < 0 or out.max() > 1):
        return f"{label} returns values outside [0, 1]; end self.layers with nn.Sigmoid()."
    return (
        f"{label} computes something else than the docstring's network (with your own weights "
        "put into the reference layers, the outputs differ); check the order of the layers and "
        "a ReLU after each hidden layer."
    )


def judge_autoencoder(data: dict, context) -> Result:
    seed = context.seed
    if "error" in data:
        return fail(
            f"Autoencoder.forward raised {data['error']}; fix it in exercise_code/networks.py."
        )
    bad = non_finite(data, skip=("grads",))
    if bad:
        return fail(
            non_finite_message(
                "Autoencoder.forward",
                bad,
                "for a known encoder and decoder it must return self.decoder(self.encoder(x)).",
            )
        )
    encoder, decoder = probes.GraderEncoder(4, 16, seed), probes.GraderDecoder(4, 16, seed + 1)
    x = probes.images(seed, 6)
    expected = decoder(encoder(x))
    expected.square().mean().backward()
    grads = torch.cat([probes.flat_gradients(encoder), probes.flat_gradients(decoder)])
    if not close(data.get("out"), expected.detach()):
        return fail(
            "Autoencoder.forward must return self.decoder(self.encoder(x)) (it returned something "
            "else for a known encoder and decoder)."
        )
    if not close(data.get("grads"), grads):
        return fail(
            "Gradients do not flow through Autoencoder.forward to every layer; do not detach or "
            "use torch.no_grad() in forward."
        )
    return PASS


def judge_classifier(data: dict, context) -> Result:
    seed = context.seed
    encoder = probes.GraderEncoder(5, 16, seed)
    if "error" in data and "keeps_encoder" not in data:
        return fail(
            f"Classifier(encoder) raised {data['error']}; fix it in exercise_code/networks.py."
        )
    if data.get("keeps_encoder") is not True:
        return fail(
            "Classifier must keep the encoder it is given as self.encoder (not a copy), so "
            "training the classifier fine-tunes the pretrained encoder."
        )
    if data.get("head_sizes") != [[5, 10]]:
        return fail(
            f"The head has the linear layers {data.get('head_sizes')}, expected one "
            "nn.Linear(encoder.latent_dim, 10), i.e. [[5, 10]] for a latent size of 5."
        )
    if "error" in data:
        return fail(
            f"Classifier.forward raised {data['error']}; fix it in exercise_code/networks.py."
        )
    bad = non_finite(data, skip=("grads",))
    if bad:
        return fail(
            non_finite_message(
                "Classifier", bad, "feed the encoder's latent code to an nn.Linear head as it is."
            )
        )
    head = nn.Linear(5, 10)
    if not _load_linear(head, data, "head_"):
        return fail("The head's nn.Linear needs a bias (nn.Linear's default).")
    x = probes.images(seed, 7)
    codes = encoder(x)
    expected = head(codes)
    if not close(data.get("logits"), expected.detach()):
        if close(data.get("logits"), head(torch.relu(codes)).detach()):
            return fail(
                "Classifier.forward applies a ReLU between the encoder and the head; feed the "
                "latent code to the head as it is (its negative values matter)."
            )
        return fail("Classifier.forward must return self.head(self.encoder(x)).")
    F.cross_entropy(expected, probes.labels(seed, 7)).backward()
    if not close(data.get("encoder_grads"), probes.flat_gradients(encoder)):
        return fail(
            "Gradients do not reach the encoder through Classifier.forward; run the images "
            "through self.encoder without detach() or torch.no_grad()."
        )
    return PASS


# ----------------------------------------------------------------------------- steps


_NO_GRADIENT_KEYS = tuple(f"grads{n}" for n in range(probes.STEPS))
"""Gradients are NaN where there were none (the probes' mark for "no backward"): they are
judged by comparison (:func:`close` requires finite numbers), not refused as NaN."""
_STEP_ADVICE = (
    "compute the loss of this batch with the given loss function, then zero_grad, backward and "
    "step once, and return loss.item()."
)


class _Variant:
    """Patches for the typical mistakes of a training step (applied to the reference)."""

    @staticmethod
    def no_zero_grad(model: nn.Module, optimizer) -> None:
        optimizer.zero_grad = lambda *args, **kwargs: None
        model.zero_grad = lambda *args, **kwargs: None


def _reference_run(step, model: nn.Module, arguments: tuple, variant=None) -> list[dict]:
    """Run a reference training step STEPS times; per step the returned values and weights."""
    optimizer = torch.optim.SGD(model.parameters(), lr=probes.LEARNING_RATE)
    if variant is not None:
        variant(model, optimizer)
    model.train()
    runs = []
    for _ in range(probes.STEPS):
        returned = step(model, *arguments, optimizer)
        values = returned if isinstance(returned, tuple) else (returned,)
        runs.append({"values": [float(v) for v in values], "params": probes.flat_parameters(model)})
    return runs


def _matches(data: dict, prefix: str, runs: list[dict]) -> bool:
    for number, run in enumerate(runs):
        if not close(data.get(f"{prefix}params{number}"), run["params"]):
            return False
    return True


def _values_match(found: object, expected: list[float], tolerance: float = 1e-4) -> bool:
    return (
        isinstance(found, list)
        and len(found) == len(expected)
        and all(
            isinstance(f, int | float) and math.isclose(f, e, rel_tol=tolerance, abs_tol=1e-6)
            for f, e in zip(found, expected, strict=True)
        )
    )


def _train_mistake(
    data: dict, prefix: str, name: str, initial: torch.Tensor, variants: dict
) -> str:
    """The typical mistake behind a training step whose weights differ from the reference's."""
    first = data.get(f"{prefix}params0")
    grads = data.get(f"{prefix}grads0")
    if isinstance(grads, np.ndarray) and np.isnan(grads).all():
        return f"{name} computes no gradients; call loss.backward() before optimizer.step()."
    if close(first, initial):
        return f"{name} does not change the weights; call optimizer.step() after loss.backward()."
    for message, runs in variants.items():
        if _matches(data, prefix, runs):
            return message
    return (
        f"{name} changes the weights differently from one gradient step of its loss; compute the "
        "loss of this batch, then zero_grad, backward and step, once per call."
    )


def _check_types(data: dict, prefix: str, name: str, expected: str) -> str:
    for number in range(probes.STEPS):
        found = data.get(f"{prefix}types{number}", data.get(f"{prefix}types"))
        if found is None:
            break
        if found != expected:
            what = "loss.item() (a Python float)" if "Tensor" in str(found) else expected
            return f"{name} returned ({found}); it must return {what}, as its docstring says."
    return ""


def judge_autoencoder_steps(data: dict, context) -> Result:
    training = context.reference("training")
    seed = context.seed
    batch, _ = probes.step_batch(seed)
    name = "autoencoder_train_step"
    initial = probes.flat_parameters(probes.step_autoencoder(seed))
    for kind in ("l2", "l1"):
        prefix = f"train_{kind}_"
        if f"{prefix}error" in data:
            return fail(f"{name}(..., loss_kind={kind!r}) raised {data[f'{prefix}error']}.")
        type_problem = _check_types(data, prefix, name, "float")
        if type_problem:
            return fail(type_problem)
        bad = non_finite(data, prefix, skip=_NO_GRADIENT_KEYS)
        if bad:
            return fail(non_finite_message(name, bad, _STEP_ADVICE))

        def step(m, x, o, kind=kind):
            return training.autoencoder_train_step(m, x, o, kind)

        runs = _reference_run(step, probes.step_autoencoder(seed), (batch,))
        if _matches(data, prefix, runs):
            if not all(
                _values_match(data.get(f"{prefix}values{n}"), r["values"])
                for n, r in enumerate(runs)
            ):
                return fail(
                    f"{name} returns another number than the batch's loss; return loss.item()."
                )
            continue
        other = "l1" if kind == "l2" else "l2"
        variants = {
            f"{name} lets the gradients of earlier steps add up; call optimizer.zero_grad() "
            "before loss.backward()": _reference_run(
                step, probes.step_autoencoder(seed), (batch,), _Variant.no_zero_grad
            ),
            f"{name} ignores loss_kind={kind!r} (it trains with {other!r}); pass loss_kind to "
            "reconstruction_loss": _reference_run(
                lambda m, x, o, other=other: training.autoencoder_train_step(m, x, o, other),
                probes.step_autoencoder(seed),
                (batch,),
            ),
        }
        variants = {f"{k}.": v for k, v in variants.items()}
        return fail(_train_mistake(data, prefix, name, initial, variants))
    return _judge_validation(
        data,
        "autoencoder_val_step",
        {
            kind: training.autoencoder_val_step(probes.step_autoencoder(seed).eval(), batch, kind)
            for kind in ("l2", "l1")
        },
    )


def _judge_validation(data: dict, name: str, expected: dict) -> Result:
    for kind, value in expected.items():
        prefix = f"val_{kind}_" if kind else "val_"
        if f"{prefix}error" in data:
            return fail(f"{name} raised {data[f'{prefix}error']}.")
        bad = non_finite(data, prefix)
        if bad:
            return fail(non_finite_message(name, bad, "return the batch's loss as loss.item()."))
        values = value if isinstance(value, tuple) else (value,)
        types = ",".join("float" if isinstance(v, float) else "int" for v in values)
        if data.get(f"{prefix}types") != types:
            what = (
                "loss.item() (a Python float)"
                if "Tensor" in str(data.get(f"{prefix}types"))
                else types
            )
            return fail(f"{name} returned ({data.get(f'{prefix}types')}); it must return {what}.")
        if data.get(f"{prefix}changed") is not False or data.get(f"{prefix}grads") is not False:
            return fail(
                f"{name} changed the weights or computed gradients; only evaluate the loss, with "
                "no backward and no optimizer step (the function runs under torch.no_grad())."
            )
        if data.get(f"{prefix}training") is not False:
            return fail(f"{name} switched the model to training mode; leave its mode as it is.")
        if not _values_match(data.get(f"{prefix}values"), [float(v) for v in values]):
            found = data.get(f"{prefix}values")
            suffix = f" with loss_kind={kind!r}" if kind else ""
            return fail(
                f"{name} returned {found}{suffix}, expected "
                f"{[round(float(v), 5) for v in values]}; "
                "compute the loss of the model's output for this batch"
                + (
                    " with reconstruction_loss(..., loss_kind)."
                    if kind
                    else " with F.cross_entropy."
                )
            )
    return PASS


def judge_classifier_steps(data: dict, context) -> Result:
    training = context.reference("training")
    seed = context.seed
    batch, targets = probes.step_batch(seed)
    name = "classifier_train_step"
    if "train_error" in data:
        return fail(f"{name} raised {data['train_error']}.")
    type_problem = _check_types(data, "train_", name, "float,int")
    if type_problem:
        return fail(type_problem)
    bad = non_finite(data, "train_", skip=_NO_GRADIENT_KEYS)
    if bad:
        return fail(non_finite_message(name, bad, _STEP_ADVICE))
    runs = _reference_run(
        training.classifier_train_step, probes.step_classifier(seed), (batch, targets)
    )
    if not _matches(data, "train_", runs):

        def softmaxed(model: nn.Module, optimizer) -> None:
            model.append(nn.Softmax(dim=1))

        variants = {
            f"{name} lets the gradients of earlier steps add up; call optimizer.zero_grad() "
            "before loss.backward().": _reference_run(
                training.classifier_train_step,
                probes.step_classifier(seed),
                (batch, targets),
                _Variant.no_zero_grad,
            ),
            f"{name} applies softmax before the loss; F.cross_entropy takes the raw logits (it "
            "applies log-softmax itself).": _reference_run(
                training.classifier_train_step,
                probes.step_classifier(seed),
                (batch, targets),
                softmaxed,
            ),
        }
        initial = probes.flat_parameters(probes.step_classifier(seed))
        return fail(_train_mistake(data, "train_", name, initial, variants))
    for number, run in enumerate(runs):
        found = data.get(f"train_values{number}")
        if not _values_match(found, run["values"]):
            return fail(
                f"{name} returned {found} at step {number + 1}, expected (loss, number correct) = "
                f"{[round(v, 4) for v in run['values']]}; count the correct predictions of the "
                "logits you trained on."
            )
    model = probes.step_classifier(seed).eval()
    return _judge_validation(
        data, "classifier_val_step", {"": training.classifier_val_step(model, batch, targets)}
    )


# ----------------------------------------------------------------------------- saved files


def judge_trained_autoencoder(data: dict, context) -> Result:
    if data.get("missing"):
        return fail(
            "Your submission has no models/autoencoder.pt; run the autoencoder training cell "
            "(section 6), then create the zip again."
        )
    if "error" in data:
        return fail(
            f"models/autoencoder.pt cannot be read ({data['error']}); save it again with "
            "save_autoencoder (section 6) and create the zip again."
        )
    latent, hidden = data.get("latent_dim"), data.get("hidden_sizes")
    if (
        not isinstance(latent, int)
        or not isinstance(hidden, list)
        or not 1 <= latent <= MAX_LATENT_DIM
    ):
        return fail(
            f"The saved autoencoder's latent size is {latent}; use a bottleneck of 1 to "
            f"{MAX_LATENT_DIM} numbers, train it again and save it."
        )
    bad = non_finite(data)
    if bad:
        return fail(
            f"Your saved autoencoder has NaN or infinite weights ({bad}), so it cannot pass; "
            "train it again (a smaller learning rate keeps the loss finite) and save it with "
            "save_autoencoder."
        )
    networks = context.reference("networks")
    try:
        model = networks.Autoencoder(latent, tuple(hidden)).eval()
    except Exception:
        return fail(f"The saved autoencoder's hidden sizes {hidden} are not usable; save it again.")
    if not _load_linear(model, data, ""):
        return fail(
            "The saved autoencoder's layers do not match Autoencoder(latent_dim, hidden_sizes) "
            "of the docstrings; save the autoencoder you trained with save_autoencoder."
        )
    held_out = context.split("unlabeled").images[-1000:]
    test = context.split("labeled_test").images
    with torch.no_grad():
        mse = F.mse_loss(model(held_out), held_out).item()
        test_mse = F.mse_loss(model(test), test).item()
    if not (math.isfinite(mse) and math.isfinite(test_mse)):
        return fail(
            f"The saved autoencoder's reconstruction error is {mse} on the held-out images and "
            f"{test_mse} on the public test images (not finite numbers), so it cannot pass; train "
            "it again with a smaller learning rate and save it."
        )
    if not (mse < 0.035 and test_mse < 0.04):
        return fail(
            f"The saved autoencoder's reconstruction error is {mse:.4f} on the 1,000 held-out "
            f"images and {test_mse:.4f} on the public test images (limits 0.035 and 0.04); train "
            "it longer or with a larger latent size and save it again."
        )
    return PASS


def model_images(context) -> np.ndarray:
    """The public images the saved classifier is run on: the test split, then the val split."""
    splits = [context.split("labeled_test"), context.split("labeled_val")]
    return torch.cat([s.images for s in splits]).numpy()


def judge_saved_classifier(
    logits: np.ndarray, singles: np.ndarray, batched: np.ndarray, context
) -> Result:
    """The saved classifier on :func:`model_images` (``logits``): 60% on the public test and val
    splits; and the same logits for an image alone (``singles``) as in a batch (``batched``)."""
    for name, values in (("logits", logits), ("single-image logits", singles)):
        if not isinstance(values, np.ndarray) or not is_finite(values):
            return fail(
                f"The saved classifier returned NaN or infinite {name}, so it cannot pass; train "
                "it again with a smaller learning rate and save it with save_model."
            )
    test, val = context.split("labeled_test"), context.split("labeled_val")
    accuracies = []
    for part, split in ((logits[: len(test)], test), (logits[len(test) :], val)):
        accuracies.append(float((torch.from_numpy(part).argmax(1) == split.labels).float().mean()))
    if not (accuracies[0] >= 0.6 and accuracies[1] >= 0.6):
        return fail(
            f"The saved classifier reaches {accuracies[0]:.2f} on the public test split and "
            f"{accuracies[1]:.2f} on the validation split (0.60 needed); train it further "
            "(section 8) and save it again."
        )
    if not (np.shape(singles) == np.shape(batched) and np.allclose(singles, batched, atol=1e-4)):
        return fail(
            "The saved classifier gives an image other logits alone than in a batch; save it in "
            "eval mode with save_model."
        )
    return PASS


def public_saved_classifier(
    logits: np.ndarray, singles: np.ndarray, batched: np.ndarray, context
) -> bool | None:
    """The notebook's public line of test_saved_classifier (``check_saved_classifier`` on the
    public test split) on the same model run: 60% on the test split, and the same logits for an
    image alone as in a batch. None when the logits are not usable numbers. For the flag only."""
    test = context.split("labeled_test")
    part = logits[: len(test)] if isinstance(logits, np.ndarray) else None
    if part is None or not is_finite(part) or part.shape != (len(test), 10):
        return None
    accuracy = float((torch.from_numpy(part).argmax(1) == test.labels).float().mean())
    alike = np.shape(singles) == np.shape(batched) and np.allclose(singles, batched, atol=1e-4)
    return bool(accuracy >= 0.6 and alike)


JUDGES = {
    "test_encoder": lambda data, context: judge_networks(data, context, decoder=False),
    "test_decoder": lambda data, context: judge_networks(data, context, decoder=True),
    "test_autoencoder": judge_autoencoder,
    "test_classifier": judge_classifier,
    "test_autoencoder_steps": judge_autoencoder_steps,
    "test_classifier_steps": judge_classifier_steps,
    "test_trained_autoencoder": judge_trained_autoencoder,
}
MODEL_CHECK = "test_saved_classifier"
"""The cell decided from the handed-in model's logits (see :func:`judge_saved_classifier`)."""


def judge(check: str, data: dict, context) -> Result:
    """The verdict of ``check`` on its probe's ``data``."""
    return JUDGES[check](data, context)
