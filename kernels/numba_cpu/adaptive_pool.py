"""Adaptive average and max pooling, compiled with Numba: one (sample, channel) plane per parallel
iteration; bins as ``kernels.shapes.adaptive_bin`` (repeated inline, Numba cannot call it)."""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _bin(i, n_in, n_out):
    return (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)


@njit(parallel=True, cache=True)
def _avg_forward(x, y):
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for i in range(OH):
            h0, h1 = _bin(i, H, OH)
            for j in range(OW):
                w0, w1 = _bin(j, W, OW)
                total = 0.0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        total += x[p, h, w]
                y[p, i, j] = total / ((h1 - h0) * (w1 - w0))


@njit(parallel=True, cache=True)
def _global_avg_forward(x, y):
    """x (P, L) -> y (P,): each row's mean, summed in x's dtype (the 1x1 output the zoo's heads use)."""
    P, L = x.shape
    for p in prange(P):
        total = x[p, 0] * 0
        for k in range(L):
            total += x[p, k]
        y[p] = total / L


@njit(parallel=True, cache=True)
def _avg_backward(gy, gx):
    P, OH, OW = gy.shape
    H, W = gx.shape[1], gx.shape[2]
    for p in prange(P):
        gx[p] = 0
        for i in range(OH):
            h0, h1 = _bin(i, H, OH)
            for j in range(OW):
                w0, w1 = _bin(j, W, OW)
                share = gy[p, i, j] / ((h1 - h0) * (w1 - w0))
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        gx[p, h, w] += share


@njit(parallel=True, cache=True)
def _max_forward(x, y, idx):
    P, H, W = x.shape
    OH, OW = y.shape[1], y.shape[2]
    for p in prange(P):
        for i in range(OH):
            h0, h1 = _bin(i, H, OH)
            for j in range(OW):
                w0, w1 = _bin(j, W, OW)
                best, best_i = x[p, h0, w0], h0 * W + w0
                for h in range(h0, h1):
                    for w in range(w0, w1):
                        v = x[p, h, w]
                        if v > best or v != v:  # a NaN beats every number (the last NaN of the bin), as torch
                            best, best_i = v, h * W + w
                y[p, i, j], idx[p, i, j] = best, best_i


def _planes(a):
    N, C, H, W = a.shape
    return a.reshape(N * C, H, W)


def adaptive_avg_pool2d_forward(x, out_hw):
    """x (N,C,H,W) -> y (N,C,OH,OW)."""
    N, C, H, W = x.shape
    y = np.empty((N, C) + tuple(out_hw), x.dtype)
    if tuple(out_hw) == (1, 1) and H * W > 0:
        _global_avg_forward(x.reshape(N * C, H * W), y.reshape(N * C))
    else:
        _avg_forward(_planes(x), _planes(y))
    return y


def adaptive_avg_pool2d_backward(gy, input_hw):
    """gx (N,C,H,W) of adaptive_avg_pool2d_forward."""
    N, C = gy.shape[:2]
    gx = np.empty((N, C) + tuple(input_hw), gy.dtype)
    _avg_backward(_planes(gy), _planes(gx))
    return gx


def adaptive_max_pool2d_forward(x, out_hw):
    """x (N,C,H,W) -> (y, indices int64 h*W+w of each bin's first maximum)."""
    N, C = x.shape[:2]
    y = np.empty((N, C) + tuple(out_hw), x.dtype)
    idx = np.empty((N, C) + tuple(out_hw), np.int64)
    _max_forward(_planes(x), _planes(y), _planes(idx))
    return y, idx
