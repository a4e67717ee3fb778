"""Dropout, batch norm and layer norm, forward and backward, in NumPy. YOUR CODE goes here.

Every layer is a pair of functions in the style of CS231n:

    out, cache = x_forward(x, ...)      # cache holds what the backward pass needs
    dx, ... = x_backward(dout, cache)   # dout = dL/dout, same shape as out

Fill in the regions marked ``# YOUR CODE HERE``; the code around them is complete. Each region
starts with the names it must set (``out = None``, ...) and a comment saying what goes in them;
the given line after it returns them. The notebook checks each function numerically (gradient
checks) and against PyTorch.
"""

import numpy as np


def dropout_forward(x: np.ndarray, dropout_param: dict) -> tuple[np.ndarray, tuple]:
    """Inverted dropout: drop each unit with probability p in training, scale the rest up.

        train:  keep_i ~ Bernoulli(1 - p)       (1: unit i is kept, 0: it is dropped)
                mask = keep / (1 - p)           (0 for dropped units, 1 / (1 - p) for kept ones)
                out = x * mask
        test:   out = x

    Scaling the kept units by 1 / (1 - p) at training time keeps the expected activation the
    same as at test time, E[out] = x, so the test-time network needs no change (the original
    dropout paper instead multiplied the weights by 1 - p at test time).
    This is what ``torch.nn.functional.dropout(x, p, training)`` computes.

    Inputs:
    - x: input of any shape, e.g. (N, D)
    - dropout_param: dict with keys
      - p: the probability of DROPPING a unit, 0 <= p < 1 (default 0.5, as in PyTorch)
      - mode: "train" or "test"
      - seed: optional seed for the random mask; the same seed gives the same mask, which the
        gradient check needs. Draw keep from ``np.random.default_rng(seed)`` and nothing else.

    Returns a tuple of:
    - out: array of the same shape as x
    - cache: (dropout_param, mask); mask as above (already scaled by 1 / (1 - p)), an array
      shaped like x, or None in test mode
    """
    p = dropout_param.get("p", 0.5)
    mode = dropout_param["mode"]
    if not 0 <= p < 1:
        raise ValueError(f"dropout_param['p'] is {p}, but it must be in [0, 1).")
    if mode not in ("train", "test"):
        raise ValueError(f"dropout_param['mode'] is {mode!r}, but it must be 'train' or 'test'.")

    # mask: the scaled mask above (train mode; None in test mode), drawn from the generator
    # np.random.default_rng with the seed dropout_param.get("seed"); out: the layer's output.
    mask, out = None, None
    ### BEGIN SOLUTION
    if mode == "train":
        rng = np.random.default_rng(dropout_param.get("seed"))
        mask = (rng.random(x.shape) >= p) / (1 - p)
        out = x * mask
    else:
        out = x
    ### END SOLUTION
    return out, (dropout_param, mask)


