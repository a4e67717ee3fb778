"""Probes of exercise_08's graded cells: they run the student's modules inside the sandbox.

Instructor side only: this folder is never released (nbgrader ignores ``grading/``, and the
release leak scan fails on it). Each probe draws its inputs from the grading-time ``seed``
(secret until grading), calls the student's code and returns DATA only: numbers, short strings
and arrays. It decides nothing: :mod:`verdicts` compares that data, in the grader's own process,
with the reference solution on the same inputs. So a probe that is tampered with can only
return data, and made-up data fails because the inputs are unknown in advance.

To keep one mistake from failing other cells, probes put grader-owned parts around the part a
cell is about: the autoencoder's forward gets grader-built encoder and decoder, the classifier a
grader-built encoder, the training steps small grader-built models. The input generators and
those parts are shared with :mod:`verdicts` (which imports this file), so both sides build the
very same inputs from the seed.

After its data, each probe runs the cell's public check, the notebook's public line (the given
``exercise_code/checks.py`` with its default arguments), on the same code and adds
``public_check``: "passed" or the first line of what it raised (:func:`public_check`). No point
depends on it: the grader reads it for the flag only (a notebook test that passed where this
fails points at tampering; a hidden check that fails where this passes is an honest mistake).

This file imports torch and numpy only (the warm parent loads it by path before forking).
"""

from __future__ import annotations

import os
import signal
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IMAGE_SHAPE = (1, 28, 28)
STEPS = 3
"""Training steps each step probe takes (enough to see gradients add up without zero_grad)."""
LEARNING_RATE = 0.5
"""Plain SGD in the step probes: a step's change of the weights is the gradient times this."""


def images(seed: int, n: int) -> torch.Tensor:
    """Random float32 images (n, 1, 28, 28) in [0, 1]."""
    return torch.rand((n, *IMAGE_SHAPE), generator=torch.Generator().manual_seed(seed))


def labels(seed: int, n: int) -> torch.Tensor:
    """Random int64 labels (n,) in 0..9, every class at least once when n >= 10."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return (torch.arange(n) % 10)[order]


def init_(module: nn.Module, seed: int, scale: float = 0.1) -> nn.Module:
    """Overwrite every parameter of ``module`` with seeded N(0, scale^2) values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return module


def network_cases(seed: int) -> list[tuple[int, tuple[int, ...]]]:
    """(latent_dim, hidden_sizes) for the encoder and decoder cells: the notebook's three and
    one drawn from the seed."""
    rng = np.random.default_rng(seed)
    hidden = tuple(int(h) for h in rng.integers(5, 60, size=int(rng.integers(1, 4))))
    return [(8, (64, 32)), (3, (20,)), (16, (100, 50, 25)), (int(rng.integers(2, 12)), hidden)]


class GraderEncoder(nn.Module):
    """A known-good encoder with networks.Encoder's attributes: Linear -> ReLU -> Linear."""

    def __init__(self, latent_dim: int, hidden: int, seed: int) -> None:
        super().__init__()
        self.latent_dim, self.hidden_sizes = latent_dim, (hidden,)
        self.layers = nn.Sequential(
            nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, latent_dim)
        )
        init_(self, seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.flatten(1))


class GraderDecoder(nn.Module):
    """A known-good decoder: Linear -> ReLU -> Linear -> Sigmoid -> (N, 1, 28, 28)."""

    def __init__(self, latent_dim: int, hidden: int, seed: int) -> None:
        super().__init__()
        self.latent_dim, self.hidden_sizes = latent_dim, (hidden,)
        self.layers = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 784), nn.Sigmoid()
        )
        init_(self, seed)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z).unflatten(1, IMAGE_SHAPE)


def step_autoencoder(seed: int) -> nn.Module:
    """The small autoencoder the step probes train (a plain Sequential, not the student's)."""
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 12), nn.ReLU(), nn.Linear(12, 784), nn.Sigmoid()
    )
    return init_(nn.Sequential(*model, nn.Unflatten(1, IMAGE_SHAPE)), seed)


def step_classifier(seed: int) -> nn.Module:
    """The small classifier the step probes train."""
    return init_(
        nn.Sequential(nn.Flatten(), nn.Linear(784, 12), nn.ReLU(), nn.Linear(12, 10)), seed
    )


