"""Batch normalisation over (N, C, L), compiled with Numba: one channel per parallel iteration.

Statistics are two-pass (mean, then the mean of squared deviations) in float64 accumulators for
both dtypes, so float32 results round like torch's (which also accumulates in a wider type).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _forward_train(x, weight, bias, eps, y, mean, var):
    N, C, L = x.shape
    count = N * L
    for c in prange(C):
        total = 0.0
        for n in range(N):
            for i in range(L):
                total += x[n, c, i]
        m = total / count
        squares = 0.0
        for n in range(N):
            for i in range(L):
                d = x[n, c, i] - m
                squares += d * d
        v = squares / count
        mean[c], var[c] = m, v
        scale = weight[c] / np.sqrt(v + eps)
        shift = bias[c] - m * scale
        for n in range(N):
            for i in range(L):
                y[n, c, i] = x[n, c, i] * scale + shift


@njit(parallel=True, cache=True)
def _forward_eval(x, running_mean, running_var, weight, bias, eps, y):
    N, C, L = x.shape
    for c in prange(C):
        scale = weight[c] / np.sqrt(running_var[c] + eps)
        shift = bias[c] - running_mean[c] * scale
        for n in range(N):
            for i in range(L):
                y[n, c, i] = x[n, c, i] * scale + shift


@njit(parallel=True, cache=True)
def _backward(gy, x, mean, invstd, weight, training, gx, gweight, gbias):
    N, C, L = x.shape
    count = N * L
    for c in prange(C):
        m, s = mean[c], invstd[c]
        sum_g = 0.0
        sum_gxhat = 0.0
        for n in range(N):
            for i in range(L):
                g = gy[n, c, i]
                sum_g += g
                sum_gxhat += g * (x[n, c, i] - m) * s
        gbias[c], gweight[c] = sum_g, sum_gxhat
        scale = weight[c] * s
        if training:
            mean_g, mean_gxhat = sum_g / count, sum_gxhat / count
            for n in range(N):
                for i in range(L):
                    xhat = (x[n, c, i] - m) * s
                    gx[n, c, i] = scale * (gy[n, c, i] - mean_g - xhat * mean_gxhat)
        else:
            for n in range(N):
                for i in range(L):
                    gx[n, c, i] = gy[n, c, i] * scale


def batch_norm_forward_train(x, weight, bias, eps):
    """(y, mean (C,), var (C,) biased) of x (N,C,L) normalised with its own statistics."""
    C = x.shape[1]
    y = np.empty_like(x)
    mean, var = np.empty(C, x.dtype), np.empty(C, x.dtype)
    _forward_train(x, weight, bias, x.dtype.type(eps), y, mean, var)
    return y, mean, var


def batch_norm_forward_eval(x, running_mean, running_var, weight, bias, eps):
    """y (N,C,L) normalised with the running statistics."""
    y = np.empty_like(x)
    _forward_eval(x, running_mean, running_var, weight, bias, x.dtype.type(eps), y)
    return y


def batch_norm_backward(gy, x, mean, invstd, weight, training):
    """(gx (N,C,L), gweight (C,), gbias (C,)); ``training``: mean/invstd were the batch's own."""
    C = x.shape[1]
    gx = np.empty_like(x)
    gweight, gbias = np.empty(C, x.dtype), np.empty(C, x.dtype)
    _backward(gy, x, mean, invstd, weight, bool(training), gx, gweight, gbias)
    return gx, gweight, gbias
