"""Typical mistakes in the optional exercise's layers, each caught by its own graded cell.

Every mutation plants one mistake in a copy of the source solution (``layers.py``); then the
check calls of the notebook's graded cells (visible and hidden) run on the copy. The graded
cell of the function with the mistake must fail with a message that names the cause and what
to change. Every other graded cell must pass, except that a check built on a forward pass
(a backward pass, or batch norm's running statistics) may fail when the forward pass is wrong,
and then it must say to fix that forward pass first.

``python tests/test_mutations_optional.py`` prints the table of mistakes and messages.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutants import (  # noqa: E402
    Mutation,
    assert_covers,
    assert_names_the_cause,
    failures_of,
    graded_check_calls,
    print_table,
)
from test_optional_notebook import LAYER_FUNCTIONS  # noqa: E402

PACKAGE = ROOT / "exercise_08_optional" / "exercise_code"
NOTEBOOK = ROOT / "exercise_08_optional" / "regularization.ipynb"
CHECKS = graded_check_calls(
    NOTEBOOK,
    [
        "test_dropout_forward",
        "test_dropout_backward",
        "test_batchnorm_forward",
        "test_batchnorm_running_stats",
        "test_batchnorm_backward",
        "test_layernorm_forward",
        "test_layernorm_backward",
    ],
    lambda code: {"checks": code.checks, **{f: getattr(code.layers, f) for f in LAYER_FUNCTIONS}},
)
BUILT_ON = {
    "test_dropout_backward": ("test_dropout_forward", "dropout_forward"),
    "test_batchnorm_running_stats": ("test_batchnorm_forward", "batchnorm_forward"),
    "test_batchnorm_backward": ("test_batchnorm_forward", "batchnorm_forward"),
    "test_layernorm_backward": ("test_layernorm_forward", "layernorm_forward"),
}
"""A graded cell -> (the cell of the forward pass it is built on, that function)."""

RUNNING = """        running_mean *= 1 - momentum
        running_mean += momentum * mu
"""
BN_DX = (
    "    dx = inv_std / n * "
    "(n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))"
)
LN_DX = """    dx = (
        inv_std
        / d
        * (
            d * dx_hat
            - dx_hat.sum(axis=1, keepdims=True)
            - x_hat * (dx_hat * x_hat).sum(axis=1, keepdims=True)
        )
    )
