"""Verdicts of exercise_08_optional's graded cells, decided in the grader's process from data.

Instructor side only (never released). Each verdict rebuilds the probe's inputs from the seed,
runs the reference layers (the SOURCE ``exercise_code/layers.py``) on them and compares; when
they differ, it names the typical mistake that explains the difference.

``judge(check, data, context)`` returns ``(passed, message)``; the message is "" when passed.

Probe data is hostile data: an array may hold NaN or infinities, and NaN compares False with
everything (``np.allclose`` even calls two infinities close). So every array a check reads goes
through :func:`_missing`, which fails NaN and infinite values with a sentence naming them, and
:func:`close` requires finite values as well.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np

from . import probes

Result = tuple[bool, str]
PASS: Result = (True, "")


def fail(message: str) -> Result:
    return False, message


def close(value: object, expected: np.ndarray, tolerance: float = 1e-8) -> bool:
    """Whether ``value`` is a finite float array equal to ``expected`` up to rounding."""
    return (
        isinstance(value, np.ndarray)
        and value.shape == np.shape(expected)
        and value.dtype.kind == "f"
        and bool(np.isfinite(value).all())
        and bool(np.allclose(value, expected, rtol=1e-6, atol=tolerance))
    )


def _missing(data: dict, key: str, function: str) -> str:
    """A sentence when the probe got no array for ``key`` (an error or None), else ""."""
    if f"{key}_error" in data:
        return f"{function} raised {data[f'{key}_error']}."
    if isinstance(data.get(key), str):
        return f"{function} returned None; fill in the region marked YOUR CODE HERE."
    if not isinstance(data.get(key), np.ndarray):
        return f"{function} returned nothing usable."
    if data[key].dtype.kind not in "biuf":
        return f"{function} returned {data[key].dtype} values, not numbers."
    if not np.isfinite(data[key]).all():
        return (
            f"{function} returned NaN or infinite values for finite inputs ({key}), so it cannot "
            "pass; look for a division by zero or a square root of a negative number."
        )
    return ""


# ----------------------------------------------------------------------------- dropout


def judge_dropout_forward(data: dict, context) -> Result:
    for case, (p, shape, _) in enumerate(probes.dropout_cases(context.seed)):
        x = probes.dropout_input(context.seed, case, shape)
        prefix = f"c{case}_"
        for key in ("train", "again", "test"):
            problem = _missing(data, prefix + key, "dropout_forward")
            if problem:
                return fail(problem)
        out = data[prefix + "train"]
        if out.shape != x.shape:
            return fail(f"dropout_forward returned shape {out.shape} for x of shape {x.shape}.")
        kept = out != 0
        rate = float(kept.mean())
        tolerance = 5 * np.sqrt(p * (1 - p) / x.size) + 1e-3
        if abs(rate - (1 - p)) > tolerance:
            hint = " (p is the probability of DROPPING a unit)" if abs(rate - p) < tolerance else ""
            return fail(
                f"dropout_forward keeps {rate:.3f} of the units for p={p}, not 1 - p{hint}."
            )
        scale = out[kept] / x[kept]
        if not np.allclose(scale, 1 / (1 - p)):
            what = "not scaled" if np.allclose(scale, 1) else f"multiplied by {scale.mean():.3f}"
            return fail(
                f"dropout_forward's kept units are {what}; inverted dropout multiplies them by "
                f"1 / (1 - p) = {1 / (1 - p):.3f} in training."
            )
        if not np.array_equal(out, data[prefix + "again"]):
            return fail(
                "Two calls of dropout_forward with the same seed gave different masks; draw the "
                "mask from rng (made from dropout_param['seed']) and from nothing else."
            )
        if not np.array_equal(data[prefix + "test"], x):
            return fail("In test mode dropout_forward must return x unchanged.")
    return PASS


def judge_dropout_backward(data: dict, context) -> Result:
    for case, (p, shape, _) in enumerate(probes.dropout_cases(context.seed)):
        x = probes.dropout_input(context.seed, case, shape)
        dout = probes.upstream(context.seed, case, shape)
        prefix = f"c{case}_"
        problem = _missing(data, prefix + "train", "dropout_forward")
        if problem or data[prefix + "train"].shape != x.shape:
            return fail(
                "dropout_backward cannot be checked until dropout_forward works: "
                + (problem or "its output has the wrong shape.")
            )
        for key in ("dx", "dx_test"):
            problem = _missing(data, prefix + key, "dropout_backward")
            if problem:
                return fail(problem)
        mask = data[prefix + "train"] / x
        if not close(data[prefix + "dx"], dout * mask):
            if p > 0 and close(data[prefix + "dx"], dout * mask / (1 - p)):
                return fail(
                    "dropout_backward scales twice: the cached mask already holds 1 / (1 - p) "
                    "for the kept units, so dx = dout * mask."
                )
            if p > 0 and close(data[prefix + "dx"], dout * (mask != 0)):
                return fail(
                    "dropout_backward forgets the 1 / (1 - p) scaling; dx = dout * mask with the "
                    "cached (already scaled) mask."
                )
            return fail(f"dropout_backward's dx differs from dout * mask for p={p}.")
        if not np.array_equal(data[prefix + "dx_test"], dout):
            return fail("In test mode dropout_backward must return dout unchanged.")
    return PASS


# ----------------------------------------------------------------------------- normalization


def _norm_inputs(seed: int, case: int, kind: str):
    n, d = probes.NORM_CASES[case]
    x = (
        probes.batch(seed, case, n, d)
        if kind == "batchnorm"
        else probes.batch(seed, case, d, n).T.copy()
    )
    return x, *probes.affine(seed, case, d), probes.upstream(seed, case, (n, d))


def _forward_mistake(kind: str, out: np.ndarray, x: np.ndarray, gamma, beta) -> str:
    axis = 0 if kind == "batchnorm" else 1
    name = f"{kind}_forward"
    mu = x.mean(axis=axis, keepdims=True)
    variants = {
        "normalizes with the unbiased variance; the normalization uses the BIASED one, "
        "1/N * sum (x - mu)^2 (np.var's default)": x.var(axis=axis, ddof=1, keepdims=True),
        "forgets eps inside the square root, sqrt(sigma2 + eps)": x.var(axis=axis, keepdims=True)
        - 1e-5,
    }
    for words, var in variants.items():
        if close(out, gamma * (x - mu) / np.sqrt(var + 1e-5) + beta, 1e-6):
            return f"{name} {words}."
    other = 1 - axis
    flipped = (x - x.mean(axis=other, keepdims=True)) / np.sqrt(
        x.var(axis=other, keepdims=True) + 1e-5
    )
    if close(out, gamma * flipped + beta, 1e-6):
        which = (
            "each feature over the batch (axis 0)"
            if axis == 0
            else "each sample over its features (axis 1)"
        )
        return f"{name} normalizes over the wrong axis; normalize {which}."
    if close(out, (x - mu) / np.sqrt(x.var(axis=axis, keepdims=True) + 1e-5), 1e-6):
        return f"{name} forgets to scale and shift; out = gamma * x_hat + beta."
    module = "BatchNorm1d" if axis == 0 else "LayerNorm"
    return f"{name}'s output differs from the reference (torch's {module})."


def judge_norm_forward(data: dict, context, kind: str) -> Result:
    layers = context.reference("layers")
    forward = getattr(layers, f"{kind}_forward")
    for case in range(len(probes.NORM_CASES)):
        x, gamma, beta, _ = _norm_inputs(context.seed, case, kind)
        d = x.shape[1]
        for key, (g, b) in (("plain", (np.ones(d), np.zeros(d))), ("out", (gamma, beta))):
            problem = _missing(data, f"c{case}_{key}", f"{kind}_forward")
            if problem:
                return fail(problem)
            expected = forward(x.copy(), g, b, {"mode": "train"})[0]
            found = data[f"c{case}_{key}"]
            if found.shape != expected.shape:
                return fail(
                    f"{kind}_forward returned shape {found.shape}, expected {expected.shape}."
                )
            if not close(found, expected):
                return fail(_forward_mistake(kind, found, x, g, b))
    return PASS


def judge_norm_backward(data: dict, context, kind: str) -> Result:
    layers = context.reference("layers")
    forward, backward = getattr(layers, f"{kind}_forward"), getattr(layers, f"{kind}_backward")
    for case in range(len(probes.NORM_CASES)):
        x, gamma, beta, dout = _norm_inputs(context.seed, case, kind)
        expected_out, cache = forward(x.copy(), gamma, beta, {"mode": "train"})
        if _missing(data, f"c{case}_out", "") or not close(data[f"c{case}_out"], expected_out):
            return fail(
                f"{kind}_backward cannot be checked until {kind}_forward matches the reference; "
                f"fix {kind}_forward first."
            )
        problem = _missing(data, f"c{case}_grads", f"{kind}_backward")
        if problem:
            return fail(problem)
        dx, dgamma, dbeta = backward(dout.copy(), cache)
        found = data[f"c{case}_grads"]
        expected = np.concatenate([dx.ravel(), dgamma.ravel(), dbeta.ravel()])
        if found.shape != expected.shape:
            return fail(f"{kind}_backward must return dx (N, D), dgamma (D,) and dbeta (D,).")
        parts = np.split(found, [dx.size, dx.size + dgamma.size])
        for name, value, reference in zip(
            ("dx", "dgamma", "dbeta"), parts, (dx, dgamma, dbeta), strict=True
        ):
            if not close(value, reference.ravel(), 1e-7):
                return fail(
                    f"{kind}_backward's {name} differs from the reference gradient; derive it "
                    "with a computational graph (the docstring gives the formula)."
                )
    return PASS


def judge_running_stats(data: dict, context) -> Result:
    layers = context.reference("layers")
    seed = context.seed
    for case, (n, d, steps, momentum) in enumerate(probes.RUNNING_CASES):
        if f"c{case}_error" in data:
            return fail(f"batchnorm_forward raised {data[f'c{case}_error']}.")
        gamma, beta = probes.affine(seed, case, d)
        param = {
            "mode": "train",
            "momentum": momentum,
            "running_mean": np.zeros(d),
            "running_var": np.ones(d),
        }
        biased, twice = np.ones(d), np.ones(d)
        expected = []
        for step in range(steps):
            x = probes.batch(seed, 10 * case + step, n, d)
            layers.batchnorm_forward(x, gamma, beta, param)
            biased = (1 - momentum) * biased + momentum * x.var(axis=0)
            twice = (1 - momentum) * twice + momentum * x.var(axis=0, ddof=1) * n / (n - 1)
            running = (param["running_mean"].copy(), param["running_var"].copy())
            expected.append((*running, biased, twice))
        history = data.get(f"c{case}_history")
        if not isinstance(history, np.ndarray) or history.shape != (steps, 4 * d):
            return fail("batchnorm_forward did not keep running_mean and running_var in bn_param.")
        problem = _missing(data, f"c{case}_history", "batchnorm_forward")
        if problem:
            return fail(problem.replace("values for", "running statistics for"))
        for step, (mean, var, biased_var, twice_var) in enumerate(expected):
            found_mean, found_var, caller_mean, caller_var = np.split(history[step], 4)
            if not close(found_mean, mean):
                return fail(
                    f"After step {step + 1}, running_mean differs from BatchNorm1d's; use "
                    "running_mean = (1 - momentum) * running_mean + momentum * batch mean."
                )
            if close(found_var, biased_var) and not close(found_var, var):
                return fail(
                    "running_var averages the biased batch variance; BatchNorm1d averages the "
                    f"UNBIASED one, N / (N - 1) * sigma2 (here {n / (n - 1):.4f} * sigma2)."
                )
            if close(found_var, twice_var) and not close(found_var, var):
                return fail(
                    "running_var scales an already unbiased variance by N / (N - 1) again: "
                    "compute the batch variance as the biased one (np.var's default), normalize "
                    "with it, and use N / (N - 1) only in the running_var update."
                )
            if not close(found_var, var):
                return fail(
                    f"After step {step + 1}, running_var differs from BatchNorm1d's; use "
                    "running_var = (1 - momentum) * running_var + momentum * N / (N - 1) * sigma2."
                )
            if not (close(caller_mean, mean) and close(caller_var, var)):
                return fail(
                    "batchnorm_forward rebinds bn_param['running_mean'] and ['running_var'] to new "
                    "arrays, so whoever holds the old arrays never sees the update; update them IN "
                    "PLACE (running_mean[:] = ..., or *= and +=)."
                )
        test_x = probes.batch(seed, 10 * case + 99, 7, d)
        out = layers.batchnorm_forward(test_x, gamma, beta, dict(param, mode="test"))[0]
        if not close(data.get(f"c{case}_test"), out):
            return fail(
                "In test mode batchnorm_forward must normalize with running_mean and running_var, "
                "not with the statistics of the batch."
            )
        if not close(
            data.get(f"c{case}_after_test"),
            np.concatenate([param["running_mean"], param["running_var"]]),
        ):
            return fail("Test mode must not change the running statistics.")
    return PASS


# ----------------------------------------------------------------------------- the quiz


def reference_answer(context) -> set[str]:
    """``label_breaking`` of the SOURCE notebook's answer cell: the set literal it binds last
    (the cell binds None first), read with ast."""
    folder = Path(context.reference("layers").__file__).parents[1]
    notebook = json.loads((folder / probes.NOTEBOOK).read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == probes.ANSWER_CELL:
            source = "".join(cell["source"])
            lines = [line for line in source.splitlines() if not line.lstrip().startswith("#")]
            values = [
                ast.literal_eval(node.value)
                for node in ast.parse("\n".join(lines)).body
                if isinstance(node, ast.Assign)
                and [getattr(target, "id", None) for target in node.targets] == ["label_breaking"]
            ]
            return set(values[-1])
    raise LookupError("the source notebook has no answer cell")


def judge_label_breaking(data: dict, context) -> Result:
    if data.get("missing"):
        return fail("The answer cell (label_breaking) is missing from your notebook; copy it back.")
    if "error" in data:
        return fail(f"Your answer cell raised {data['error']}.")
    if "answer" not in data:
        return fail(f"label_breaking must be a set of names, not {data.get('kind')}.")
    names = data["answer"]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        return fail("label_breaking must be a set of transform names (strings).")
    answer, expected = set(names), reference_answer(context)
    if answer != expected:
        return fail(
            "label_breaking is not the set of transforms that change or destroy a digit's label; "
            "look at the figure of CANDIDATES again (too many or too few names)."
        )
    return PASS


JUDGES = {
    "test_dropout_forward": judge_dropout_forward,
    "test_dropout_backward": judge_dropout_backward,
    "test_batchnorm_forward": lambda data, context: judge_norm_forward(data, context, "batchnorm"),
    "test_batchnorm_running_stats": judge_running_stats,
    "test_batchnorm_backward": lambda data, context: judge_norm_backward(
        data, context, "batchnorm"
    ),
    "test_layernorm_forward": lambda data, context: judge_norm_forward(data, context, "layernorm"),
    "test_layernorm_backward": lambda data, context: judge_norm_backward(
        data, context, "layernorm"
    ),
    "test_label_breaking": judge_label_breaking,
}


def non_finite(data: dict) -> str:
    """The first key whose float array holds NaN or an infinity, else ""."""
    for key, value in data.items():
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            if not np.isfinite(value).all():
                return key
    return ""


def judge(check: str, data: dict, context) -> Result:
    """The verdict of ``check`` on its probe's ``data``: no check passes with a NaN or an
    infinity anywhere in what the probe returned (every input it draws is finite)."""
    bad = non_finite(data)
    if bad:
        return fail(
            f"Your code returned NaN or infinite values for finite inputs ({bad}), so the check "
            "cannot pass; look for a division by zero or a square root of a negative number."
        )
    return JUDGES[check](data, context)
