"""Dropout's masking, compiled with Numba: y = x * scale where keep is set, else 0."""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _mask(x, keep, scale, y):
    zero = x.dtype.type(0)
    for i in prange(x.size):
        y[i] = x[i] * scale if keep[i] else zero


def dropout_forward(x, keep, scale):
    """y = x * keep * scale (keep: uint8 of x's shape)."""
    y = np.empty_like(x)
    _mask(x.reshape(-1), keep.reshape(-1), x.dtype.type(scale), y.reshape(-1))
    return y


def dropout_backward(gy, keep, scale):
    """gx = gy * keep * scale."""
    return dropout_forward(gy, keep, scale)
