"""Probes of exercise_08_optional's graded cells: they run the student's layers in the sandbox.

Instructor side only (never released; see exercise_08/grading/probes.py for the idea). Each
probe draws its inputs from the grading-time ``seed``, calls the student's NumPy layers and
returns their outputs as arrays; :mod:`verdicts` compares them, in the grader's process, with
the reference solution on the same inputs.

After its data, each probe runs the cell's public check, the notebook's public line (the given
``exercise_code/checks.py`` with its default arguments, ``augmentation.check_label_breaking`` for
the quiz), on the same code and adds ``public_check``: "passed" or the first line of what it
raised. No point depends on it: the grader reads it for the flag only.

This file imports numpy (and json) only; the warm parent loads it by path before forking.
"""

from __future__ import annotations

import json
import os
import signal
from contextlib import redirect_stderr, redirect_stdout

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
        return {"kind": type(answer).__name__, "public_answer": answer}
    return {"answer": sorted(a[:100] for a in answer)[:50], "public_answer": answer}


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


def _layer_check(name: str, *functions: str):
    def call() -> None:
        from exercise_code import checks, layers

        getattr(checks, name)(*(getattr(layers, f) for f in functions))

    return call


def _label_breaking_check(data: dict):
    def call() -> None:
        from exercise_code import augmentation

        if "public_answer" not in data:  # the cell is missing or raised: so does the notebook's
            raise AssertionError(data.get("error") or "label_breaking is not defined")
        augmentation.check_label_breaking(data["public_answer"])

    return call


PUBLIC_CHECKS = {
    "test_dropout_forward": lambda data: _layer_check("check_dropout_forward", "dropout_forward"),
    "test_dropout_backward": lambda data: _layer_check(
        "check_dropout_backward", "dropout_forward", "dropout_backward"
    ),
    "test_batchnorm_forward": lambda data: _layer_check(
        "check_batchnorm_forward", "batchnorm_forward"
    ),
    "test_batchnorm_running_stats": lambda data: _layer_check(
        "check_batchnorm_running_stats", "batchnorm_forward"
    ),
    "test_batchnorm_backward": lambda data: _layer_check(
        "check_batchnorm_backward", "batchnorm_forward", "batchnorm_backward"
    ),
    "test_layernorm_forward": lambda data: _layer_check(
        "check_layernorm_forward", "layernorm_forward"
    ),
    "test_layernorm_backward": lambda data: _layer_check(
        "check_layernorm_backward", "layernorm_forward", "layernorm_backward"
    ),
    "test_label_breaking": _label_breaking_check,
}
"""The public line of each graded cell's notebook test, as a call on the probe's data."""
PUBLIC_CHECK_SECONDS = 30.0
"""The public check's own time limit, within the probe's: it must not cost the probe its data."""


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
    data["public_check"] = public_check(PUBLIC_CHECKS[check](data))
    data.pop("public_answer", None)
    return data
