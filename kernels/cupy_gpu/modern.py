"""Batch norm, dropout and adaptive pooling on the GPU: launch code for ``sources_modern.py``.

Batch norm: one block of ``BN_BLOCK`` threads per channel (the statistics are per-block sums);
dropout and adaptive pooling: one thread per element.
"""

from __future__ import annotations

import cupy

from ._compile import check_int32, ints, kernel, launch_1d
from .sources_modern import BN_BLOCK


def _scalar(value, dtype):
    """A T scalar as the 1-element device array the kernels read it from."""
    return cupy.asarray([value], dtype=dtype)


def batch_norm_forward_train(x, weight, bias, eps):
    """(y (N,C,L), mean (C,), var (C,) biased) of x normalised with its own statistics."""
    N, C, L = x.shape
    check_int32(x.size)
    y = cupy.empty_like(x)
    mean, var = cupy.empty(C, x.dtype), cupy.empty(C, x.dtype)
    args = (x, weight, bias, _scalar(eps, x.dtype), y, mean, var) + ints(N, C, L)
    if C:
        kernel("BATCHNORM", "batch_norm_forward_train", x.dtype)((C,), (BN_BLOCK,), args)
    return y, mean, var


def batch_norm_forward_eval(x, running_mean, running_var, weight, bias, eps):
    """y (N,C,L) normalised with the running statistics."""
    N, C, L = x.shape
    check_int32(x.size)
    y = cupy.empty_like(x)
    args = (x, running_mean, running_var, weight, bias, _scalar(eps, x.dtype), y) + ints(x.size, C, L)
    launch_1d(kernel("BATCHNORM", "batch_norm_forward_eval", x.dtype), x.size, args)
    return y


def batch_norm_backward(gy, x, mean, invstd, weight, training):
    """(gx (N,C,L), gweight (C,), gbias (C,)); ``training``: mean/invstd were the batch's own."""
    N, C, L = x.shape
    gx = cupy.empty_like(x)
    gweight, gbias = cupy.empty(C, x.dtype), cupy.empty(C, x.dtype)
    args = (gy, x, mean, invstd, weight, gx, gweight, gbias) + ints(N, C, L, bool(training))
    if C:
        kernel("BATCHNORM", "batch_norm_backward", x.dtype)((C,), (BN_BLOCK,), args)
    return gx, gweight, gbias


def _mask(x, keep, scale):
    check_int32(x.size)
    y = cupy.empty_like(x)
    launch_1d(kernel("DROPOUT", "dropout_mask", x.dtype), x.size,
              (x, keep, _scalar(scale, x.dtype), y) + ints(x.size))
    return y


def dropout_forward(x, keep, scale):
    """y = x * keep * scale (keep: uint8 of x's shape)."""
    return _mask(x, keep, scale)


def dropout_backward(gy, keep, scale):
    """gx = gy * keep * scale."""
    return _mask(gy, keep, scale)


def adaptive_avg_pool2d_forward(x, out_hw):
    """x (N,C,H,W) -> y (N,C,OH,OW), bin means."""
    N, C, H, W = x.shape
    y = cupy.empty((N, C) + tuple(out_hw), x.dtype)
    check_int32(x.size, y.size)
    launch_1d(kernel("ADAPTIVE_POOL", "adaptive_avg_pool2d_forward", x.dtype), y.size,
              (x, y) + ints(y.size, H, W, *out_hw))
    return y


def adaptive_avg_pool2d_backward(gy, input_hw):
    """gx (N,C,H,W) of adaptive_avg_pool2d_forward."""
    N, C, OH, OW = gy.shape
    gx = cupy.empty((N, C) + tuple(input_hw), gy.dtype)
    check_int32(gy.size, gx.size)
    launch_1d(kernel("ADAPTIVE_POOL", "adaptive_avg_pool2d_backward", gy.dtype), gx.size,
              (gy, gx) + ints(gx.size, *input_hw, OH, OW))
    return gx


def adaptive_max_pool2d_forward(x, out_hw):
    """x (N,C,H,W) -> (y, indices int64 h*W+w of each bin's first maximum)."""
    N, C, H, W = x.shape
    y = cupy.empty((N, C) + tuple(out_hw), x.dtype)
    idx = cupy.empty((N, C) + tuple(out_hw), cupy.int64)
    check_int32(x.size, y.size)
    launch_1d(kernel("ADAPTIVE_POOL", "adaptive_max_pool2d_forward", x.dtype), y.size,
              (x, y, idx) + ints(y.size, H, W, *out_hw))
    return y, idx
