"""Probes of exercise_08_optional's graded cells: they run the student's layers in the sandbox.

Instructor side only (never released; see exercise_08/grading/probes.py for the idea). Each
probe draws its inputs from the grading-time ``seed``, calls the student's NumPy layers and
returns their outputs as arrays; :mod:`verdicts` compares them, in the grader's process, with
the reference solution on the same inputs.

This file imports numpy (and json) only; the warm parent loads it by path before forking.
"""

from __future__ import annotations

import json

import numpy as np

NOTEBOOK = "regularization.ipynb"
ANSWER_CELL = "answer_label_breaking"


def rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def dropout_cases(seed: int) -> list[tuple[float, tuple[int, ...], int]]:
    """(p, shape, mask seed): the notebook's cases and one drawn from the seed."""
    drawn = float(np.round(rng(seed, 0).uniform(0.15, 0.85), 2))
    return [
        (0.3, (80, 50), 0),
        (0.75, (60, 40), 7),
        (0.1, (10, 8, 6), 3),
        (0.0, (20, 20), 2),
        (drawn, (64, 32), seed % 1000),
    ]


def dropout_input(seed: int, case: int, shape: tuple[int, ...]) -> np.ndarray:
    """Inputs without zeros (1 to 2), so every dropped unit shows in the output."""
    return 1.0 + rng(seed, 1, case).random(shape)


def batch(seed: int, case: int, n: int, d: int) -> np.ndarray:
    """A batch whose features have different means and scales, so normalizing matters."""
    generator = rng(seed, 2, case)
    return generator.normal(size=(n, d)) * generator.uniform(0.5, 5, size=d) + generator.uniform(
        -3, 3, size=d
    )


