"""2-D average and max pooling in plain NumPy, with PyTorch's semantics.

Like the direct convolution, each kernel runs a Python loop over the KH*KW window offsets and
handles one strided (N, C, OH, OW) slice of the padded input per offset. Output sizes come from
``kernels.shapes.pool2d_out_hw`` (ceil_mode included); geometry arguments are (h, w) int pairs.
"""
from __future__ import annotations

import numpy as np

from kernels.shapes import pool2d_out_hw
from reference.conv import offset_window, pad_for_windows, pad_widths

Pair = tuple[int, int]
NO_DILATION = (1, 1)


def _window_starts(n_out: int, stride: int, padding: int) -> np.ndarray:
    """Input coordinate (possibly negative, in the padding) where each output's window starts."""
    return np.arange(n_out) * stride - padding


def _avg_divisor(input_hw: Pair, out_hw: Pair, kernel: Pair, stride: Pair, padding: Pair,
                 count_include_pad: bool, dtype) -> np.ndarray:
    """(OH, OW) number of elements each window averages over, as torch counts them: the window
    clipped to [-p, n+p) with count_include_pad, else clipped to the real input [0, n)."""
    counts = []
    for axis in range(2):
        n, p = input_hw[axis], padding[axis]
        start = _window_starts(out_hw[axis], stride[axis], p)
        end = np.minimum(start + kernel[axis], n + p)
        if count_include_pad:
            counts.append(end - start)
        else:
            counts.append(np.minimum(end, n) - np.maximum(start, 0))
    return np.multiply.outer(counts[0], counts[1]).astype(dtype)


def avg_pool2d_forward(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, ceil_mode: bool,
                       count_include_pad: bool) -> np.ndarray:
    """x (N, C, H, W) -> y (N, C, OH, OW); padding counts as zeros."""
    input_hw = x.shape[2:]
    out_hw = pool2d_out_hw(input_hw, kernel, stride, padding, NO_DILATION, ceil_mode)
    xp = pad_for_windows(x, padding, kernel, out_hw, stride, NO_DILATION)
    total = np.zeros(x.shape[:2] + tuple(out_hw), x.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            total += xp[offset_window(i, j, out_hw, stride, NO_DILATION)]
    return total / _avg_divisor(input_hw, out_hw, kernel, stride, padding, count_include_pad, x.dtype)


def avg_pool2d_backward(gy: np.ndarray, input_hw: Pair, kernel: Pair, stride: Pair, padding: Pair,
                        ceil_mode: bool, count_include_pad: bool) -> np.ndarray:
    """gy (N, C, OH, OW) -> gx (N, C, H, W): each window spreads gy / divisor over its elements."""
    out_hw = gy.shape[2:]
    g = gy / _avg_divisor(input_hw, out_hw, kernel, stride, padding, count_include_pad, gy.dtype)
    (top, bottom), (left, right) = pad_widths(input_hw, padding, kernel, out_hw, stride, NO_DILATION)
    h, w = input_hw
    gxp = np.zeros(gy.shape[:2] + (top + h + bottom, left + w + right), gy.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            gxp[offset_window(i, j, out_hw, stride, NO_DILATION)] += g
    return np.ascontiguousarray(gxp[:, :, top:top + h, left:left + w])


def max_pool2d_forward(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
                       ceil_mode: bool) -> tuple[np.ndarray, np.ndarray]:
    """x (N, C, H, W) -> (y (N, C, OH, OW), indices (N, C, OH, OW) int64).

    indices hold h*W + w of the first maximum in row-major window order; padding acts as -inf.
    As in torch, a NaN wins over any number (the last NaN of a window), and a window of only
    -inf reports its first in-bounds position.
    """
    (h, w), (dh, dw) = x.shape[2:], dilation
    out_hw = pool2d_out_hw((h, w), kernel, stride, padding, dilation, ceil_mode)
    xp = pad_for_windows(x, padding, kernel, out_hw, stride, dilation, value=-np.inf)
    start_h = _window_starts(out_hw[0], stride[0], padding[0])
    start_w = _window_starts(out_hw[1], stride[1], padding[1])
    # torch starts from the first in-bounds element of the window, with value -inf.
    first_h = start_h + (-(-np.maximum(0, -start_h) // dh)) * dh
    first_w = start_w + (-(-np.maximum(0, -start_w) // dw)) * dw
    best = np.full(x.shape[:2] + tuple(out_hw), -np.inf, x.dtype)
    index = np.broadcast_to(np.add.outer(first_h * w, first_w), best.shape).astype(np.int64)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            value = xp[offset_window(i, j, out_hw, stride, dilation)]
            take = (value > best) | np.isnan(value)  # strict '>' keeps the first maximum
            best = np.where(take, value, best)
            position = np.add.outer((start_h + i * dh) * w, start_w + j * dw)
            index = np.where(take, position, index)
    return best, index


def max_pool2d_backward(gy: np.ndarray, indices: np.ndarray, input_hw: Pair) -> np.ndarray:
    """gy, indices (N, C, OH, OW) -> gx (N, C, H, W): gy added at each window's maximum
    (overlapping windows that share a maximum accumulate)."""
    n, c = gy.shape[:2]
    h, w = input_hw
    gx = np.zeros((n * c, h * w), gy.dtype)
    rows = np.arange(n * c)[:, None]
    windows = indices.shape[2] * indices.shape[3]  # explicit: reshape(-1) of an empty batch is ambiguous
    np.add.at(gx, (rows, indices.reshape(n * c, windows)), gy.reshape(n * c, windows))
    return gx.reshape(n, c, h, w)
