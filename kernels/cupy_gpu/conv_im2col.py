"""Convolution as im2col + one cuBLAS GEMM per batch chunk: ``kernels.im2col_driver`` with CUDA C
primitives (sources.py's ``im2col`` and ``col2im``).

The primitives index with 32-bit ints: one chunk's column matrix (C*KH*KW, n*OH*OW) is capped
below that range (smaller chunks), and a convolution whose single sample already exceeds it is
refused, naming the shapes.
"""

from __future__ import annotations

import cupy

from kernels import im2col_driver
from kernels.shapes import check_index_range, column_chunk_bytes, conv2d_out_hw

from ._compile import INT32_LIMIT, ints, kernel, launch_1d


def _unfold(x, geometry):
    """unfold(n0, n1, cols) for the driver: cols (C*KH*KW, (n1-n0)*OH*OW) from x[n0:n1]."""
    _, C, H, W = x.shape

    def unfold(n0, n1, cols):
        launch_1d(kernel("IM2COL", "im2col", x.dtype), cols.size, (x[n0:n1], cols, *ints(n1 - n0, C, H, W), *geometry))

    return unfold


def _geometry(kernel_hw, out_hw, stride, padding, dilation) -> tuple:
    return ints(*kernel_hw, *out_hw, *stride, *padding, *dilation)


def forward(x, w, b, stride, padding, dilation):
    """y (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C, KH, KW)) + b (O,) or None."""
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    out_hw = conv2d_out_hw((H, W), (KH, KW), stride, padding, dilation)
    what = "cupy conv2d forward (im2col)"
    check_index_range(what, INT32_LIMIT, x=x.shape, y=(N, O, *out_hw))
    cap = column_chunk_bytes(what, INT32_LIMIT, C * KH * KW, out_hw, x.itemsize)
    unfold = _unfold(x, _geometry((KH, KW), out_hw, stride, padding, dilation))
    return im2col_driver.forward(cupy, unfold, N, w, b, out_hw, cap)[0]


def backward_input(gy, w, input_hw, stride, padding, dilation):
    """gx (N, C, H, W) from gy (N, O, OH, OW) and w (O, C, KH, KW)."""
    N, O, OH, OW = gy.shape
    _, C, KH, KW = w.shape
    what = "cupy conv2d backward-input (im2col)"
    check_index_range(what, INT32_LIMIT, gy=gy.shape, gx=(N, C, *input_hw))
    cap = column_chunk_bytes(what, INT32_LIMIT, C * KH * KW, (OH, OW), gy.itemsize)
    geometry = _geometry((KH, KW), (OH, OW), stride, padding, dilation)
    gx = cupy.empty((N, C, *input_hw), gy.dtype)

    def fold(cols, n0, n1):
        launch_1d(kernel("IM2COL", "col2im", gx.dtype), (n1 - n0) * C * input_hw[0] * input_hw[1],
                  (cols, gx[n0:n1], *ints(n1 - n0, C, *input_hw), *geometry))

    im2col_driver.backward_input(cupy, fold, gy, w, cap)
    return gx


def backward_weight(gy, x, kernel_hw, stride, padding, dilation):
    """gw (O, C, KH, KW) from gy (N, O, OH, OW) and x (N, C, H, W)."""
    C = x.shape[1]
    out_hw = gy.shape[2:]
    what = "cupy conv2d backward-weight (im2col)"
    check_index_range(what, INT32_LIMIT, gy=gy.shape, x=x.shape)
    cap = column_chunk_bytes(what, INT32_LIMIT, C * kernel_hw[0] * kernel_hw[1], out_hw, gy.itemsize)
    unfold = _unfold(x, _geometry(kernel_hw, out_hw, stride, padding, dilation))
    return im2col_driver.backward_weight(cupy, unfold, gy, C, kernel_hw, cap)[0]
