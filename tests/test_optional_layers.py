"""The optional exercise's reference layers against numeric gradients and PyTorch. (Typical
student mistakes against the given checks: tests/test_mutations_optional.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from exercise_08_optional.exercise_code import checks, layers  # noqa: E402
from exercise_08_optional.exercise_code.gradient_check import (  # noqa: E402
    eval_numerical_gradient_array,
    rel_error,
)

GRAD_TOL = 1e-7


def _batch(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * rng.uniform(0.5, 4, size=d) + rng.uniform(-2, 2, size=d)


def _torch_norm(layer: torch.nn.Module, gamma: np.ndarray, beta: np.ndarray) -> torch.nn.Module:
    layer = layer.double()
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma))
        layer.bias.copy_(torch.from_numpy(beta))
    return layer


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
def test_dropout_keeps_and_scales_like_torch(p: float) -> None:
    x = 1.0 + np.random.default_rng(0).random((300, 400))
    out, (_, mask) = layers.dropout_forward(x, {"mode": "train", "p": p, "seed": 1})
    reference = functional.dropout(torch.from_numpy(x), p=p, training=True).numpy()
    ours_kept, torch_kept = out != 0, reference != 0
    assert abs(ours_kept.mean() - torch_kept.mean()) < 0.01
    assert abs(ours_kept.mean() - (1 - p)) < 0.01
    np.testing.assert_allclose(out[ours_kept], x[ours_kept] / (1 - p))
    np.testing.assert_allclose(reference[torch_kept], x[torch_kept] / (1 - p))
    np.testing.assert_allclose(mask[ours_kept], 1 / (1 - p))
    test_out, _ = layers.dropout_forward(x, {"mode": "test", "p": p})
    torch_test = functional.dropout(torch.from_numpy(x), p=p, training=False).numpy()
    assert np.array_equal(test_out, x) and np.array_equal(torch_test, x)


def test_dropout_same_seed_same_mask_and_default_p_is_half() -> None:
    x = np.ones((200, 200))
    first, _ = layers.dropout_forward(x, {"mode": "train", "seed": 3})
    second, _ = layers.dropout_forward(x, {"mode": "train", "seed": 3})
    other, _ = layers.dropout_forward(x, {"mode": "train", "seed": 4})
    assert np.array_equal(first, second) and not np.array_equal(first, other)
    assert abs((first == 0).mean() - 0.5) < 0.02


@pytest.mark.parametrize("p", [0.3, 0.7])
def test_dropout_backward_passes_numeric_gradient_check(p: float) -> None:
    rng = np.random.default_rng(2)
    x, dout = rng.normal(size=(8, 9)), rng.normal(size=(8, 9))
    param = {"mode": "train", "p": p, "seed": 5}
    _, cache = layers.dropout_forward(x, param)
    dx = layers.dropout_backward(dout, cache)
    numeric = eval_numerical_gradient_array(lambda v: layers.dropout_forward(v, param)[0], x, dout)
    assert rel_error(dx, numeric) < GRAD_TOL


@pytest.mark.parametrize(("n", "d", "momentum"), [(16, 4, 0.1), (5, 7, 0.5), (64, 3, 1.0)])
def test_batchnorm_matches_batchnorm1d_outputs_and_running_stats(
    n: int, d: int, momentum: float
) -> None:
    rng = np.random.default_rng(0)
    gamma, beta = rng.normal(1, 0.3, size=d), rng.normal(size=d)
    reference = _torch_norm(torch.nn.BatchNorm1d(d, momentum=momentum), gamma, beta).train()
    bn_param = {"mode": "train", "momentum": momentum}
    for step in range(6):
        x = _batch(n, d, seed=step)
        out, _ = layers.batchnorm_forward(x, gamma, beta, bn_param)
        expected = reference(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)
        np.testing.assert_allclose(bn_param["running_mean"], reference.running_mean, atol=1e-12)
        np.testing.assert_allclose(bn_param["running_var"], reference.running_var, atol=1e-12)
    x_test = _batch(3, d, seed=99)
    out, _ = layers.batchnorm_forward(x_test, gamma, beta, dict(bn_param, mode="test"))
    expected = reference.eval()(torch.from_numpy(x_test)).detach().numpy()
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)


def test_batchnorm_running_var_averages_the_unbiased_batch_variance() -> None:
    x = _batch(6, 3, seed=1)
    running_mean, running_var = np.zeros(3), np.ones(3)
    bn_param = {"mode": "train", "momentum": 1.0, "running_mean": running_mean}
    bn_param["running_var"] = running_var
    layers.batchnorm_forward(x, np.ones(3), np.zeros(3), bn_param)
    np.testing.assert_allclose(running_var, x.var(axis=0, ddof=1))
    np.testing.assert_allclose(running_mean, x.mean(axis=0))


def test_batchnorm_test_mode_treats_each_sample_alone() -> None:
    bn_param = {"mode": "train"}
    for seed in range(5):
        layers.batchnorm_forward(_batch(20, 4, seed), np.ones(4), np.zeros(4), bn_param)
    test_param = dict(bn_param, mode="test")
    batch = _batch(8, 4, seed=10)
    out, _ = layers.batchnorm_forward(batch, np.ones(4), np.zeros(4), test_param)
    alone, _ = layers.batchnorm_forward(batch[2:3], np.ones(4), np.zeros(4), test_param)
    np.testing.assert_allclose(alone[0], out[2], rtol=0, atol=1e-14)


def _norm_gradients(forward, backward, x, gamma, beta) -> dict[str, float]:
    dout = np.random.default_rng(7).normal(size=x.shape)
    _, cache = forward(x, gamma, beta, {"mode": "train"})
    dx, dgamma, dbeta = backward(dout, cache)
    numeric = {
        "dx": eval_numerical_gradient_array(
            lambda v: forward(v, gamma, beta, {"mode": "train"})[0], x, dout
        ),
        "dgamma": eval_numerical_gradient_array(
            lambda v: forward(x, v, beta, {"mode": "train"})[0], gamma, dout
        ),
        "dbeta": eval_numerical_gradient_array(
            lambda v: forward(x, gamma, v, {"mode": "train"})[0], beta, dout
        ),
    }
    ours = {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}
    return {key: rel_error(ours[key], numeric[key]) for key in ours}


@pytest.mark.parametrize(("n", "d", "seed"), [(4, 5, 0), (10, 3, 1), (3, 8, 2)])
def test_batchnorm_backward_passes_numeric_gradient_check(n: int, d: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, gamma, beta = _batch(n, d, seed), rng.normal(1, 0.3, size=d), rng.normal(size=d)
    errors = _norm_gradients(layers.batchnorm_forward, layers.batchnorm_backward, x, gamma, beta)
    assert max(errors.values()) < GRAD_TOL, errors


@pytest.mark.parametrize(("n", "d", "seed"), [(4, 6, 0), (7, 3, 1)])
def test_layernorm_matches_torch_and_passes_numeric_gradient_check(
    n: int, d: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x, gamma, beta = _batch(d, n, seed).T.copy(), rng.normal(1, 0.3, size=d), rng.normal(size=d)
    out, cache = layers.layernorm_forward(x, gamma, beta, {})
    reference = _torch_norm(torch.nn.LayerNorm(d), gamma, beta)
    x_torch = torch.from_numpy(x).requires_grad_(True)
    expected = reference(x_torch)
    np.testing.assert_allclose(out, expected.detach().numpy(), rtol=0, atol=1e-10)
    dout = np.random.default_rng(7).normal(size=x.shape)
    expected.backward(torch.from_numpy(dout))
    dx, dgamma, dbeta = layers.layernorm_backward(dout, cache)
    np.testing.assert_allclose(dx, x_torch.grad.numpy(), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(dgamma, reference.weight.grad.numpy(), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(dbeta, reference.bias.grad.numpy(), rtol=1e-7, atol=1e-10)
    errors = _norm_gradients(layers.layernorm_forward, layers.layernorm_backward, x, gamma, beta)
    assert max(errors.values()) < GRAD_TOL, errors


def test_reference_layers_pass_the_notebook_checks(capsys: pytest.CaptureFixture) -> None:
    checks.check_dropout_forward(layers.dropout_forward)
    checks.check_dropout_backward(layers.dropout_forward, layers.dropout_backward)
    checks.check_batchnorm_forward(layers.batchnorm_forward)
    checks.check_batchnorm_running_stats(layers.batchnorm_forward)
    checks.check_batchnorm_backward(layers.batchnorm_forward, layers.batchnorm_backward)
    checks.check_layernorm_forward(layers.layernorm_forward)
    checks.check_layernorm_backward(layers.layernorm_forward, layers.layernorm_backward)
    assert capsys.readouterr().out.count(": OK") == 7


def test_your_layers_modules_train_and_evaluate_like_torchs() -> None:
    from exercise_08_optional.exercise_code.your_layers import YourBatchNorm1d, YourDropout

    x = torch.from_numpy(_batch(16, 5, seed=3)).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    ours, reference = YourBatchNorm1d(5).double(), torch.nn.BatchNorm1d(5).double()
    ours.bn_param["running_mean"] = np.zeros(5)
    ours.bn_param["running_var"] = np.ones(5)
    dout = torch.from_numpy(np.random.default_rng(1).normal(size=(16, 5)))
    ours(x).backward(dout)
    reference(x_ref).backward(dout)
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad)
    np.testing.assert_allclose(ours.bn_param["running_var"], reference.running_var.numpy())
    x_test = torch.from_numpy(_batch(4, 5, seed=4))
    torch.testing.assert_close(ours.eval()(x_test), reference.eval()(x_test))
    dropout = YourDropout(0.5)
    kept = dropout(torch.ones(100, 100)) != 0
    assert 0.45 < kept.float().mean() < 0.55
    assert torch.equal(dropout.eval()(torch.ones(3, 3)), torch.ones(3, 3))