def dropout_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Backward pass of inverted dropout.

        train:  dx = dout * mask     (mask from the cache: it already holds the 1 / (1 - p))
        test:   dx = dout

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: (dropout_param, mask) from dropout_forward

    Returns:
    - dx: gradient with respect to x, same shape as x
    """
    dropout_param, mask = cache
    # dx: the gradient with respect to x.
    dx = None
    ### BEGIN SOLUTION
    if dropout_param["mode"] == "train":
        dx = dout * mask
    else:
        dx = dout
    ### END SOLUTION
    return dx


def batchnorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, bn_param: dict
) -> tuple[np.ndarray, tuple | None]:
    """Batch normalization over the batch axis, per feature (like ``torch.nn.BatchNorm1d``).

    Training (statistics of the current mini-batch B, per feature j):

        mu_B      = 1/N sum_i x_ij
        sigma2_B  = 1/N sum_i (x_ij - mu_B)^2                  (biased variance)
        x_hat_ij  = (x_ij - mu_B) / sqrt(sigma2_B + eps)
        out_ij    = gamma_j * x_hat_ij + beta_j

    and the running averages for test time, with rho = momentum (the weight of the BATCH
    statistic, as on the slides and in PyTorch):

        running_mean <- (1 - rho) * running_mean + rho * mu_B
        running_var  <- (1 - rho) * running_var  + rho * N / (N - 1) * sigma2_B

    Note the N / (N - 1): like ``torch.nn.BatchNorm1d``, the running variance averages the
    UNBIASED batch variance, while the normalization itself uses the biased one.
    Update the two running arrays IN PLACE (``running_mean[:] = ...`` or ``*=`` / ``+=``), so
    that whoever holds them sees the new values.

    Test: x_hat = (x - running_mean) / sqrt(running_var + eps), the batch plays no part.

    Inputs:
    - x: data of shape (N, D)
    - gamma: scale, shape (D,)
    - beta: shift, shape (D,)
    - bn_param: dict with keys
      - mode: "train" or "test"
      - eps: added to the variance for numerical stability (default 1e-5)
      - momentum: rho above (default 0.1)
      - running_mean, running_var: arrays of shape (D,); created as zeros / ones if missing

    Returns a tuple of:
    - out: shape (N, D)
    - cache: what batchnorm_backward needs (training mode), None in test mode
    """
    mode = bn_param["mode"]
    n, d = x.shape
    bn_param.setdefault("running_mean", np.zeros(d, dtype=x.dtype))
    bn_param.setdefault("running_var", np.ones(d, dtype=x.dtype))
    if mode not in ("train", "test"):
        raise ValueError(f"bn_param['mode'] is {mode!r}, but it must be 'train' or 'test'.")
    if mode == "train" and n < 2:
        raise ValueError("Batch norm needs at least 2 samples per batch in training mode.")

    # out: the normalized, scaled and shifted output; cache: what batchnorm_backward needs
    # (training mode). Read eps and momentum from bn_param (defaults above); in training mode
    # also update the arrays bn_param["running_mean"] and bn_param["running_var"] IN PLACE.
    out, cache = None, None
    ### BEGIN SOLUTION
    eps, momentum = bn_param.get("eps", 1e-5), bn_param.get("momentum", 0.1)
    running_mean, running_var = bn_param["running_mean"], bn_param["running_var"]
    if mode == "train":
        mu = x.mean(axis=0)
        var = x.var(axis=0)
        inv_std = 1.0 / np.sqrt(var + eps)
        x_hat = (x - mu) * inv_std
        out = gamma * x_hat + beta
        running_mean *= 1 - momentum
        running_mean += momentum * mu
        running_var *= 1 - momentum
        running_var += momentum * var * n / (n - 1)
        cache = (x_hat, gamma, inv_std)
    else:
        x_hat = (x - running_mean) / np.sqrt(running_var + eps)
        out = gamma * x_hat + beta
    ### END SOLUTION
    return out, cache


def batchnorm_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of batch normalization (training mode).

    With dx_hat = dout * gamma, and sums over the batch axis i:

        dbeta  = sum_i dout_i
        dgamma = sum_i dout_i * x_hat_i
        dx     = 1/N / sqrt(sigma2_B + eps)
                 * (N * dx_hat - sum_i dx_hat_i - x_hat * sum_i (dx_hat_i * x_hat_i))

    (the last line follows from the chain rule through mu_B and sigma2_B; derive it on paper
    with a computational graph, or backpropagate through each step of the forward pass).

    Inputs:
    - dout: upstream gradient, shape (N, D)
    - cache: from batchnorm_forward

    Returns a tuple of:
    - dx: shape (N, D)
    - dgamma: shape (D,)
    - dbeta: shape (D,)
    """
    # dx, dgamma, dbeta: the gradients with respect to x, gamma and beta.
    dx, dgamma, dbeta = None, None, None
    ### BEGIN SOLUTION
    x_hat, gamma, inv_std = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = inv_std / n * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    ### END SOLUTION
    return dx, dgamma, dbeta


def layernorm_forward(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, ln_param: dict
) -> tuple[np.ndarray, tuple]:
    """Layer normalization: normalize each sample over its features (like ``torch.nn.LayerNorm``).

    Per sample i (statistics over the feature axis j, biased variance):

        mu_i     = 1/D sum_j x_ij
        sigma2_i = 1/D sum_j (x_ij - mu_i)^2
        out_ij   = gamma_j * (x_ij - mu_i) / sqrt(sigma2_i + eps) + beta_j

    Training and test mode are the same: there are no running statistics, and one sample's
    output never depends on the other samples of the batch.

    Inputs:
    - x: data of shape (N, D)
    - gamma: scale, shape (D,)
    - beta: shift, shape (D,)
    - ln_param: dict with the optional key eps (default 1e-5)

    Returns a tuple of:
    - out: shape (N, D)
    - cache: what layernorm_backward needs
    """
    # out: the normalized, scaled and shifted output; cache: what layernorm_backward needs.
    # eps: ln_param.get("eps", 1e-5).
    out, cache = None, None
    ### BEGIN SOLUTION
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    out = gamma * x_hat + beta
    cache = (x_hat, gamma, inv_std)
    ### END SOLUTION
    return out, cache


def layernorm_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward pass of layer normalization.

    The batch-norm formula with the roles of the axes swapped for x (sums over features j):

        dbeta  = sum_i dout_i,   dgamma = sum_i dout_i * x_hat_i       (over the batch, as before)
        dx     = 1/D / sqrt(sigma2_i + eps)
                 * (D * dx_hat - sum_j dx_hat_j - x_hat * sum_j (dx_hat_j * x_hat_j))

    Inputs:
    - dout: upstream gradient, shape (N, D)
    - cache: from layernorm_forward

    Returns a tuple of:
    - dx: shape (N, D)
    - dgamma: shape (D,)
    - dbeta: shape (D,)
    """
    # dx, dgamma, dbeta: the gradients with respect to x, gamma and beta.
    dx, dgamma, dbeta = None, None, None
    ### BEGIN SOLUTION
    x_hat, gamma, inv_std = cache
    d = dout.shape[1]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = (
        inv_std
        / d
        * (
            d * dx_hat
            - dx_hat.sum(axis=1, keepdims=True)
            - x_hat * (dx_hat * x_hat).sum(axis=1, keepdims=True)
        )
    )
    ### END SOLUTION
    return dx, dgamma, dbeta