def affine(seed: int, case: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    generator = rng(seed, 3, case)
    return generator.normal(1, 0.5, size=d), generator.normal(0, 1, size=d)


def upstream(seed: int, case: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng(seed, 4, case).normal(size=shape)


NORM_CASES = [(6, 5), (10, 4), (3, 7)]
"""(n, d) of the batch-norm and layer-norm cases."""
RUNNING_CASES = [(16, 4, 5, 0.2), (5, 9, 8, 0.5), (64, 3, 3, 0.1)]
"""(n, d, steps, momentum) of the running-statistics cases."""


def _error(error: BaseException) -> str:
    lines = f"{type(error).__name__}: {error}".strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:300]


def _guard(data: dict, key: str, function, *args) -> None:
    """``data[key] = function(*args)`` as a float64 array ("None" if it returned None), or
    ``data[key + "_error"]`` with what it raised."""
    try:
        value = function(*args)
        data[key] = np.asarray(value, dtype=np.float64) if value is not None else "None"
    except Exception as error:
        data[f"{key}_error"] = _error(error)


def _dropout_out(layers, x: np.ndarray, param: dict):
    return layers.dropout_forward(x.copy(), dict(param))[0]


def _dropout_dx(layers, x: np.ndarray, dout: np.ndarray, param: dict):
    _, cache = layers.dropout_forward(x.copy(), dict(param))
    return layers.dropout_backward(dout.copy(), cache)


def probe_dropout(seed: int, backward: bool) -> dict:
    from exercise_code import layers

    data: dict = {}
    for case, (p, shape, mask_seed) in enumerate(dropout_cases(seed)):
        x = dropout_input(seed, case, shape)
        train, test = {"mode": "train", "p": p, "seed": mask_seed}, {"mode": "test", "p": p}
        _guard(data, f"c{case}_train", _dropout_out, layers, x, train)
        _guard(data, f"c{case}_again", _dropout_out, layers, x, train)
        _guard(data, f"c{case}_test", _dropout_out, layers, x, test)
        if backward:
            dout = upstream(seed, case, shape)
            _guard(data, f"c{case}_dx", _dropout_dx, layers, x, dout, train)
            _guard(data, f"c{case}_dx_test", _dropout_dx, layers, x, dout, test)
    return data


def _norm_out(forward, x: np.ndarray, gamma: np.ndarray, beta: np.ndarray):
    return forward(x.copy(), gamma.copy(), beta.copy(), {"mode": "train"})[0]


def _norm_grads(forward, backward, x, gamma, beta, dout) -> np.ndarray:
    _, cache = forward(x.copy(), gamma.copy(), beta.copy(), {"mode": "train"})
    grads = backward(dout.copy(), cache)
    return np.concatenate([np.asarray(g, dtype=np.float64).ravel() for g in grads])


def probe_norm(seed: int, kind: str, backward: bool) -> dict:
    from exercise_code import layers

    forward = getattr(layers, f"{kind}_forward")
    data: dict = {}
    for case, (n, d) in enumerate(NORM_CASES):
        x = batch(seed, case, n, d) if kind == "batchnorm" else batch(seed, case, d, n).T.copy()
        gamma, beta = affine(seed, case, d)
        _guard(data, f"c{case}_plain", _norm_out, forward, x, np.ones(d), np.zeros(d))
        _guard(data, f"c{case}_out", _norm_out, forward, x, gamma, beta)
        if backward:
            dout = upstream(seed, case, (n, d))
            backward_function = getattr(layers, f"{kind}_backward")
            _guard(
                data,
                f"c{case}_grads",
                _norm_grads,
                forward,
                backward_function,
                x,
                gamma,
                beta,
                dout,
            )
    return data


def probe_running_stats(seed: int) -> dict:
    """Running mean/var after each training step, whether the caller's arrays were updated in
    place, and the test-mode output."""
    from exercise_code import layers

    data: dict = {}
    for case, (n, d, steps, momentum) in enumerate(RUNNING_CASES):
        gamma, beta = affine(seed, case, d)
        mean, var = np.zeros(d), np.ones(d)
        param = {"mode": "train", "momentum": momentum, "running_mean": mean, "running_var": var}
        try:
            history = []
            for step in range(steps):
                layers.batchnorm_forward(batch(seed, 10 * case + step, n, d), gamma, beta, param)
                history.append(
                    [
                        *np.asarray(param["running_mean"], float),
                        *np.asarray(param["running_var"], float),
                        *mean,
                        *var,
                    ]
                )
            data[f"c{case}_history"] = np.asarray(history, dtype=np.float64)
            test = dict(param, mode="test")
            out = layers.batchnorm_forward(batch(seed, 10 * case + 99, 7, d), gamma, beta, test)[0]
            data[f"c{case}_test"] = np.asarray(out, dtype=np.float64)
            data[f"c{case}_after_test"] = np.concatenate([mean, var])
        except Exception as error:
            data[f"c{case}_error"] = _error(error)
    return data


def probe_label_breaking(files: str) -> dict:
    """The ``label_breaking`` set of the handed-in notebook's answer cell (run here, in the
    sandbox), as a sorted list of names."""
    try:
        with open(f"{files}/{NOTEBOOK}", encoding="utf-8") as handle:
            cells = json.load(handle)["cells"]
        source = next(
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in cells
            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == ANSWER_CELL
        )
    except StopIteration:
        return {"missing": True}
    except Exception as error:
        return {"error": _error(error)}
    namespace: dict = {}
    try:
        try:
            exec(compile(source, ANSWER_CELL, "exec"), namespace)
        except NameError:
            from exercise_code import augmentation

            namespace = {"augmentation": augmentation}
            exec(compile(source, ANSWER_CELL, "exec"), namespace)
    except Exception as error:
        return {"error": _error(error)}
    answer = namespace.get("label_breaking")
    if not isinstance(answer, set | frozenset) or not all(isinstance(a, str) for a in answer):
        return {"kind": type(answer).__name__}
    return {"answer": sorted(a[:100] for a in answer)[:50]}


PROBES = {
    "test_dropout_forward": lambda seed, files: probe_dropout(seed, backward=False),
    "test_dropout_backward": lambda seed, files: probe_dropout(seed, backward=True),
    "test_batchnorm_forward": lambda seed, files: probe_norm(seed, "batchnorm", backward=False),
    "test_batchnorm_running_stats": lambda seed, files: probe_running_stats(seed),
    "test_batchnorm_backward": lambda seed, files: probe_norm(seed, "batchnorm", backward=True),
    "test_layernorm_forward": lambda seed, files: probe_norm(seed, "layernorm", backward=False),
    "test_layernorm_backward": lambda seed, files: probe_norm(seed, "layernorm", backward=True),
    "test_label_breaking": lambda seed, files: probe_label_breaking(files),
}


def run(check: str, seed: int, files: str | None) -> dict:
    """The data of ``check``'s probe (what the sandbox worker calls)."""
    return PROBES[check](seed, files)
