"""Direct convolution: tiled CUDA kernels with operands staged in shared memory; no unfolded matrix.

Forward and grad-input give each thread one pixel for ``DIRECT_CHANNEL_TILE`` channels; grad-weight
gives each thread one weight element and splits the (sample, row) reduction over a fixed number of
blocks, summed afterwards (deterministic). Operands that would not fit in shared memory (huge
kernels or dilations) are read from global memory instead.
"""

from __future__ import annotations

import cupy

from kernels.shapes import check_cuda_grid, check_index_range, conv2d_out_hw

from ._compile import INT32_LIMIT, ints, kernel, multiprocessor_count
from .sources import DIRECT_CHANNEL_TILE as CT

SMEM_BYTES = 40 * 1024  # under the 48 KiB a block may use without opting in
MAX_CHUNK = 16  # channels staged per shared-memory round


def _tile(out_h: int, out_w: int) -> tuple:
    """(TW, TH) of a block: up to 32 pixels wide, 256 threads."""
    tw = max(1, min(32, out_w))
    th = max(1, min(out_h, 256 // tw))
    return tw, th


def _staging(n_channels: int, per_channel_w: int, per_channel_x: int, itemsize: int) -> tuple:
    """(channels per round, stage weights?, stage the image tile?, shared bytes) within SMEM_BYTES."""
    budget = SMEM_BYTES // itemsize
    smem_w = per_channel_w <= budget
    smem_x = per_channel_w * smem_w + per_channel_x <= budget
    per_channel = per_channel_w * smem_w + per_channel_x * smem_x
    chunk = max(1, min(n_channels, MAX_CHUNK, budget // max(1, per_channel)))
    return chunk, smem_w, smem_x, chunk * per_channel * itemsize


def forward(x, w, b, stride, padding, dilation):
    """y (N, O, OH, OW) = conv2d(x (N, C, H, W), w (O, C, KH, KW)) + b (O,) or None."""
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    OH, OW = conv2d_out_hw((H, W), (KH, KW), stride, padding, dilation)
    what = "cupy conv2d forward (direct)"
    check_index_range(what, INT32_LIMIT, x=x.shape, y=(N, O, OH, OW))
    y = cupy.empty((N, O, OH, OW), x.dtype)
    if y.size == 0:
        return y
    tw, th = _tile(OH, OW)
    ih_t = (th - 1) * stride[0] + (KH - 1) * dilation[0] + 1
    iw_t = (tw - 1) * stride[1] + (KW - 1) * dilation[1] + 1
    cc, smem_w, smem_x, smem = _staging(C, CT * KH * KW, ih_t * iw_t, x.itemsize)
    tiles_h, tiles_w = -(-OH // th), -(-OW // tw)
    grid = (N * tiles_h * tiles_w, -(-O // CT))
    check_cuda_grid(what, grid, x=x.shape, w=w.shape)
    args = (x, w, w if b is None else b, y)
    args += ints(b is not None, C, H, W, O, KH, KW, OH, OW, *stride, *padding, *dilation)
    args += ints(tiles_h, tiles_w, cc, ih_t, iw_t, smem_w, smem_x)
    kernel("CONV_DIRECT", "conv2d_direct_forward", x.dtype)(grid, (tw, th), args, shared_mem=smem)
    return y


def backward_input(gy, w, input_hw, stride, padding, dilation):
    """gx (N, C, H, W) from gy (N, O, OH, OW) and w (O, C, KH, KW)."""
    N, O, OH, OW = gy.shape
    _, C, KH, KW = w.shape
    H, W = input_hw
    what = "cupy conv2d backward-input (direct)"
    check_index_range(what, INT32_LIMIT, gy=gy.shape, gx=(N, C, H, W))
    gx = cupy.empty((N, C, H, W), gy.dtype)
    if gx.size == 0:
        return gx
    if gy.size == 0:
        gx.fill(0)
        return gx
    tw, th = _tile(H, W)
    # gy rows a tile of th input rows reads: oh_start .. oh_start + GH_T - 1 (see the kernel).
    gh_t = (th - 1 + (KH - 1) * dilation[0] + stride[0] - 1) // stride[0] + 1
    gw_t = (tw - 1 + (KW - 1) * dilation[1] + stride[1] - 1) // stride[1] + 1
    oc, smem_w, smem_g, smem = _staging(O, CT * KH * KW, gh_t * gw_t, gy.itemsize)
    tiles_h, tiles_w = -(-H // th), -(-W // tw)
    grid = (N * tiles_h * tiles_w, -(-C // CT))
    check_cuda_grid(what, grid, gy=gy.shape, w=w.shape)
    args = (gy, w, gx) + ints(C, H, W, O, KH, KW, OH, OW, *stride, *padding, *dilation)
    args += ints(tiles_h, tiles_w, oc, gh_t, gw_t, smem_w, smem_g)
    kernel("CONV_DIRECT", "conv2d_direct_backward_input", gy.dtype)(grid, (tw, th), args, shared_mem=smem)
    return gx


def _weight_grad_staging(O, OW, KK, KH, KW, sw, dw, block, itemsize):
    """(P output columns per round, XW staged input columns, G_O staged channels, use smem, bytes)."""
    g_o = min(O, block // KK + 2)
    p = min(32, OW)
    while p >= 1:
        xw = (p - 1) * sw + (KW - 1) * dw + 1
        smem = (g_o * p + KH * xw) * itemsize
        if smem <= SMEM_BYTES:
            return p, xw, g_o, True, smem
        p //= 2
    return 32, 1, 0, False, 0


def backward_weight(gy, x, kernel_hw, stride, padding, dilation):
    """gw (O, C, KH, KW) from gy (N, O, OH, OW) and x (N, C, H, W)."""
    N, O, OH, OW = gy.shape
    _, C, H, W = x.shape
    KH, KW = kernel_hw
    KK = KH * KW
    what = "cupy conv2d backward-weight (direct)"
    check_index_range(what, INT32_LIMIT, gy=gy.shape, x=x.shape)
    if N * OH * OW == 0 or O * C * KK == 0:
        return cupy.zeros((O, C, KH, KW), gy.dtype)
    block = min(256, -(-O * KK // 32) * 32)
    blocks_e = -(-O * KK // block)
    # Enough blocks to fill the GPU; each split reduces a contiguous range of (sample, row) pairs.
    splits = max(1, min(N * OH, 65535, 8 * multiprocessor_count() // (blocks_e * C)))
    p, xw, g_o, use_smem, smem = _weight_grad_staging(O, OW, KK, KH, KW, stride[1], dilation[1], block, gy.itemsize)
    grid = (blocks_e, C, splits)  # one block row per input channel: C <= 65535 (else use im2col)
    check_cuda_grid(what, grid, gy=gy.shape, x=x.shape)
    partial = cupy.empty((splits, O, C, KH, KW), gy.dtype)
    args = (gy, x, partial) + ints(N, C, H, W, O, KH, KW, OH, OW, *stride, *padding, *dilation)
    args += ints(p, xw, g_o, use_smem)
    kern = kernel("CONV_DIRECT", "conv2d_direct_backward_weight", gy.dtype)
    kern(grid, (block,), args, shared_mem=smem)
    return partial[0] if splits == 1 else partial.sum(axis=0)
