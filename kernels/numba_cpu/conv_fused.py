"""Fused convolution + bias + activation + 2x2 average pooling, forward and backward.

LeNet's blocks are conv (stride 1) -> sigmoid -> avg_pool2d(2). Unfused, each of the three writes
a full-size activation (4.8 MB per layer at batch 256, beyond the 1 MB L2) that the next reads
back, and backward makes three more passes plus a transposing copy of the gradient. Here:

* forward computes two output rows of 4 output channels (``conv_direct``'s loops, batch
  innermost), applies the activation while the rows are in cache, keeps them in the
  batch-innermost layout backward needs, and writes only the pooled rows to y;
* backward spreads the pooled gradient over each 2x2 window and multiplies by the activation's
  derivative in one pass that writes the batch-innermost gradient the direct backward-weight and
  backward-input kernels read as is, summing the bias gradient on the way; for a first layer
  (no gradient of x wanted) each row of it is made inside the weight-gradient kernel and used
  while in cache, never written out.

The arithmetic is the unfused kernels' own (the same accumulation order, the same inlined scalar
formulas of ``activation.py`` under the same fastmath flags, the pool's sum order), so y, the
gradient of x and the gradient of w equal the unfused path's; the bias gradient sums the same
values in another order. Only stride 1, dilation 1, no groups, and an even conv output.

Shapes: x (N, C, H, W), w (O, C, KH, KW), conv output (N, O, OH, OW), y / gy (N, O, OH/2, OW/2).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from kernels.numba_cpu import conv_direct
from kernels.numba_cpu.activation import _FAST, RELU, SIGMOID, TANH, activate, gradient, sigmoid_f32
from kernels.numba_cpu.conv_direct import BLOCK, PIECE, padded_rows

ACTIVATIONS = {"sigmoid": SIGMOID, "relu": RELU, "tanh": TANH}
NO_STRIDE = (1, 1)


# error_model="numpy" (as inside prange): Python's, which checks each division for a zero divisor,
# keeps LLVM from vectorising these loops (10x slower)
@njit(cache=True, fastmath=_FAST, error_model="numpy")
def _sigmoid_f32_row(row):
    for j in range(row.size):
        row[j] = sigmoid_f32(row[j])


@njit(cache=True, error_model="numpy")
def _activate_row(row, op):
    zero, one = row.dtype.type(0), row.dtype.type(1)
    for j in range(row.size):
        row[j] = activate(row[j], op, zero, one)


@njit(parallel=True, cache=True)
def _forward(xtp, wmat, bias, y, act, nxt, pad_h, pad_w, kh_, kw_, op, fast_sigmoid, keep, hand_on):
    """xtp (C, Hp, Wp, N) padded for every tap, wmat (Op, C*KH*KW), bias (Op,) -> fills
    y (N, O, OH/2, OW/2); if keep, act (O, OH, OW*N) = op(conv + bias), batch innermost; if hand_on,
    the interior of nxt (O, OH/2 + 2*pad_h, OW/2 + 2*pad_w, N) with y's values (the next fused conv's
    padded input; its border is the caller's)."""
    c_, hp, wp, n = xtp.shape
    o_, ph_, pw_ = y.shape[1], y.shape[2], y.shape[3]
    m = (wp - kw_ + 1) * n  # one output row: OW positions, batch innermost
    src = xtp.reshape(-1)
    ntaps = c_ * kh_ * kw_
    quarter = xtp.dtype.type(0.25)
    nblocks = wmat.shape[0] // BLOCK
    for task in prange(nblocks * ph_):
        r0, p = (task % nblocks) * BLOCK, task // nblocks  # see conv_direct.INTERLEAVED
        toff = np.empty(ntaps, np.int64)
        tile = np.empty((2, BLOCK, m), xtp.dtype)
        for half in range(2):
            oh = 2 * p + half
            for k in range(ntaps):
                c, kh, kw = k // (kh_ * kw_), (k // kw_) % kh_, k % kw_
                toff[k] = ((c * hp + oh + kh) * wp + kw) * n
            for i in range(BLOCK):
                tile[half, i, :] = bias[r0 + i]
            for j0 in range(0, m, PIECE):
                j1 = min(m, j0 + PIECE)
                conv_direct.gather(src, j0, j1 - j0, toff, ntaps, wmat, r0, o_ - r0, tile[half, 0, j0:j1],
                                     tile[half, 1, j0:j1], tile[half, 2, j0:j1], tile[half, 3, j0:j1])
            for i in range(min(BLOCK, o_ - r0)):
                if fast_sigmoid:
                    _sigmoid_f32_row(tile[half, i])
                else:
                    _activate_row(tile[half, i], op)
                if keep:
                    act[r0 + i, oh, :] = tile[half, i]
        for i in range(min(BLOCK, o_ - r0)):
            top, bottom = tile[0, i], tile[1, i]
            for q in range(pw_):
                j = 2 * q * n
                for b in range(n):  # the pool's own order: the top pair, then the bottom pair
                    v = (((top[j + b] + top[j + n + b]) + bottom[j + b]) + bottom[j + n + b]) * quarter
                    y[b, r0 + i, p, q] = v
                    if hand_on:
                        nxt[r0 + i, pad_h + p, pad_w + q, b] = v