"""


def _m(mistake, old, new, check, *says) -> Mutation:
    return Mutation(mistake, "layers.py", old, new, check, says)


MUTATIONS = [
    _m(
        "p taken as the probability of keeping a unit",
        "mask = (rng.random(x.shape) >= p) / (1 - p)",
        "mask = (rng.random(x.shape) < p) / (1 - p)",
        "test_dropout_forward",
        "it should keep 1 - p",
        "probability of DROPPING",
    ),
    _m(
        "no 1 / (1 - p) scaling in training",
        "mask = (rng.random(x.shape) >= p) / (1 - p)",
        "mask = (rng.random(x.shape) >= p) * 1.0",
        "test_dropout_forward",
        "kept units are multiplied by 1.0000",
        "multiplies them by 1 / (1 - p)",
    ),
    _m(
        "mask drawn from np.random instead of rng",
        "mask = (rng.random(x.shape) >= p) / (1 - p)",
        "mask = (np.random.random(x.shape) >= p) / (1 - p)",
        "test_dropout_forward",
        "different masks",
        "draw the mask from rng only",
    ),
    _m(
        "dropout scales at test time",
        "    else:\n        out = x\n",
        "    else:\n        out = x * (1 - p)\n",
        "test_dropout_forward",
        "in test mode, dropout_forward must return x unchanged",
    ),
    _m(
        "dropout backward scales by 1 / (1 - p) a second time",
        "        dx = dout * mask\n",
        "        dx = dout * mask / (1 - dropout_param['p'])\n",
        "test_dropout_backward",
        "scales by 1 / (1 - p) twice",
        "dx = dout * mask",
    ),
    _m(
        "dropout backward ignores the mask",
        "        dx = dout * mask\n",
        "        dx = dout\n",
        "test_dropout_backward",
        "passes dout through unchanged in training mode",
    ),
    _m(
        "batch norm normalizes with the unbiased variance",
        "        inv_std = 1.0 / np.sqrt(var + eps)\n"
        "        x_hat = (x - mu) * inv_std\n        out",
        "        inv_std = 1.0 / np.sqrt(x.var(axis=0, ddof=1) + eps)\n"
        "        x_hat = (x - mu) * inv_std\n        out",
        "test_batchnorm_forward",
        "unbiased variance",
        "BIASED batch variance",
    ),
    _m(
        "batch norm statistics over the feature axis",
        "        mu = x.mean(axis=0)\n        var = x.var(axis=0)\n",
        "        mu = x.mean(axis=1, keepdims=True)\n        var = x.var(axis=1, keepdims=True)\n",
        "test_batchnorm_forward",
        "raised ValueError",
        "one value per feature",
        "over the batch axis, axis=0",
    ),
    _m(
        "batch norm normalizes each sample over its features",
        "        x_hat = (x - mu) * inv_std\n"
        "        out = gamma * x_hat + beta\n        running_mean",
        "        x_hat = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)\n"
        "        out = gamma * x_hat + beta\n        running_mean",
        "test_batchnorm_forward",
        "normalizes each sample (row)",
        "each feature (column) over the batch, axis=0",
    ),
    _m(
        "batch norm forgets beta",
        "        out = gamma * x_hat + beta\n        running_mean",
        "        out = gamma * x_hat\n        running_mean",
        "test_batchnorm_forward",
        "out = gamma * x_hat + beta",
    ),
    _m(
        "running mean rebound to a new local array",
        RUNNING,
        "        running_mean = (1 - momentum) * running_mean + momentum * mu\n",
        "test_batchnorm_running_stats",
        "bn_param['running_mean'] did not change",
        "update that array in place",
        "only binds the name to a new array",
    ),
    _m(
        "running mean rebound in bn_param",
        RUNNING,
        "        bn_param['running_mean'] = (1 - momentum) * running_mean + momentum * mu\n",
        "test_batchnorm_running_stats",
        "you rebound bn_param['running_mean'] to a new array",
        "update it in place with running_mean[:] = ... or *= / +=",
    ),
    _m(
        "momentum weighs the old running mean",
        RUNNING,
        "        running_mean *= momentum\n        running_mean += (1 - momentum) * mu\n",
        "test_batchnorm_running_stats",
        "momentum is the weight of the BATCH statistic",
    ),
    _m(
        "running variance from the biased batch variance",
        "        running_var += momentum * var * n / (n - 1)\n",
        "        running_var += momentum * var\n",
        "test_batchnorm_running_stats",
        "averages the biased batch variance",
        "UNBIASED",
    ),
    _m(
        "batch statistics at test time",
        "        x_hat = (x - running_mean) / np.sqrt(running_var + eps)\n",
        "        x_hat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)\n",
        "test_batchnorm_running_stats",
        "not with the statistics of the batch",
    ),
    _m(
        "batch norm backward treats mu_B and sigma2_B as constants",
        BN_DX,
        "    dx = dx_hat * inv_std",
        "test_batchnorm_backward",
        "mu and sigma2 depend on x too",
    ),
    _m(
        "batch norm backward without the term through the mean",
        BN_DX,
        "    dx = inv_std / n * (n * dx_hat - x_hat * (dx_hat * x_hat).sum(axis=0))",
        "test_batchnorm_backward",
        "misses the term through the mean",
    ),
    _m(
        "dbeta summed over the feature axis",
        "    n = dout.shape[0]\n    dbeta = dout.sum(axis=0)\n",
        "    n = dout.shape[0]\n    dbeta = dout.sum(axis=1)\n",
        "test_batchnorm_backward",
        "dbeta has shape (4,), expected (5,)",
        "sum over the batch axis (axis=0)",
    ),
    _m(
        "layer norm statistics over the batch axis",
        "    mu = x.mean(axis=1, keepdims=True)\n    var = x.var(axis=1, keepdims=True)\n",
        "    mu = x.mean(axis=0, keepdims=True)\n    var = x.var(axis=0, keepdims=True)\n",
        "test_layernorm_forward",
        "which is batch norm",
        "normalize each ROW",
    ),
    _m(
        "layer norm backward copied from batch norm (sums over the batch)",
        LN_DX,
        f"    n = dout.shape[0]\n{BN_DX}\n",
        "test_layernorm_backward",
        "sums over the batch like batch norm",
        "axis=1, keepdims=True",
    ),
]


def test_the_reference_solution_passes_every_check(tmp_path: Path) -> None:
    assert failures_of(PACKAGE, None, CHECKS, tmp_path, "optional_reference") == {}


def test_every_graded_check_catches_a_typical_mistake() -> None:
    assert_covers(MUTATIONS, CHECKS, NOTEBOOK)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.mistake for m in MUTATIONS])
def test_a_typical_mistake_fails_its_check_and_names_the_cause(
    mutation: Mutation, tmp_path: Path
) -> None:
    failures = failures_of(PACKAGE, mutation, CHECKS, tmp_path, f"optional_{id(mutation)}")

    assert_names_the_cause(mutation, failures.pop(mutation.check, "it passed"))
    for check, other in failures.items():
        forward_cell, forward = BUILT_ON.get(check, (None, None))
        assert forward_cell == mutation.check, f"{check} failed too: {other}"
        assert f"Fix {forward} first" in other, other


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work:
        print_table(PACKAGE, MUTATIONS, CHECKS, Path(work))
