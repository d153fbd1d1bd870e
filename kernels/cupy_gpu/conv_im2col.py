"""Convolution as im2col + one cuBLAS GEMM per batch chunk (chunks sized by kernels.workspace).

For a chunk of n samples, ``col`` is (C*KH*KW, n*OH*OW); with ``w2 = w.reshape(O, C*KH*KW)``:
forward ``w2 @ col``, grad-input ``col2im(w2.T @ gy)``, grad-weight ``sum(gy @ col.T)``.
"""

from __future__ import annotations

import cupy

from kernels.shapes import conv2d_out_hw
from kernels.workspace import batch_chunk

from ._compile import check_int32, ints, kernel, launch_1d


def _geometry(kernel_hw, out_hw, stride, padding, dilation) -> tuple:
    return ints(*kernel_hw, *out_hw, *stride, *padding, *dilation)


def _im2col(x, kernel_hw, out_hw, geometry):
    """x (n, C, H, W) -> col (C*KH*KW, n*OH*OW)."""
    n, C, H, W = x.shape
    rows, cols = C * kernel_hw[0] * kernel_hw[1], n * out_hw[0] * out_hw[1]
    check_int32(rows * cols)
    col = cupy.empty((rows, cols), x.dtype)
    launch_1d(kernel("IM2COL", "im2col", x.dtype), col.size, (x, col, *ints(n, C, H, W), *geometry))
    return col


def _col2im(col, gx, geometry):
    """Write into gx (n, C, H, W) the sum of the columns of col (C*KH*KW, n*OH*OW) reading each pixel."""
    n, C, H, W = gx.shape
    launch_1d(kernel("IM2COL", "col2im", gx.dtype), gx.size, (col, gx, *ints(n, C, H, W), *geometry))


def _chunk(n: int, k: int, out_hw, itemsize: int) -> int:
    return batch_chunk(n, k * out_hw[0] * out_hw[1] * itemsize)


def _gy_rows(gy_chunk):
    """gy (n, O, OH, OW) -> (O, n*OH*OW), the column order of col."""
    n, O = gy_chunk.shape[:2]
    return cupy.ascontiguousarray(gy_chunk.reshape(n, O, -1).transpose(1, 0, 2)).reshape(O, -1)


def forward(x, w, b, stride, padding, dilation):
    """y (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C, KH, KW)) + b (O,) or None."""
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    out_hw = conv2d_out_hw((H, W), (KH, KW), stride, padding, dilation)
    geometry = _geometry((KH, KW), out_hw, stride, padding, dilation)
    check_int32(x.size, N * O * out_hw[0] * out_hw[1])
    y = cupy.empty((N, O, *out_hw), x.dtype)
    w2 = w.reshape(O, C * KH * KW)
    step = _chunk(N, C * KH * KW, out_hw, x.itemsize)
    for n0 in range(0, N, step):
        n = min(step, N - n0)
        prod = cupy.matmul(w2, _im2col(x[n0 : n0 + n], (KH, KW), out_hw, geometry))
        prod = prod.reshape(O, n, -1).transpose(1, 0, 2)  # (n, O, OH*OW)
        out = y[n0 : n0 + n].reshape(n, O, -1)
        if b is None:
            out[...] = prod
        else:
            cupy.add(prod, b.reshape(O, 1), out=out)
    return y


def backward_input(gy, w, input_hw, stride, padding, dilation):
    """gx (N, C, H, W) from gy (N, O, OH, OW) and w (O, C, KH, KW)."""
    N, O = gy.shape[:2]
    _, C, KH, KW = w.shape
    out_hw = gy.shape[2:]
    geometry = _geometry((KH, KW), out_hw, stride, padding, dilation)
    check_int32(gy.size, N * C * input_hw[0] * input_hw[1])
    gx = cupy.empty((N, C, *input_hw), gy.dtype)
    w2t = w.reshape(O, C * KH * KW).T
    step = _chunk(N, C * KH * KW, out_hw, gy.itemsize)
    for n0 in range(0, N, step):
        n = min(step, N - n0)
        gcol = cupy.matmul(w2t, _gy_rows(gy[n0 : n0 + n]))  # (C*KH*KW, n*OH*OW)
        _col2im(gcol, gx[n0 : n0 + n], geometry)
    return gx


def backward_weight(gy, x, kernel_hw, stride, padding, dilation):
    """gw (O, C, KH, KW) from gy (N, O, OH, OW) and x (N, C, H, W)."""
    N, O = gy.shape[:2]
    C = x.shape[1]
    KH, KW = kernel_hw
    out_hw = gy.shape[2:]
    geometry = _geometry((KH, KW), out_hw, stride, padding, dilation)
    check_int32(gy.size, x.size)
    gw = cupy.zeros((O, C * KH * KW), gy.dtype)
    step = _chunk(N, C * KH * KW, out_hw, gy.itemsize)
    for n0 in range(0, N, step):
        n = min(step, N - n0)
        col = _im2col(x[n0 : n0 + n], (KH, KW), out_hw, geometry)
        gw += cupy.matmul(_gy_rows(gy[n0 : n0 + n]), col.T)
    return gw.reshape(O, C, KH, KW)
