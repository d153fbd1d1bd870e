"""Direct convolution forward with 16 output channels as the SIMD lanes, reading x as it is (NCHW).

For one image, one output row and 10 consecutive output columns, the 10 x 16 sums of a block of
16 output channels (one AVX-512 register of float32 per column) stay in registers over every
tap: per input row (c, kh) the kernel loads the row's 10 + KW - 1 inputs once, broadcasts each,
and does 10 * KW fused multiply-adds with the row's KW weight vectors (KW 5 or 3). It needs no
batch-innermost copy of x, and y is written once. (torch's oneDNN kernel for LeNet's conv2 also
reads NCHW and blocks 16 output channels, as ``ONEDNN_VERBOSE=1`` shows.) Measured, 2 threads:
LeNet's conv2 forward at batch 256 in 0.37 ms against 0.66 ms for ``conv_direct``'s kernel and
its copy of x; 64 -> 64 channels, 3x3, 32x32, batch 64, in 18-21 ms against 24-25 ms (of which
the single-threaded zero padding of x here takes 1.3 ms).

Each sum starts at the bias and adds w * x tap by tap in ``conv_direct``'s order ((c, kh, kw),
kw fastest, one rounding per fused multiply-add), so y has the same bits as ``conv_direct``'s
kernel. :func:`applies` says when this kernel is used: float32, stride and dilation 1, a 5- or
3-wide kernel (sharing the inputs across kw needs KW known when compiling; with a run-time kw
loop the kernel was slower than ``conv_direct``'s), an output at least 10 columns wide, and at
least 16 output channels (fewer leave lanes idle: LeNet's conv1 has 6).

Shapes: x (N, C, H, W) already padded, wt (C*KH*KW, Op) with Op a multiple of 16, y (N, O, OH, OW).
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 16  # output channels per block: one 512-bit register of float32
COLS = 10  # output columns per block: 10 sums, 14 inputs and the weights in AVX-512's 32 registers
_FMA = {"contract"}  # fused multiply-add, no reassociation: conv_direct's rounding


@intrinsic(prefer_literal=True)
def _stack_float32(typingctx, count):
    """A pointer to ``count`` (a compile-time constant) float32 values on the stack. LLVM keeps
    such an array in registers when every index into it is a constant, which a heap array (whose
    stores might alias the inputs) never is."""
    if not isinstance(count, types.IntegerLiteral):
        return None

    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once(builder, ir.ArrayType(ir.FloatType(), count.literal_value))
        return builder.bitcast(slot, ir.PointerType(ir.FloatType()))

    return types.CPointer(types.float32)(count), codegen


@njit(cache=True, fastmath=_FMA)
def _block(xf, row0, row_offsets, kw_, wt, o0, bias, yf, y0, plane, live):
    """The 10 x 16 outputs of a kw_-wide kernel (5 or 3) whose first input row starts at xf[row0]
    and whose first output is yf[y0] (channel o at yf[y0 + o * plane]); the first ``live``
    channels are stored. Per input row: 10 + kw_ - 1 inputs loaded and broadcast once, kw_ weight
    vectors, 10 * kw_ multiply-adds.

    Written out as LLVM keeps it in registers: ten stack rows, every row and slice made inside
    the loop that uses it, one loop per width with no branch inside (measured 1.5-10x slower: one
    2-D stack array, which it vectorised across columns; a helper per kw, whose array arguments
    cost a reference count each call; a run-time kw loop; the 3-wide case as a branch inside the
    5-wide loop, which kept the counts too)."""
    a0 = numba.carray(_stack_float32(LANES), (LANES,))
    a1 = numba.carray(_stack_float32(LANES), (LANES,))
    a2 = numba.carray(_stack_float32(LANES), (LANES,))
    a3 = numba.carray(_stack_float32(LANES), (LANES,))
    a4 = numba.carray(_stack_float32(LANES), (LANES,))
    a5 = numba.carray(_stack_float32(LANES), (LANES,))
    a6 = numba.carray(_stack_float32(LANES), (LANES,))
    a7 = numba.carray(_stack_float32(LANES), (LANES,))
    a8 = numba.carray(_stack_float32(LANES), (LANES,))
    a9 = numba.carray(_stack_float32(LANES), (LANES,))
    for o in range(LANES):
        b = bias[o0 + o]
        a0[o] = b
        a1[o] = b
        a2[o] = b
        a3[o] = b
        a4[o] = b
        a5[o] = b
        a6[o] = b
        a7[o] = b
        a8[o] = b
        a9[o] = b
    if kw_ == 5:
        for r in range(row_offsets.size):
            t = 5 * r
            w0, w1, w2 = wt[t, o0: o0 + LANES], wt[t + 1, o0: o0 + LANES], wt[t + 2, o0: o0 + LANES]
            w3, w4 = wt[t + 3, o0: o0 + LANES], wt[t + 4, o0: o0 + LANES]
            xs = xf[row0 + row_offsets[r]: row0 + row_offsets[r] + COLS + 4]
            u0, u1, u2, u3, u4, u5, u6 = xs[0], xs[1], xs[2], xs[3], xs[4], xs[5], xs[6]
            u7, u8, u9, u10, u11, u12, u13 = xs[7], xs[8], xs[9], xs[10], xs[11], xs[12], xs[13]
            for o in range(LANES):
                v0, v1, v2, v3, v4 = w0[o], w1[o], w2[o], w3[o], w4[o]
                a0[o] = ((((a0[o] + u0 * v0) + u1 * v1) + u2 * v2) + u3 * v3) + u4 * v4
                a1[o] = ((((a1[o] + u1 * v0) + u2 * v1) + u3 * v2) + u4 * v3) + u5 * v4
                a2[o] = ((((a2[o] + u2 * v0) + u3 * v1) + u4 * v2) + u5 * v3) + u6 * v4
                a3[o] = ((((a3[o] + u3 * v0) + u4 * v1) + u5 * v2) + u6 * v3) + u7 * v4
                a4[o] = ((((a4[o] + u4 * v0) + u5 * v1) + u6 * v2) + u7 * v3) + u8 * v4
                a5[o] = ((((a5[o] + u5 * v0) + u6 * v1) + u7 * v2) + u8 * v3) + u9 * v4
                a6[o] = ((((a6[o] + u6 * v0) + u7 * v1) + u8 * v2) + u9 * v3) + u10 * v4
                a7[o] = ((((a7[o] + u7 * v0) + u8 * v1) + u9 * v2) + u10 * v3) + u11 * v4
                a8[o] = ((((a8[o] + u8 * v0) + u9 * v1) + u10 * v2) + u11 * v3) + u12 * v4
                a9[o] = ((((a9[o] + u9 * v0) + u10 * v1) + u11 * v2) + u12 * v3) + u13 * v4
    else:
        for r in range(row_offsets.size):
            t = 3 * r
            w0, w1, w2 = wt[t, o0: o0 + LANES], wt[t + 1, o0: o0 + LANES], wt[t + 2, o0: o0 + LANES]
            xs = xf[row0 + row_offsets[r]: row0 + row_offsets[r] + COLS + 2]
            u0, u1, u2, u3, u4, u5 = xs[0], xs[1], xs[2], xs[3], xs[4], xs[5]
            u6, u7, u8, u9, u10, u11 = xs[6], xs[7], xs[8], xs[9], xs[10], xs[11]
            for o in range(LANES):
                v0, v1, v2 = w0[o], w1[o], w2[o]
                a0[o] = ((a0[o] + u0 * v0) + u1 * v1) + u2 * v2
                a1[o] = ((a1[o] + u1 * v0) + u2 * v1) + u3 * v2
                a2[o] = ((a2[o] + u2 * v0) + u3 * v1) + u4 * v2
                a3[o] = ((a3[o] + u3 * v0) + u4 * v1) + u5 * v2
                a4[o] = ((a4[o] + u4 * v0) + u5 * v1) + u6 * v2
                a5[o] = ((a5[o] + u5 * v0) + u6 * v1) + u7 * v2
                a6[o] = ((a6[o] + u6 * v0) + u7 * v1) + u8 * v2
                a7[o] = ((a7[o] + u7 * v0) + u8 * v1) + u9 * v2
                a8[o] = ((a8[o] + u8 * v0) + u9 * v1) + u10 * v2
                a9[o] = ((a9[o] + u9 * v0) + u10 * v1) + u11 * v2
    for o in range(live):
        p = y0 + o * plane
        yf[p] = a0[o]
        yf[p + 1] = a1[o]
        yf[p + 2] = a2[o]
        yf[p + 3] = a3[o]
        yf[p + 4] = a4[o]
        yf[p + 5] = a5[o]
        yf[p + 6] = a6[o]
        yf[p + 7] = a7[o]
        yf[p + 8] = a8[o]
        yf[p + 9] = a9[o]


@njit(parallel=True, cache=True)
def _forward(x, wt, bias, y, kh_, kw_):
    """x (N, C, H, W) padded, wt (C*KH*KW, Op), bias (Op,) -> fills y (N, O, OH, OW), stride 1."""
    n, c_, h, w = x.shape
    o_, oh_, ow_ = y.shape[1], y.shape[2], y.shape[3]
    xf, yf = x.reshape(-1), y.reshape(-1)
    plane = oh_ * ow_
    row_offsets = np.empty(c_ * kh_, np.int64)  # of input row (c, kh) from row (0, 0)
    for r in range(c_ * kh_):
        row_offsets[r] = ((r // kh_) * h + r % kh_) * w
    for task in prange(n * oh_):
        b, oh = task // oh_, task % oh_
        for o0 in range(0, o_, LANES):
            live = min(LANES, o_ - o0)
            for block in range(0, ow_, COLS):
                ow0 = min(block, ow_ - COLS)  # the last block overlaps the one before: same values again
                _block(xf, (b * c_ * h + oh) * w + ow0, row_offsets, kw_, wt, o0, bias, yf,
                       ((b * o_ + o0) * oh_ + oh) * ow_ + ow0, plane, live)


def applies(x_dtype, w_shape, stride, padding, dilation, out_w) -> bool:
    """Whether :func:`forward` computes this convolution (see the module docstring)."""
    return (x_dtype == np.float32 and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)
            and min(padding) >= 0 and w_shape[3] in (3, 5) and out_w >= COLS and w_shape[0] >= LANES)


def forward(x, w, b, padding):
    """x (N, C, H, W) float32 C-contiguous, w (O, C, KH, 5 or 3), b (O,) or None, stride 1, padding
    (ph, pw) >= 0 -> (y (N, O, OH, OW), workspace bytes: the padded copy of x and the weights)."""
    o, c, kh, kw = w.shape
    ph, pw = padding
    if ph or pw:
        xp = np.zeros(x.shape[:2] + (x.shape[2] + 2 * ph, x.shape[3] + 2 * pw), x.dtype)
        xp[:, :, ph: ph + x.shape[2], pw: pw + x.shape[3]] = x
        x = xp
    op = -(-o // LANES) * LANES
    wt = np.zeros((c * kh * kw, op), x.dtype)
    wt[:, :o] = w.reshape(o, -1).T
    bias = np.zeros(op, x.dtype)
    if b is not None:
        bias[:o] = b
    y = np.empty((x.shape[0], o, x.shape[2] - kh + 1, x.shape[3] - kw + 1), x.dtype)
    _forward(x, wt, bias, y, kh, kw)
    return y, (x.nbytes if ph or pw else 0) + wt.nbytes
