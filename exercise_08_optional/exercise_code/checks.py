"""The checks the notebook's graded cells run on your layers. Given code.

Each ``check_*`` function takes your function(s) as arguments, prints one line with what it
measured, and raises AssertionError with a sentence saying what is wrong and what to change
when a check fails. Where a typical mistake explains the difference (a wrong axis, the biased
or unbiased variance, a mask applied twice...), the message names it.

Gradients are checked numerically in float64 (relative error below GRAD_TOL) and the layers are
compared with PyTorch's modules, which serve as the reference. A backward check needs a right
forward pass (the numeric gradient comes from it): when the forward pass fails its own check,
the backward check says to fix the forward pass first.
"""

import contextlib
import io
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional

from .gradient_check import eval_numerical_gradient_array, rel_error

GRAD_TOL = 1e-7
TORCH_TOL = 1e-8
EPS = 1e-5


def _array(value: object, what: str) -> np.ndarray:
    """value as an array, or an AssertionError naming the function that returned None."""
    assert value is not None, f"{what} is None: fill in the region marked YOUR CODE HERE."
    return np.asarray(value)


def _torch(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float64))


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return np.shape(a) == np.shape(b) and bool(np.allclose(a, b, rtol=1e-6, atol=1e-9))


@contextlib.contextmanager
def _forward_first(forward_name: str, forward_check: Callable[[], None]):
    """Run a check that relies on a forward pass; if it fails while the forward pass fails its
    own check, say to fix the forward pass first (NotImplementedError passes through)."""
    try:
        yield
    except NotImplementedError:
        raise
    except Exception as failure:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                forward_check()
        except NotImplementedError:
            raise
        except Exception as forward_failure:
            raise AssertionError(
                f"{forward_name} is not right yet, so this check cannot pass: {forward_failure} "
                f"Fix {forward_name} first (its check is above), then run this check again."
            ) from failure
        raise


# --- Dropout ----------------------------------------------------------------------------------


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


def _dropout_backward_mistake(dx: np.ndarray, dout: np.ndarray, mask: np.ndarray, p: float):
    """The typical mistake that explains a wrong dropout dx, if there is one. ``mask`` is the
    scaled mask the forward pass applied (0 or 1 / (1 - p))."""
    if _close(dx, dout * mask / (1 - p)):
        return (
            "dropout_backward scales by 1 / (1 - p) twice: the mask in the cache already holds "
            "1 / (1 - p) for kept units (see dropout_forward's docstring), so dx = dout * mask."
        )
    if _close(dx, dout):
        return (
            "dropout_backward passes dout through unchanged in training mode: dx must be 0 "
            "where the forward pass dropped a unit, dx = dout * mask with the cached mask."
        )
    if _close(dx, dout * (mask != 0)):
        return (
            "dropout_backward leaves out the scaling: the kept units were multiplied by "
            "1 / (1 - p), so their gradient is too (dx = dout * mask with the cached mask)."
        )
    return None


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
    with _forward_first("dropout_forward", lambda: check_dropout_forward(dropout_forward, p=p)):
        out, cache = dropout_forward(x, param)
        dx = _array(dropout_backward(dout, cache), "dx")
        assert dx.shape == x.shape, f"dx has shape {dx.shape}, expected {x.shape}."
        dx_num = eval_numerical_gradient_array(lambda v: dropout_forward(v, param)[0], x, dout)
        error = rel_error(dx, dx_num)
        if error >= GRAD_TOL:
            mistake = _dropout_backward_mistake(dx, dout, np.asarray(out) / x, p)
            raise AssertionError(
                mistake
                or f"dropout_backward: relative error {error:.1e} >= {GRAD_TOL:.0e} against the "
                "numeric gradient; in training mode dx = dout * mask (the cached mask)."
            )
    _, test_cache = dropout_forward(x, {"mode": "test", "p": p})
    test_dx = _array(dropout_backward(dout, test_cache), "dx (test)")
    assert np.array_equal(test_dx, dout), "in test mode, dropout_backward must return dout."
    print(f"dropout_backward: OK (relative error dx {error:.1e})")


# --- Batch norm -------------------------------------------------------------------------------


