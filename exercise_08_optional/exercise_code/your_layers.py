"""Your NumPy layers as PyTorch modules, so an MLP can train with them. Given code.

``torch.autograd.Function`` lets autograd call your backward pass: the forward converts the
tensor to NumPy, runs your ``*_forward`` and keeps the cache; the backward runs your
``*_backward`` on the upstream gradient. The modules behave like ``nn.Dropout`` and
``nn.BatchNorm1d``: training mode in ``model.train()``, test mode in ``model.eval()``.
"""

import numpy as np
import torch
from torch import nn

from . import layers


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _tensor(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(array, dtype=like.dtype, device=like.device)


class _DropoutFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, param: dict) -> torch.Tensor:
        out, ctx.cache = layers.dropout_forward(_numpy(x), param)
        return _tensor(out, x)

    @staticmethod
    def backward(ctx, dout: torch.Tensor) -> tuple:
        return _tensor(layers.dropout_backward(_numpy(dout), ctx.cache), dout), None


class _BatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, param: dict):
        out, ctx.cache = layers.batchnorm_forward(_numpy(x), _numpy(gamma), _numpy(beta), param)
        return _tensor(out, x)

    @staticmethod
    def backward(ctx, dout: torch.Tensor) -> tuple:
        dx, dgamma, dbeta = layers.batchnorm_backward(_numpy(dout), ctx.cache)
        return _tensor(dx, dout), _tensor(dgamma, dout), _tensor(dbeta, dout), None


class YourDropout(nn.Module):
    """``nn.Dropout(p)`` computed by your dropout_forward / dropout_backward."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return _tensor(layers.dropout_forward(_numpy(x), {"mode": "test", "p": self.p})[0], x)
        return _DropoutFunction.apply(x, {"mode": "train", "p": self.p})


class YourBatchNorm1d(nn.Module):
    """``nn.BatchNorm1d(num_features)`` computed by your batchnorm_forward / batchnorm_backward.

    Input (N, D); gamma starts at 1, beta at 0; the running statistics live in ``bn_param``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.bn_param = {
            "eps": eps,
            "momentum": momentum,
            "running_mean": np.zeros(num_features, dtype=np.float32),
            "running_var": np.ones(num_features, dtype=np.float32),
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        param = dict(self.bn_param, mode="train" if self.training else "test")
        return _BatchNormFunction.apply(x, self.weight, self.bias, param)
