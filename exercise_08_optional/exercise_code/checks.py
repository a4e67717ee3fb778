"""The checks the notebook's graded cells run on your layers. Given code.

Each ``check_*`` function takes your function(s) as arguments, prints one line with what it
measured, and raises AssertionError with a sentence saying what is wrong when a check fails.
Gradients are checked numerically in float64 (relative error below GRAD_TOL) and the layers are
compared with PyTorch's modules, which serve as the reference.
"""

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional

from .gradient_check import eval_numerical_gradient_array, rel_error

GRAD_TOL = 1e-7
TORCH_TOL = 1e-8


def _array(value: object, what: str) -> np.ndarray:
    """value as an array, or an AssertionError naming the function that returned None."""
    assert value is not None, f"{what} is None: fill in the region marked YOUR CODE HERE."
    return np.asarray(value)


def _torch(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float64))


def check_dropout_forward(
    dropout_forward: Callable, p: float = 0.3, shape: tuple = (400, 500), seed: int = 0
) -> None:
    """Keep rate, scaling of kept units, expectation, seeding, test mode, and torch semantics."""
    x = 1.0 + np.random.default_rng([seed, 1]).random(shape)  # not the mask's random stream
    out = _array(dropout_forward(x, {"mode": "train", "p": p, "seed": seed})[0], "out (train)")
    assert out.shape == x.shape, f"out has shape {out.shape}, expected {x.shape}."
    kept = out != 0
    keep_rate = float(kept.mean())
    tolerance = 5 * np.sqrt(p * (1 - p) / x.size) + 1e-3
    assert abs(keep_rate - (1 - p)) < tolerance, (
        f"dropout_forward keeps {keep_rate:.3f} of the units for p={p}; it should keep 1 - p = "
        f"{1 - p:.3f} (p is the probability of DROPPING a unit)."
    )
    scale = out[kept] / x[kept]
    assert np.allclose(scale, 1 / (1 - p)), (
        f"kept units are multiplied by {scale.min():.4f}..{scale.max():.4f}; inverted dropout "
        f"multiplies them by 1 / (1 - p) = {1 / (1 - p):.4f}."
    )
    torch_out = functional.dropout(_torch(x), p=p, training=True).numpy()
    torch_scale = float(np.unique(np.round(torch_out[torch_out != 0] / x[torch_out != 0], 10))[0])
    assert np.isclose(scale[0], torch_scale), "kept units are scaled unlike torch's dropout."
    again = _array(dropout_forward(x, {"mode": "train", "p": p, "seed": seed})[0], "out (train)")
    assert np.array_equal(out, again), (
        "two calls with the same seed gave different masks; draw the mask from rng only."
    )
    test_out = _array(dropout_forward(x, {"mode": "test", "p": p})[0], "out (test)")
    assert np.array_equal(test_out, x), "in test mode, dropout_forward must return x unchanged."
    torch_test = functional.dropout(_torch(x), p=p, training=False).numpy()
    assert np.array_equal(torch_test, test_out), "test mode differs from torch's dropout."
    mean_ratio = float(out.mean() / x.mean())
    print(
        f"dropout_forward: OK (p={p}: keeps {keep_rate:.3f}, kept units x {scale[0]:.4f} as in "
        f"torch, mean out / mean x = {mean_ratio:.3f}, test mode = identity)"
    )


def check_dropout_backward(
    dropout_forward: Callable,
    dropout_backward: Callable,
    p: float = 0.4,
    shape: tuple = (10, 12),
    seed: int = 1,
) -> None:
    """Numeric gradient check of dropout_backward in train mode; identity in test mode."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    dout = rng.normal(size=shape)
    param = {"mode": "train", "p": p, "seed": seed}
    _, cache = dropout_forward(x, param)
    dx = _array(dropout_backward(dout, cache), "dx")
    dx_num = eval_numerical_gradient_array(lambda v: dropout_forward(v, param)[0], x, dout)
    error = rel_error(dx, dx_num)
    assert error < GRAD_TOL, f"dropout_backward: relative error {error:.1e} >= {GRAD_TOL:.0e}."
    _, test_cache = dropout_forward(x, {"mode": "test", "p": p})
    test_dx = _array(dropout_backward(dout, test_cache), "dx (test)")
    assert np.array_equal(test_dx, dout), "in test mode, dropout_backward must return dout."
    print(f"dropout_backward: OK (relative error dx {error:.1e})")


def _batch(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """A batch whose features have different means and scales, so normalizing matters."""
    return rng.normal(size=(n, d)) * rng.uniform(0.5, 5, size=d) + rng.uniform(-3, 3, size=d)


def _torch_batchnorm(d: int, gamma, beta, momentum: float, eps: float) -> torch.nn.BatchNorm1d:
    layer = torch.nn.BatchNorm1d(d, eps=eps, momentum=momentum).double()
    with torch.no_grad():
        layer.weight.copy_(_torch(gamma))
        layer.bias.copy_(_torch(beta))
    return layer


def check_batchnorm_forward(
    batchnorm_forward: Callable, n: int = 200, d: int = 5, seed: int = 0
) -> None:
    """Training mode: zero mean / unit variance per feature, then outputs equal BatchNorm1d's."""
    rng = np.random.default_rng(seed)
    x = _batch(rng, n, d)
    out = _array(batchnorm_forward(x, np.ones(d), np.zeros(d), {"mode": "train"})[0], "out (train)")
    assert out.shape == x.shape, f"out has shape {out.shape}, expected {x.shape}."
    mean_error = float(np.abs(out.mean(axis=0)).max())
    std_error = float(np.abs(out.std(axis=0) - 1).max())
    assert mean_error < 1e-7 and std_error < 1e-4, (
        f"with gamma = 1 and beta = 0 the features should have mean 0 and std 1, but they are "
        f"off by up to {mean_error:.1e} (mean) and {std_error:.1e} (std); normalize with the "
        "batch mean and the BIASED batch variance."
    )
    gamma, beta = rng.normal(1, 0.5, size=d), rng.normal(0, 1, size=d)
    out = _array(batchnorm_forward(x, gamma, beta, {"mode": "train"})[0], "out (train)")
    expected = _torch_batchnorm(d, gamma, beta, 0.1, 1e-5).train()(_torch(x)).detach().numpy()
    difference = float(np.abs(out - expected).max())
    assert difference < TORCH_TOL, (
        f"training-mode output differs from torch.nn.BatchNorm1d by up to {difference:.1e}; "
        "normalize with the batch mean and the BIASED batch variance, then scale and shift."
    )
    print(
        f"batchnorm_forward (train): OK (mean {mean_error:.1e}, std - 1 {std_error:.1e}, "
        f"max |out - BatchNorm1d| {difference:.1e})"
    )


