"""Numeric gradients by centered differences, and the relative error to compare them. Given code.

For a layer out = f(x) and an upstream gradient dout, the gradient the backward pass must
return is dx = d/dx sum(f(x) * dout). Centered differences estimate it one entry at a time:

    dx_i ~ sum((f(x + h e_i) - f(x - h e_i)) * dout) / (2 h)

with an error of order h^2. In float64 with h = 1e-5 a correct backward pass agrees to a
relative error of about 1e-8 or better; an error above 1e-7 (the bar in this exercise) almost
always means a bug.
"""

from collections.abc import Callable

import numpy as np


def eval_numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Numeric gradient of sum(f(x) * dout) with respect to x, by centered differences.

    Inputs:
    - f: function taking an array shaped like x and returning an array shaped like dout;
      it must be deterministic (fix the seed of any randomness inside it)
    - x: the point, any shape; changed during the call and restored afterwards
    - dout: upstream gradient, the shape of f(x)
    - h: the step

    Returns:
    - grad: array shaped like x
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        index = it.multi_index
        old_value = x[index]
        x[index] = old_value + h
        plus = f(x).copy()
        x[index] = old_value - h
        minus = f(x).copy()
        x[index] = old_value
        grad[index] = np.sum((plus - minus) * dout) / (2 * h)
        it.iternext()
    return grad


def rel_error(x: np.ndarray, y: np.ndarray) -> float:
    """The largest elementwise relative error max |x - y| / max(1e-8, |x| + |y|)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))
