"""Adaptive average and max pooling: output bin (i, j) covers rows adaptive_bin(i, H, OH) and
columns adaptive_bin(j, W, OW) of each (sample, channel) plane."""
from __future__ import annotations

import numpy as np

from kernels.shapes import adaptive_bin


def _bins(n_in, n_out):
    return [adaptive_bin(i, n_in, n_out) for i in range(n_out)]


def adaptive_avg_pool2d_forward(x, out_hw):
    """x (N,C,H,W) -> y (N,C,OH,OW), each the mean of its bin."""
    N, C, H, W = x.shape
    y = np.empty((N, C) + tuple(out_hw), x.dtype)
    for i, (h0, h1) in enumerate(_bins(H, out_hw[0])):
        for j, (w0, w1) in enumerate(_bins(W, out_hw[1])):
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


def adaptive_avg_pool2d_backward(gy, input_hw):
    """gx (N,C,H,W): each gy value shared evenly by its bin's inputs (bins may overlap)."""
    N, C, OH, OW = gy.shape
    H, W = input_hw
    gx = np.zeros((N, C, H, W), gy.dtype)
    for i, (h0, h1) in enumerate(_bins(H, OH)):
        for j, (w0, w1) in enumerate(_bins(W, OW)):
            gx[:, :, h0:h1, w0:w1] += gy[:, :, i:i + 1, j:j + 1] / ((h1 - h0) * (w1 - w0))
    return gx


def adaptive_max_pool2d_forward(x, out_hw):
    """x (N,C,H,W) -> (y (N,C,OH,OW), indices int64 h*W+w of each bin's first maximum; a NaN beats every number,
    the bin's last NaN, as torch)."""
    N, C, H, W = x.shape
    y = np.empty((N, C) + tuple(out_hw), x.dtype)
    idx = np.empty((N, C) + tuple(out_hw), np.int64)
    for i, (h0, h1) in enumerate(_bins(H, out_hw[0])):
        for j, (w0, w1) in enumerate(_bins(W, out_hw[1])):
            window = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)
            nan = np.isnan(window)
            last_nan = window.shape[2] - 1 - nan[:, :, ::-1].argmax(axis=2)
            flat = np.where(nan.any(axis=2), last_nan, window.argmax(axis=2))
            y[:, :, i, j] = np.take_along_axis(window, flat[:, :, None], axis=2)[:, :, 0]
            wbin = w1 - w0
            idx[:, :, i, j] = (h0 + flat // wbin) * W + w0 + flat % wbin
    return y, idx