def check_batchnorm_running_stats(
    batchnorm_forward: Callable,
    n: int = 16,
    d: int = 4,
    steps: int = 5,
    momentum: float = 0.2,
    seed: int = 0,
) -> None:
    """Running mean / variance over several steps, then test mode, against BatchNorm1d."""
    rng = np.random.default_rng(seed)
    gamma, beta = rng.normal(1, 0.5, size=d), rng.normal(0, 1, size=d)
    layer = _torch_batchnorm(d, gamma, beta, momentum, 1e-5).train()
    running_mean, running_var = np.zeros(d), np.ones(d)
    biased_var = running_var.copy()  # what a running_var built from the biased variance gives
    bn_param = {
        "mode": "train",
        "momentum": momentum,
        "running_mean": running_mean,
        "running_var": running_var,
    }
    for step in range(1, steps + 1):
        x = _batch(rng, n, d)
        batchnorm_forward(x, gamma, beta, bn_param)
        layer(_torch(x))
        biased_var = (1 - momentum) * biased_var + momentum * x.var(axis=0)
        torch_mean, torch_var = layer.running_mean.numpy(), layer.running_var.numpy()
        assert np.allclose(bn_param["running_mean"], torch_mean, rtol=0, atol=TORCH_TOL), (
            f"after step {step}, running_mean differs from BatchNorm1d's; use running_mean = "
            "(1 - momentum) * running_mean + momentum * batch mean."
        )
        if np.allclose(bn_param["running_var"], biased_var, rtol=0, atol=TORCH_TOL):
            raise AssertionError(
                f"running_var averages the biased batch variance; BatchNorm1d averages the "
                f"UNBIASED one, N / (N - 1) * sigma2 = {n / (n - 1):.4f} * sigma2."
            )
        assert np.allclose(bn_param["running_var"], torch_var, rtol=0, atol=TORCH_TOL), (
            f"after step {step}, running_var differs from BatchNorm1d's; use running_var = "
            "(1 - momentum) * running_var + momentum * N / (N - 1) * batch variance."
        )
        assert np.allclose(running_mean, torch_mean, rtol=0, atol=TORCH_TOL) and np.allclose(
            running_var, torch_var, rtol=0, atol=TORCH_TOL
        ), "update bn_param's running_mean and running_var arrays in place ([:] =, *=, +=)."
    before = (running_mean.copy(), running_var.copy())
    x_test = _batch(rng, 7, d)
    out = _array(
        batchnorm_forward(x_test, gamma, beta, dict(bn_param, mode="test"))[0], "out (test)"
    )
    expected = layer.eval()(_torch(x_test)).detach().numpy()
    difference = float(np.abs(out - expected).max())
    assert difference < TORCH_TOL, (
        f"test-mode output differs from BatchNorm1d.eval() by up to {difference:.1e}; normalize "
        "with running_mean and running_var, not with the statistics of the batch."
    )
    assert np.array_equal(before[0], running_mean) and np.array_equal(before[1], running_var), (
        "test mode must not change the running statistics."
    )
    print(
        f"batchnorm running stats: OK ({steps} steps, momentum {momentum}: running_mean and "
        f"running_var equal BatchNorm1d's; test mode max difference {difference:.1e})"
    )


