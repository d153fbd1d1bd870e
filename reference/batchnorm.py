"""Batch normalisation over (N, C, L): statistics per channel c over the N*L values x[:, c, :].

BatchNorm1d on (N, C) is L = 1, on (N, C, L) as is; BatchNorm2d on (N, C, H, W) is L = H*W.
"""
from __future__ import annotations

import numpy as np


def _per_channel(v: np.ndarray) -> np.ndarray:
    return v.reshape(1, -1, 1)


def batch_norm_forward_train(x, weight, bias, eps):
    """x (N,C,L), weight (C,), bias (C,) -> (y (N,C,L), mean (C,), var (C,) biased) with the batch's
    statistics: y = (x - mean) / sqrt(var + eps) * weight + bias."""
    mean = x.mean(axis=(0, 2))
    centered = x - _per_channel(mean)
    var = (centered * centered).mean(axis=(0, 2))
    invstd = 1 / np.sqrt(var + x.dtype.type(eps))
    y = centered * _per_channel(invstd * weight) + _per_channel(bias)
    return y.astype(x.dtype, copy=False), mean, var


def batch_norm_forward_eval(x, running_mean, running_var, weight, bias, eps):
    """y (N,C,L) = (x - running_mean) / sqrt(running_var + eps) * weight + bias."""
    scale = weight / np.sqrt(running_var + x.dtype.type(eps))
    return ((x - _per_channel(running_mean)) * _per_channel(scale) + _per_channel(bias)).astype(x.dtype, copy=False)


def batch_norm_backward(gy, x, mean, invstd, weight, training):
    """(gx (N,C,L), gweight (C,), gbias (C,)) of y = (x - mean) * invstd * weight + bias.

    ``training``: mean and invstd were the batch's own statistics (so they depend on x too);
    otherwise they were the running statistics (constants).
    """
    xhat = (x - _per_channel(mean)) * _per_channel(invstd)
    gbias = gy.sum(axis=(0, 2))
    gweight = (gy * xhat).sum(axis=(0, 2))
    scale = _per_channel(weight * invstd)
    if training:
        count = x.shape[0] * x.shape[2]
        gx = scale * (gy - _per_channel(gbias / count) - xhat * _per_channel(gweight / count))
    else:
        gx = gy * scale
    return gx.astype(x.dtype, copy=False), gweight, gbias