def flat_parameters(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def flat_gradients(model: nn.Module) -> torch.Tensor:
    """Every parameter's gradient, flattened; NaN where a parameter has none."""
    return torch.cat(
        [
            p.grad.detach().flatten() if p.grad is not None else torch.full((p.numel(),), torch.nan)
            for p in model.parameters()
        ]
    )


def _error(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def _type_name(value: object) -> str:
    return type(value).__name__


def _number(value: object) -> float:
    try:
        return float(value)
    except Exception:
        return float("nan")


# ----------------------------------------------------------------------------- the networks


def _linear_layers(module: nn.Module, prefix: str, data: dict) -> None:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    data[f"{prefix}layers"] = len(linears)
    for number, layer in enumerate(linears):
        data[f"{prefix}w{number}"] = layer.weight
        if layer.bias is not None:
            data[f"{prefix}b{number}"] = layer.bias


def probe_encoder(seed: int, decoder: bool = False) -> dict:
    """Each case of :func:`network_cases`: the Encoder's (or Decoder's) linear layers and its
    output on seeded inputs."""
    from exercise_code import networks

    data: dict = {}
    for case, (latent, hidden) in enumerate(network_cases(seed)):
        prefix = f"c{case}_"
        try:
            torch.manual_seed(seed + case)
            if decoder:
                model, inputs = networks.Decoder(latent, hidden), network_input(seed, case, latent)
            else:
                model, inputs = networks.Encoder(latent, hidden), images(seed + case, 5 + case)
            _linear_layers(model, prefix, data)
            with torch.no_grad():
                data[f"{prefix}out"] = model(inputs).float()
        except Exception as error:
            data[f"{prefix}error"] = _error(error)
    return data


def network_input(seed: int, case: int, latent: int) -> torch.Tensor:
    """Latent codes (5 + case, latent) for the decoder cases."""
    return torch.randn((5 + case, latent), generator=torch.Generator().manual_seed(seed + case)) * 3


def probe_autoencoder(seed: int) -> dict:
    """Autoencoder.forward around grader-built encoder and decoder: output and gradients."""
    from exercise_code import networks

    model = networks.Autoencoder.__new__(networks.Autoencoder)
    nn.Module.__init__(model)
    model.latent_dim, model.hidden_sizes = 4, (16,)
    model.encoder, model.decoder = GraderEncoder(4, 16, seed), GraderDecoder(4, 16, seed + 1)
    try:
        out = model(images(seed, 6))
    except Exception as error:
        return {"error": _error(error)}
    if not isinstance(out, torch.Tensor):
        return {"error": f"forward returned a {_type_name(out)}, not a tensor"}
    try:
        out.float().square().mean().backward()
    except Exception:
        pass  # no gradients: the verdict says so
    return {"out": out.detach().float(), "grads": flat_gradients(model)}


def probe_classifier(seed: int) -> dict:
    """Classifier around a grader-built encoder: is it kept, the head, logits and gradients."""
    from exercise_code import networks

    encoder = GraderEncoder(5, 16, seed)
    data: dict = {}
    try:
        model = networks.Classifier(encoder)
        data["keeps_encoder"] = model.encoder is encoder
        data["head_sizes"] = [
            [m.in_features, m.out_features]
            for m in model.head.modules()
            if isinstance(m, nn.Linear)
        ]
        _linear_layers(model.head, "head_", data)
        logits = model(images(seed, 7))
        F.cross_entropy(logits, labels(seed, 7)).backward()
    except Exception as error:
        data["error"] = _error(error)
        return data
    data["logits"] = logits.detach()
    data["encoder_grads"] = flat_gradients(encoder)
    return data


# ----------------------------------------------------------------------------- the steps


def _train(step, model: nn.Module, arguments: tuple, data: dict, prefix: str) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    model.train()
    for number in range(STEPS):
        returned = step(model, *arguments, optimizer)
        values = returned if isinstance(returned, tuple) else (returned,)
        data[f"{prefix}types{number}"] = ",".join(_type_name(v) for v in values)
        data[f"{prefix}values{number}"] = [_number(v) for v in values]
        data[f"{prefix}params{number}"] = flat_parameters(model)
        data[f"{prefix}grads{number}"] = flat_gradients(model)


def _validate(step, model: nn.Module, arguments: tuple, data: dict, prefix: str) -> None:
    model.eval()
    model.zero_grad(set_to_none=True)
    before = flat_parameters(model)
    returned = step(model, *arguments)
    values = returned if isinstance(returned, tuple) else (returned,)
    data[f"{prefix}types"] = ",".join(_type_name(v) for v in values)
    data[f"{prefix}values"] = [_number(v) for v in values]
    data[f"{prefix}changed"] = bool((flat_parameters(model) != before).any())
    data[f"{prefix}grads"] = any(p.grad is not None for p in model.parameters())
    data[f"{prefix}training"] = model.training


def _probe_steps(seed: int, stages: dict) -> dict:
    data: dict = {}
    for prefix, run in stages.items():
        try:
            run(data, prefix)
        except Exception as error:
            data[f"{prefix}error"] = _error(error)
    return data


def step_batch(seed: int, n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch the step probes use: images (n, 1, 28, 28) and labels (n,)."""
    return images(seed + 7, n), labels(seed + 7, n)


def probe_autoencoder_steps(seed: int) -> dict:
    """autoencoder_train_step (l2, then l1) and autoencoder_val_step on grader-built models."""
    from exercise_code import training

    batch, _ = step_batch(seed)

    def train(kind: str):
        return lambda data, prefix: _train(
            lambda m, x, o: training.autoencoder_train_step(m, x, o, kind),
            step_autoencoder(seed),
            (batch,),
            data,
            prefix,
        )

    def validate(kind: str):
        return lambda data, prefix: _validate(
            lambda m, x: training.autoencoder_val_step(m, x, kind),
            step_autoencoder(seed),
            (batch,),
            data,
            prefix,
        )

    stages = {
        "train_l2_": train("l2"),
        "train_l1_": train("l1"),
        "val_l2_": validate("l2"),
        "val_l1_": validate("l1"),
    }
    return _probe_steps(seed, stages)


def probe_classifier_steps(seed: int) -> dict:
    """classifier_train_step and classifier_val_step on a grader-built classifier."""
    from exercise_code import training

    batch, targets = step_batch(seed)

    def train(data: dict, prefix: str) -> None:
        _train(
            training.classifier_train_step, step_classifier(seed), (batch, targets), data, prefix
        )

    def validate(data: dict, prefix: str) -> None:
        _validate(
            training.classifier_val_step, step_classifier(seed), (batch, targets), data, prefix
        )

    return _probe_steps(seed, {"train_": train, "val_": validate})


# ----------------------------------------------------------------------------- saved files


def probe_saved_autoencoder(files: str | None) -> dict:
    """The sizes and linear weights (in order) of the handed-in models/autoencoder.pt.

    Runs no student code: ``torch.load(weights_only=True)`` reads tensors and plain values only
    (and runs here, in the sandbox, not in the grader)."""
    path = f"{files}/models/autoencoder.pt"
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
        state = saved["state_dict"]
        data = {"latent_dim": int(saved["latent_dim"])}
        data["hidden_sizes"] = [int(h) for h in saved["hidden_sizes"]]
    except FileNotFoundError:
        return {"missing": True}
    except Exception as error:
        return {"error": _error(error)}
    tensors = [(k, v) for k, v in state.items() if isinstance(v, torch.Tensor)]
    weights = [(k, v) for k, v in tensors if v.dim() == 2]
    data["layers"] = len(weights)
    for number, (name, weight) in enumerate(weights):
        bias = state.get(name.removesuffix("weight") + "bias")
        data[f"w{number}"] = weight.float()
        if isinstance(bias, torch.Tensor):
            data[f"b{number}"] = bias.float()
    return data


PROBES = {
    "test_encoder": lambda seed, files: probe_encoder(seed),
    "test_decoder": lambda seed, files: probe_encoder(seed, decoder=True),
    "test_autoencoder": lambda seed, files: probe_autoencoder(seed),
    "test_classifier": lambda seed, files: probe_classifier(seed),
    "test_autoencoder_steps": lambda seed, files: probe_autoencoder_steps(seed),
    "test_classifier_steps": lambda seed, files: probe_classifier_steps(seed),
    "test_trained_autoencoder": lambda seed, files: probe_saved_autoencoder(files),
}


PUBLIC_CHECKS = {
    "test_encoder": lambda checks: checks.check_encoder(),
    "test_decoder": lambda checks: checks.check_decoder(),
    "test_autoencoder": lambda checks: checks.check_autoencoder(),
    "test_classifier": lambda checks: checks.check_classifier(),
    "test_autoencoder_steps": lambda checks: checks.check_autoencoder_steps(),
    "test_classifier_steps": lambda checks: checks.check_classifier_steps(),
}
"""The public line of each graded cell's notebook test. test_trained_autoencoder has none here:
its public line checks the trained model in the notebook's memory on the held-out images, which
the probe has neither of (it reads the saved file only), so that cell is flagged only for
poisoned data."""
PUBLIC_CHECK_SECONDS = 30.0
"""The public check's own time limit, within the probe's (a check at the notebook's default sizes
takes a few seconds): it must not cost the probe its data."""
NO_PUBLIC_CHECK = "none"


class _PublicCheckTimeout(BaseException):
    """Raised by the timer in a public check that runs too long."""


def public_check(call) -> str:
    """Run ``call()`` (a public check) with its output discarded and a time limit: "passed", or
    the first line of what it raised (SystemExit and the time limit included)."""

    def stop(signum, frame):
        raise _PublicCheckTimeout(f"the public check took longer than {PUBLIC_CHECK_SECONDS:g} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, PUBLIC_CHECK_SECONDS)
    try:
        with open(os.devnull, "w") as sink, redirect_stdout(sink), redirect_stderr(sink):
            call()
    except BaseException as error:  # whatever the student's code raises stays in this entry
        return _error(error)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return "passed"


def run(check: str, seed: int, files: str | None) -> dict:
    """The data of ``check``'s probe (what the sandbox worker calls), then ``public_check``:
    what the cell's public check says on the same code (after the data, which it cannot
    change)."""
    try:
        data = PROBES[check](seed, files)
    except Exception as error:  # as the worker would record it
        data = {"probe_error": f"{type(error).__name__}: {error}"[:300]}
    public = PUBLIC_CHECKS.get(check)
    if public is None:
        data["public_check"] = NO_PUBLIC_CHECK
        return data

    def call() -> None:
        from exercise_code import checks

        public(checks)

    data["public_check"] = public_check(call)
    return data