@njit(cache=True, fastmath=_FAST)
def _pooled_row(gy, o, p, spread):
    """spread (PW, N) = pooled row p of channel o of gy (N, O, PH, PW), batch innermost, times 1/4."""
    quarter = gy.dtype.type(0.25)
    for b in range(gy.shape[0]):
        for q in range(gy.shape[3]):
            spread[q, b] = gy[b, o, p, q] * quarter


@njit(cache=True, fastmath=_FAST)
def _spread_row(spread, act_row, out, lane, op):
    """One row of the conv output's gradient: each value of spread (PW, N, from :func:`_pooled_row`)
    over its 2x2 window, times op's derivative at act_row (OW*N, batch innermost) -> out (OW*N);
    lane (N) = out summed over OW, per batch lane (for the bias gradient: the loop stays
    vectorised without reassociating)."""
    pw_, n = spread.shape
    zero, one = spread.dtype.type(0), spread.dtype.type(1)
    lane[:] = zero
    for ow in range(2 * pw_):
        s = spread[ow // 2]
        for b in range(n):
            v = gradient(s[b], act_row[ow * n + b], op, zero, one)
            out[ow * n + b] = v
            lane[b] += v


@njit(parallel=True, cache=True)
def _backward_spread(gy, act, gyt, gb_lanes, op):
    """gy (N, O, PH, PW), act (O, OH, OW*N) -> fills gyt (Op, OH, OW, N) with the conv output's
    gradient (:func:`_spread_row`); channels past O are zero. gb_lanes (O, OH, N)."""
    n, o_, ph_, pw_ = gy.shape
    rows = gyt.reshape(gyt.shape[0], 2 * ph_, -1)
    for task in prange(gyt.shape[0] * ph_):
        o, p = task // ph_, task % ph_
        if o >= o_:
            rows[o, 2 * p: 2 * p + 2] = gy.dtype.type(0)
            continue
        spread = np.empty((pw_, n), gy.dtype)
        _pooled_row(gy, o, p, spread)
        for oh in range(2 * p, 2 * p + 2):
            _spread_row(spread, act[o, oh], rows[o, oh], gb_lanes[o, oh], op)


@njit(parallel=True, cache=True)
def _spread_weight_chunks(gy, act, xtp, chunks, gb_lanes, op, kh_, kw_):
    """The weight gradient's partial sums (conv_direct.backward_weight_into's chunks) with each
    row of the conv output's gradient made on the fly (:func:`_spread_row`) and used while in
    cache: gyt is never written. gy (N, O, PH, PW), act (O, OH, OW*N), xtp (C, Hp, Wp, N) ->
    fills chunks (K, Op, taps padded) and gb_lanes (O, OH, N)."""
    n, o_, ph_, pw_ = gy.shape
    oh_, m = 2 * ph_, 2 * pw_ * n
    c_, hp, wp = xtp.shape[0], xtp.shape[1], xtp.shape[2]
    xf = xtp.reshape(-1)
    offset = conv_direct.tap_offsets(c_, kh_, kw_, hp, wp, 1, 1, n)
    nblocks, nchunks = chunks.shape[1] // BLOCK, chunks.shape[0]
    for task in prange(nchunks * nblocks):
        chunk, r0 = task // nblocks, (task % nblocks) * BLOCK
        live = min(BLOCK, o_ - r0)
        g = np.zeros((BLOCK, m), gy.dtype)  # rows past O stay zero
        spread = np.empty((BLOCK, pw_, n), gy.dtype)  # each channel's pooled row, for 2 rows
        for oh in range(chunk * oh_ // nchunks, (chunk + 1) * oh_ // nchunks):
            for i in range(live):
                if oh % 2 == 0 or oh == chunk * oh_ // nchunks:
                    _pooled_row(gy, r0 + i, oh // 2, spread[i])
                _spread_row(spread[i], act[r0 + i, oh], g[i], gb_lanes[r0 + i, oh], op)
            conv_direct.weight_row_sums(g, 0, 0, xf, offset, oh * wp * n, m, live, chunks[chunk, r0: r0 + BLOCK])


@dataclass(frozen=True)
class Saved:
    """What forward keeps for backward: the padded batch-innermost x (C, Hp, Wp, N) and the
    activation (O, OH, OW*N), batch innermost."""

    x: np.ndarray
    act: np.ndarray


def fused_conv_act_pool_forward(x, w, b, padding, activation, keep, x_layout=None, next_padding=None):
    """avg_pool2d(act(conv2d(x, w, b, stride 1, padding)), 2): x (N, C, H, W), w (O, C, KH, KW),
    b (O,) or None, activation 'sigmoid' | 'relu' | 'tanh'
    -> (y (N, O, OH/2, OW/2), Saved or None when not keep, next layout or None).

    ``x_layout``: x already in this conv's padded batch-innermost layout, as a previous call's next
    layout (else it is made from x). ``next_padding`` (ph, pw): also return y in that layout for a
    next fused conv with that padding, (O, OH/2 + 2ph, OW/2 + 2pw, N), saving that conv the copy.
    """
    o, c, kh, kw = w.shape
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    xtp = x_layout if x_layout is not None else conv_direct.padded_input(x, (kh, kw), padding, NO_STRIDE,
                                                                          NO_STRIDE)
    oh, ow = xtp.shape[1] - kh + 1, xtp.shape[2] - kw + 1
    n = x.shape[0]
    y = np.empty((n, o, oh // 2, ow // 2), x.dtype)
    act = np.empty((o, oh, ow * n) if keep else (1, 1, 1), x.dtype)
    wmat = padded_rows(w.reshape(o, c * kh * kw))
    bias = np.zeros(wmat.shape[0], x.dtype)
    if b is not None:
        bias[:o] = b
    op = ACTIVATIONS[activation]
    ph, pw = (0, 0) if next_padding is None else next_padding
    shape = (o, oh // 2 + 2 * ph, ow // 2 + 2 * pw, n) if next_padding is not None else (1, 1, 1, 1)
    nxt = np.zeros(shape, x.dtype) if ph or pw else np.empty(shape, x.dtype)  # the border is zero padding
    _forward(xtp, wmat, bias, y, act, nxt, ph, pw, kh, kw, op, op == SIGMOID and x.dtype == np.float32, keep,
             next_padding is not None)
    return y, (Saved(xtp, act) if keep else None), (nxt if next_padding is not None else None)


def fused_conv_act_pool_backward(gy, w, saved, input_hw, padding, activation, needs):
    """gy (N, O, OH/2, OW/2), w (O, C, KH, KW), saved from forward, needs (gx?, gw?, gb?)
    -> (gx (N, C, H, W), gw (O, C, KH, KW), gb (O,)), None where not needed."""
    o, c, kh, kw = w.shape
    n = gy.shape[0]
    oh, ow = 2 * gy.shape[2], 2 * gy.shape[3]
    gy, op = np.ascontiguousarray(gy), ACTIVATIONS[activation]
    channels = -(-o // BLOCK) * BLOCK
    gb_lanes = np.empty((o, oh, n), gy.dtype)
    gx = gw = None
    if needs[0]:
        gyt = np.empty((channels, oh, ow, n), gy.dtype)
        _backward_spread(gy, saved.act, gyt, gb_lanes, op)
        gx = np.empty((n, c) + tuple(input_hw), gy.dtype)
        wmat = padded_rows(np.ascontiguousarray(w.transpose(1, 0, 2, 3)).reshape(c, o * kh * kw))
        conv_direct.backward_input_gather_into(gyt, wmat, gx, kh, kw, 1, 1, *padding, 1, 1)
        if needs[1]:
            gw = np.empty((o, c, kh, kw), gy.dtype)
            conv_direct.backward_weight_into(gyt, saved.x, gw, 1, 1, 1, 1)
    elif needs[1]:  # a first layer, whose input needs no gradient: gyt is never written
        gw = np.empty((o, c, kh, kw), gy.dtype)
        chunks = conv_direct.weight_chunks(oh, w.shape, gy.dtype)
        _spread_weight_chunks(gy, saved.act, saved.x, chunks, gb_lanes, op, kh, kw)
        conv_direct.sum_chunks_into(chunks, gw)
    elif needs[2]:
        _backward_spread(gy, saved.act, np.empty((channels, oh, ow, n), gy.dtype), gb_lanes, op)
    return gx, gw, (gb_lanes.sum(axis=(1, 2)) if needs[2] else None)