def _check_norm_backward(
    name: str, forward: Callable, backward: Callable, torch_layer: torch.nn.Module, x, gamma, beta
) -> None:
    """Numeric gradient check of dx, dgamma, dbeta, and a comparison with torch autograd."""
    rng = np.random.default_rng(123)
    dout = rng.normal(size=x.shape)

    def fresh_param() -> dict:
        return {"mode": "train"}

    _, cache = forward(x, gamma, beta, fresh_param())
    grads = backward(dout, cache)
    assert grads is not None and all(g is not None for g in grads), (
        f"{name}_backward returned None: fill in the region marked YOUR CODE HERE."
    )
    dx, dgamma, dbeta = (np.asarray(g) for g in grads)
    numeric = {
        "dx": eval_numerical_gradient_array(
            lambda v: forward(v, gamma, beta, fresh_param())[0], x, dout
        ),
        "dgamma": eval_numerical_gradient_array(
            lambda v: forward(x, v, beta, fresh_param())[0], gamma, dout
        ),
        "dbeta": eval_numerical_gradient_array(
            lambda v: forward(x, gamma, v, fresh_param())[0], beta, dout
        ),
    }
    errors = {
        key: rel_error(value, numeric[key])
        for key, value in {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}.items()
    }
    for key, error in errors.items():
        assert error < GRAD_TOL, (
            f"{name}_backward: relative error of {key} is {error:.1e} >= {GRAD_TOL:.0e}."
        )
    x_torch = _torch(x).requires_grad_(True)
    torch_layer.train()(x_torch).backward(_torch(dout))
    torch_grads = {
        "dx": x_torch.grad.numpy(),
        "dgamma": torch_layer.weight.grad.numpy(),
        "dbeta": torch_layer.bias.grad.numpy(),
    }
    ours = {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}
    for key, value in torch_grads.items():
        assert np.allclose(ours[key], value, rtol=1e-6, atol=1e-9), (
            f"{name}_backward: {key} differs from torch autograd's."
        )
    print(
        f"{name}_backward: OK (relative errors "
        + ", ".join(f"{key} {error:.1e}" for key, error in errors.items())
        + "; equal to torch autograd)"
    )


def check_batchnorm_backward(
    batchnorm_forward: Callable,
    batchnorm_backward: Callable,
    n: int = 4,
    d: int = 5,
    seed: int = 0,
) -> None:
    """Numeric gradient check (float64) of dx, dgamma, dbeta, and torch autograd parity."""
    rng = np.random.default_rng(seed)
    x = _batch(rng, n, d)
    gamma, beta = rng.normal(1, 0.5, size=d), rng.normal(0, 1, size=d)
    layer = _torch_batchnorm(d, gamma, beta, 0.1, 1e-5)
    _check_norm_backward("batchnorm", batchnorm_forward, batchnorm_backward, layer, x, gamma, beta)


def _torch_layernorm(d: int, gamma, beta, eps: float) -> torch.nn.LayerNorm:
    layer = torch.nn.LayerNorm(d, eps=eps).double()
    with torch.no_grad():
        layer.weight.copy_(_torch(gamma))
        layer.bias.copy_(_torch(beta))
    return layer


def check_layernorm_forward(
    layernorm_forward: Callable, n: int = 8, d: int = 12, seed: int = 0
) -> None:
    """Outputs equal torch.nn.LayerNorm's, and each sample is normalized on its own."""
    rng = np.random.default_rng(seed)
    x = _batch(rng, d, n).T.copy()  # every sample has its own mean and scale
    gamma, beta = rng.normal(1, 0.5, size=d), rng.normal(0, 1, size=d)
    out = _array(layernorm_forward(x, gamma, beta, {})[0], "out")
    assert out.shape == x.shape, f"out has shape {out.shape}, expected {x.shape}."
    expected = _torch_layernorm(d, gamma, beta, 1e-5)(_torch(x)).detach().numpy()
    difference = float(np.abs(out - expected).max())
    assert difference < TORCH_TOL, (
        f"layernorm_forward differs from torch.nn.LayerNorm by up to {difference:.1e}; "
        "normalize each ROW (one sample) over its features with the biased variance."
    )
    alone = _array(layernorm_forward(x[:1], gamma, beta, {})[0], "out")
    assert np.allclose(alone, out[:1], rtol=0, atol=1e-12), (
        "a sample's layer-norm output must not depend on the other samples of the batch."
    )
    print(f"layernorm_forward: OK (max |out - LayerNorm| {difference:.1e}, per sample)")


def check_layernorm_backward(
    layernorm_forward: Callable,
    layernorm_backward: Callable,
    n: int = 4,
    d: int = 6,
    seed: int = 0,
) -> None:
    """Numeric gradient check (float64) of dx, dgamma, dbeta, and torch autograd parity."""
    rng = np.random.default_rng(seed)
    x = _batch(rng, d, n).T.copy()
    gamma, beta = rng.normal(1, 0.5, size=d), rng.normal(0, 1, size=d)
    layer = _torch_layernorm(d, gamma, beta, 1e-5)
    _check_norm_backward("layernorm", layernorm_forward, layernorm_backward, layer, x, gamma, beta)
