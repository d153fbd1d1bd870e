"""Max and average pooling: one thread per output (forward) or per input pixel (avg backward).

Max backward scatters through the saved indices with atomicAdd; avg backward gathers over the
windows containing each input pixel, so it needs no atomics and is deterministic.
"""

from __future__ import annotations

import cupy

from kernels.shapes import pool2d_out_hw

from ._compile import check_int32, ints, kernel, launch_1d


def max_pool2d_forward(x, kernel_hw, stride, padding, dilation, ceil_mode):
    """x (N, C, H, W) -> (y (N, C, OH, OW), indices int64 h*W+w of each window's first maximum)."""
    N, C, H, W = x.shape
    OH, OW = pool2d_out_hw((H, W), kernel_hw, stride, padding, dilation, ceil_mode)
    check_int32(x.size, N * C * OH * OW)
    y = cupy.empty((N, C, OH, OW), x.dtype)
    idx = cupy.empty((N, C, OH, OW), cupy.int64)
    args = (x, y, idx) + ints(y.size, H, W, OH, OW, *kernel_hw, *stride, *padding, *dilation)
    launch_1d(kernel("POOL", "max_pool2d_forward", x.dtype), y.size, args)
    return y, idx


def max_pool2d_backward(gy, indices, input_hw):
    """gx (N, C, H, W): each gy (N, C, OH, OW) value added at its window's maximum."""
    N, C, OH, OW = gy.shape
    H, W = input_hw
    check_int32(gy.size, N * C * H * W)
    gx = cupy.zeros((N, C, H, W), gy.dtype)
    args = (gy, indices, gx) + ints(gy.size, H * W, OH * OW)
    launch_1d(kernel("POOL", "max_pool2d_backward", gy.dtype), gy.size, args)
    return gx


def avg_pool2d_forward(x, kernel_hw, stride, padding, ceil_mode, count_include_pad):
    """x (N, C, H, W) -> y (N, C, OH, OW), window means (padding counts as zeros if count_include_pad)."""
    N, C, H, W = x.shape
    OH, OW = pool2d_out_hw((H, W), kernel_hw, stride, padding, (1, 1), ceil_mode)
    check_int32(x.size, N * C * OH * OW)
    y = cupy.empty((N, C, OH, OW), x.dtype)
    args = (x, y) + ints(y.size, H, W, OH, OW, *kernel_hw, *stride, *padding, count_include_pad)
    launch_1d(kernel("POOL", "avg_pool2d_forward", x.dtype), y.size, args)
    return y


def avg_pool2d_backward(gy, input_hw, kernel_hw, stride, padding, ceil_mode, count_include_pad):
    """gx (N, C, H, W) of avg_pool2d_forward from gy (N, C, OH, OW)."""
    N, C, OH, OW = gy.shape
    H, W = input_hw
    check_int32(gy.size, N * C * H * W)
    gx = cupy.empty((N, C, H, W), gy.dtype)
    args = (gy, gx) + ints(gx.size, H, W, OH, OW, *kernel_hw, *stride, *padding, count_include_pad)
    launch_1d(kernel("POOL", "avg_pool2d_backward", gy.dtype), gx.size, args)
    return gx