def _batch(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """A batch whose features have different means and scales, so normalizing matters."""
    return rng.normal(size=(n, d)) * rng.uniform(0.5, 5, size=d) + rng.uniform(-3, 3, size=d)


def _with_weights(layer: torch.nn.Module, gamma, beta) -> torch.nn.Module:
    """A torch normalization layer in float64 with our gamma (weight) and beta (bias)."""
    layer = layer.double()
    with torch.no_grad():
        layer.weight.copy_(_torch(gamma))
        layer.bias.copy_(_torch(beta))
    return layer


def _torch_batchnorm(d: int, gamma, beta, momentum: float, eps: float) -> torch.nn.BatchNorm1d:
    return _with_weights(torch.nn.BatchNorm1d(d, eps=eps, momentum=momentum), gamma, beta)


def check_batchnorm_forward(
    batchnorm_forward: Callable, n: int = 200, d: int = 5, seed: int = 0
) -> None:
    """Training mode: zero mean / unit variance per feature, then outputs equal BatchNorm1d's."""
    rng = np.random.default_rng(seed)
    x = _batch(rng, n, d)
    try:
        out = batchnorm_forward(x, np.ones(d), np.zeros(d), {"mode": "train"})[0]
    except ValueError as error:
        if "broadcast" not in str(error):
            raise
        raise AssertionError(
            f"batchnorm_forward raised ValueError ({error}) for x of shape ({n}, {d}): mu_B, "
            f"sigma2_B, running_mean and running_var hold one value per feature, shape ({d},), "
            "so take the batch statistics over the batch axis, axis=0."
        ) from error
    out = _array(out, "out (train)")
    assert out.shape == x.shape, f"out has shape {out.shape}, expected {x.shape}."
    mean_error = float(np.abs(out.mean(axis=0)).max())
    std = out.std(axis=0)
    std_error = float(np.abs(std - 1).max())
    if mean_error >= 1e-7:
        assert not np.abs(out.mean(axis=1)).max() < 1e-7, (
            "batchnorm_forward normalizes each sample (row) over its features, which is layer "
            "norm: batch norm normalizes each feature (column) over the batch, axis=0."
        )
        raise AssertionError(
            f"with gamma = 1 and beta = 0 every feature should have mean 0, but some are off by "
            f"{mean_error:.1e}: subtract the batch mean mu_B of each feature (axis=0)."
        )
    assert not np.allclose(std, np.sqrt((n - 1) / n), rtol=1e-4), (
        "batchnorm_forward normalizes with the unbiased variance (N - 1 in the denominator): "
        "batch norm uses the BIASED batch variance, sigma2_B = 1/N sum_i (x_i - mu_B)^2."
    )
    assert std_error < 1e-4, (
        f"with gamma = 1 and beta = 0 every feature should have std 1, but some are off by "
        f"{std_error:.1e}: divide by sqrt(sigma2_B + eps) with the BIASED batch variance."
    )
    gamma, beta = rng.normal(1, 0.5, size=d), rng.normal(0, 1, size=d)
    out = _array(batchnorm_forward(x, gamma, beta, {"mode": "train"})[0], "out (train)")
    expected = _torch_batchnorm(d, gamma, beta, 0.1, EPS).train()(_torch(x)).detach().numpy()
    difference = float(np.abs(out - expected).max())
    assert difference < TORCH_TOL, (
        f"training-mode output differs from torch.nn.BatchNorm1d by up to {difference:.1e} "
        "although it is normalized right: scale and shift it, out = gamma * x_hat + beta."
    )
    print(
        f"batchnorm_forward (train): OK (mean {mean_error:.1e}, std - 1 {std_error:.1e}, "
        f"max |out - BatchNorm1d| {difference:.1e})"
    )


def _running_stat_mistake(key: str, found, old, batch_stat, momentum: float) -> str | None:
    """The typical mistake that explains a wrong running statistic, if there is one."""
    if np.allclose(found, old, rtol=0, atol=TORCH_TOL):
        return (
            f"bn_param['{key}'] did not change in training mode: update that array in place "
            f"({key}[:] = ..., or *= and +=); `{key} = ...` only binds the name to a new array."
        )
    if np.allclose(found, momentum * old + (1 - momentum) * batch_stat, rtol=0, atol=TORCH_TOL):
        return (
            f"{key} gives the weight momentum to the old value: momentum is the weight of the "
            f"BATCH statistic, {key} <- (1 - momentum) * {key} + momentum * (batch statistic)."
        )
    return None


def check_batchnorm_running_stats(
    batchnorm_forward: Callable,
    n: int = 16,
    d: int = 4,
    steps: int = 5,
    momentum: float = 0.2,
    seed: int = 0,
) -> None:
    """Running mean / variance over several steps, then test mode, against BatchNorm1d."""
    with _forward_first("batchnorm_forward", lambda: check_batchnorm_forward(batchnorm_forward)):
        difference = _running_stats(batchnorm_forward, n, d, steps, momentum, seed)
    print(
        f"batchnorm running stats: OK ({steps} steps, momentum {momentum}: running_mean and "
        f"running_var equal BatchNorm1d's; test mode max difference {difference:.1e})"
    )


def _running_stats(batchnorm_forward, n, d, steps, momentum, seed) -> float:
    """The running-statistics check; returns the largest test-mode difference to torch."""
    rng = np.random.default_rng(seed)
    gamma, beta = rng.normal(1, 0.5, size=d), rng.normal(0, 1, size=d)
    layer = _torch_batchnorm(d, gamma, beta, momentum, EPS).train()
    running_mean, running_var = np.zeros(d), np.ones(d)
    bn_param = {
        "mode": "train",
        "momentum": momentum,
        "running_mean": running_mean,
        "running_var": running_var,
    }
    for step in range(1, steps + 1):
        x = _batch(rng, n, d)
        old_mean, old_var = running_mean.copy(), running_var.copy()
        batchnorm_forward(x, gamma, beta, bn_param)
        layer(_torch(x))
        for key, array in (("running_mean", running_mean), ("running_var", running_var)):
            assert bn_param[key] is array, (
                f"you rebound bn_param['{key}'] to a new array; update it in place with "
                f"{key}[:] = ... or *= / += (whoever holds the array, like YourBatchNorm1d, "
                "never sees a new one)."
            )
        torch_mean, torch_var = layer.running_mean.numpy(), layer.running_var.numpy()
        if not np.allclose(running_mean, torch_mean, rtol=0, atol=TORCH_TOL):
            raise AssertionError(
                _running_stat_mistake("running_mean", running_mean, old_mean, x.mean(0), momentum)
                or f"after step {step}, running_mean differs from BatchNorm1d's: running_mean "
                "<- (1 - momentum) * running_mean + momentum * mu_B."
            )
        if np.allclose(running_var, (1 - momentum) * old_var + momentum * x.var(axis=0)):
            raise AssertionError(
                f"running_var averages the biased batch variance; BatchNorm1d averages the "
                f"UNBIASED one, N / (N - 1) * sigma2_B = {n / (n - 1):.4f} * sigma2_B."
            )
        twice = x.var(axis=0, ddof=1) * n / (n - 1)
        if np.allclose(running_var, (1 - momentum) * old_var + momentum * twice):
            raise AssertionError(
                "running_var multiplies a variance that is already unbiased by N / (N - 1) "
                "again: compute sigma2_B biased (1/N), normalize with it, and use N / (N - 1) * "
                "sigma2_B for running_var only."
            )
        if not np.allclose(running_var, torch_var, rtol=0, atol=TORCH_TOL):
            unbiased = x.var(axis=0, ddof=1)
            raise AssertionError(
                _running_stat_mistake("running_var", running_var, old_var, unbiased, momentum)
                or f"after step {step}, running_var differs from BatchNorm1d's: running_var <- "
                "(1 - momentum) * running_var + momentum * N / (N - 1) * sigma2_B."
            )
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
    return difference


def _norm_dx_mistakes(name: str, x, gamma, dout) -> dict[str, np.ndarray]:
    """dx of typical wrong backward passes (message -> dx), from the docstrings' formulas."""
    axis = 0 if name == "batchnorm" else 1
    size = x.shape[axis]
    mu = x.mean(axis=axis, keepdims=True)
    inv_std = 1 / np.sqrt(x.var(axis=axis, keepdims=True) + EPS)
    x_hat = (x - mu) * inv_std
    dx_hat = dout * gamma
    mean_term = dx_hat.sum(axis=axis, keepdims=True)
    var_term = x_hat * (dx_hat * x_hat).sum(axis=axis, keepdims=True)
    mistakes = {
        f"{name}_backward: dx goes through x_hat's numerator only; mu and sigma2 depend on x "
        "too: add their terms (the two sums in the docstring's formula).": dx_hat * inv_std,
        f"{name}_backward: dx misses the term through the mean, - sum dx_hat (see the "
        "docstring's formula).": inv_std / size * (size * dx_hat - var_term),
        f"{name}_backward: dx misses the term through the variance, - x_hat * sum (dx_hat * "
        "x_hat) (see the docstring's formula).": inv_std / size * (size * dx_hat - mean_term),
    }
    if name == "layernorm":
        over_batch = (
            inv_std
            / x.shape[0]
            * (x.shape[0] * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
        )
        mistakes[
            "layernorm_backward sums over the batch like batch norm: layer norm's statistics are "
            "per sample, so sum over the features (axis=1, keepdims=True)."
        ] = over_batch
    return mistakes


def _check_norm_backward(
    name: str, forward: Callable, backward: Callable, torch_layer: torch.nn.Module, x, gamma, beta
) -> dict[str, float]:
    """Numeric gradient check of dx, dgamma, dbeta, and a comparison with torch autograd.

    Returns the relative errors.
    """
    rng = np.random.default_rng(123)
    dout = rng.normal(size=x.shape)

    def fresh_param() -> dict:
        return {"mode": "train"}

    _, cache = forward(x, gamma, beta, fresh_param())
    grads = backward(dout, cache)
    assert grads is not None and all(g is not None for g in grads), (
        f"{name}_backward returned None: fill in the region marked YOUR CODE HERE."
    )
    ours = dict(zip(("dx", "dgamma", "dbeta"), (np.asarray(g) for g in grads), strict=True))
    for key, like in (("dx", x), ("dgamma", gamma), ("dbeta", beta)):
        assert ours[key].shape == like.shape, (
            f"{name}_backward: {key} has shape {ours[key].shape}, expected {like.shape}"
            + (": sum over the batch axis (axis=0)." if key != "dx" else ".")
        )
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
    errors = {key: rel_error(ours[key], numeric[key]) for key in ours}
    for message, wrong_dx in _norm_dx_mistakes(name, x, gamma, dout).items():
        assert errors["dx"] < GRAD_TOL or not _close(ours["dx"], wrong_dx), message
    formulas = {
        "dx": "compare each term with the docstring's formula",
        "dgamma": "dgamma = sum over the batch of dout * x_hat",
        "dbeta": "dbeta = sum over the batch of dout",
    }
    for key, error in errors.items():
        assert error < GRAD_TOL, (
            f"{name}_backward: relative error of {key} is {error:.1e} >= {GRAD_TOL:.0e}; "
            f"{formulas[key]}."
        )
    x_torch = _torch(x).requires_grad_(True)
    torch_layer.train()(x_torch).backward(_torch(dout))
    torch_grads = {
        "dx": x_torch.grad.numpy(),
        "dgamma": torch_layer.weight.grad.numpy(),
        "dbeta": torch_layer.bias.grad.numpy(),
    }
    for key, value in torch_grads.items():
        assert np.allclose(ours[key], value, rtol=1e-6, atol=1e-9), (
            f"{name}_backward: {key} differs from torch autograd's."
        )
    return errors


def _print_backward_ok(name: str, errors: dict[str, float]) -> None:
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
    layer = _torch_batchnorm(d, gamma, beta, 0.1, EPS)
    with _forward_first("batchnorm_forward", lambda: check_batchnorm_forward(batchnorm_forward)):
        errors = _check_norm_backward(
            "batchnorm", batchnorm_forward, batchnorm_backward, layer, x, gamma, beta
        )
    _print_backward_ok("batchnorm", errors)


# --- Layer norm -------------------------------------------------------------------------------


def _torch_layernorm(d: int, gamma, beta, eps: float) -> torch.nn.LayerNorm:
    return _with_weights(torch.nn.LayerNorm(d, eps=eps), gamma, beta)


def check_layernorm_forward(
    layernorm_forward: Callable, n: int = 8, d: int = 12, seed: int = 0
) -> None:
    """Outputs equal torch.nn.LayerNorm's, and each sample is normalized on its own."""
    rng = np.random.default_rng(seed)
    x = _batch(rng, d, n).T.copy()  # every sample has its own mean and scale
    gamma, beta = rng.normal(1, 0.5, size=d), rng.normal(0, 1, size=d)
    out = _array(layernorm_forward(x, gamma, beta, {})[0], "out")
    assert out.shape == x.shape, f"out has shape {out.shape}, expected {x.shape}."
    expected = _torch_layernorm(d, gamma, beta, EPS)(_torch(x)).detach().numpy()
    difference = float(np.abs(out - expected).max())
    if difference >= TORCH_TOL:
        plain = _array(layernorm_forward(x, np.ones(d), np.zeros(d), {})[0], "out")
        assert not np.abs(plain.mean(axis=0)).max() < 1e-7, (
            "layernorm_forward normalizes each feature (column) over the batch, which is batch "
            "norm: normalize each ROW (one sample) over its features, axis=1 with keepdims=True."
        )
        assert not np.allclose(plain.std(axis=1), np.sqrt((d - 1) / d), rtol=1e-4), (
            "layernorm_forward normalizes with the unbiased variance (D - 1 in the denominator): "
            "use the biased one, sigma2_i = 1/D sum_j (x_ij - mu_i)^2."
        )
        raise AssertionError(
            f"layernorm_forward differs from torch.nn.LayerNorm by up to {difference:.1e}; "
            "normalize each ROW (one sample) over its features with the biased variance, then "
            "out = gamma * x_hat + beta."
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
    layer = _torch_layernorm(d, gamma, beta, EPS)
    with _forward_first("layernorm_forward", lambda: check_layernorm_forward(layernorm_forward)):
        errors = _check_norm_backward(
            "layernorm", layernorm_forward, layernorm_backward, layer, x, gamma, beta
        )
    _print_backward_ok("layernorm", errors)
