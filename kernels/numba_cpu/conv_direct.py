"""Direct convolution: no unfolded buffer; the batch is the SIMD dimension.

Activations are first copied to a batch-innermost, zero-padded layout (C, Hp, Wp, N): every
(channel, row, column) position is one contiguous run of N values, and with stride 1 a whole row
of positions is one contiguous run of W*N values. Then:

* forward: each task computes one output row for 4 output channels as a weighted sum of input
  row runs, one per kernel tap (c, kh, kw), 8 taps per pass: each accumulator is loaded and
  stored once per 8 fused multiply-adds and every loaded input value feeds 4 of them; LLVM
  vectorises the run. It is processed in L1-sized pieces so the 4 accumulator rows stay in cache
  across all taps. Where ``conv_out_lanes`` applies (16 or more output channels, 5 or 3 wide,
  stride 1), :func:`forward` uses its kernel instead, which reads x as it is: the same bits.
* backward-input gathers, per input position, the output positions whose window covered it
  (runs of N). (With stride 1 the forward convolution of gy with the flipped kernel is another
  way: ``kernels.conv_flipped``, chosen by the caller.)
* backward-weight: 16 dot products (4 output channels x 4 taps) per pass over whole rows.

backward-weight reads the very copies of x and gy that forward and backward-input made, where
they made them: they return them (``Layouts``) and the caller passes them on; nothing is kept
between calls here. Without a copy of gy, each backward-weight task lays out its own rows.

Shapes: x (N, C, H, W), w (O, C, KH, KW), gy (N, O, OH, OW). Geometry args are (h, w) pairs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numba import njit, prange

from kernels.numba_cpu import conv_out_lanes
from kernels.shapes import conv2d_out_hw

# Fused multiply-add only (no reassociation) where results are written; dot products also
# reassociate so LLVM can keep vector partial sums (float32 1e-5 / float64 1e-10 hold).
_FMA = {"contract"}
_DOT = {"contract", "reassoc"}
BLOCK = 4  # output channels per pass; weight matrices are zero-padded to a multiple of it
PIECE = 1024  # elements of a row run per pass: 4 accumulator rows of it stay in L1
TASKS = 16  # backward-weight's parallel tasks at least (see weight_chunks)
# INTERLEAVED: tasks run block-fastest (task % nblocks), because prange hands each thread one
# contiguous range of tasks: block-slowest, one thread got all of a last, half-empty block's
# cheap tasks (gather2) and finished early.


@njit(parallel=True, cache=True)
def to_batch_inner(x, top, left, hp, wp, channels):
    """x (N, C, H, W) -> (channels, hp, wp, N): x[n, c, h, w] lands at [c, h + top, w + left, n];
    the rest is zero. A negative top/left, or hp/wp smaller than needed, crops."""
    n, c, h, w = x.shape
    # np.empty, not np.zeros: calloc hands out fresh pages whose first-touch faults cost more
    # than writing the zeros here (only the border and the extra channels).
    out = np.empty((channels, hp, wp, n), x.dtype)
    zero = x.dtype.type(0)
    xf, chw = x.reshape(-1), c * h * w
    j0, j1 = max(0, -left), max(0, min(w, wp - left))
    for row in prange(channels * hp):
        ci, r = row // hp, row % hp
        dst = out[ci, r]
        hi = r - top
        if ci >= c or hi < 0 or hi >= h or j1 <= j0:
            dst[:, :] = zero
            continue
        dst[: j0 + left, :] = zero
        dst[j1 + left:, :] = zero
        # one output run of N at a time, written whole. Batch-outer, which writes one value into
        # each of the row's runs in turn (1 KB apart at N = 256: a few L1 sets, probably why),
        # copied LeNet's conv1 gradient in 0.45-1.6 ms from run to run; this order in 0.5-0.8
        base = (ci * h + hi) * w
        for j in range(j0, j1):
            run, s = dst[j + left], base + j
            for i in range(n):
                run[i] = xf[s + i * chw]
    return out


def padded_rows(m: np.ndarray) -> np.ndarray:
    """m (R, K) with zero rows appended up to a multiple of BLOCK, C-contiguous."""
    rows = -(-m.shape[0] // BLOCK) * BLOCK
    out = np.zeros((rows, m.shape[1]), m.dtype)
    out[: m.shape[0]] = m
    return out


@njit(cache=True, fastmath=_FMA)
def _gather4(src, base, n, toff, nt, wmat, r0, a0, a1, a2, a3):
    """a_i[:n] += sum over taps t < nt of wmat[r0 + i, t] * src[base + toff[t]:][:n], i < 4.

    8 taps per pass (then 4, then 1): each accumulator is loaded and stored once per 8 fused
    multiply-adds, and each loaded input value feeds 4 of them.
    """
    t = 0
    while t + 8 <= nt:
        x0 = src[base + toff[t]: base + toff[t] + n]
        x1 = src[base + toff[t + 1]: base + toff[t + 1] + n]
        x2 = src[base + toff[t + 2]: base + toff[t + 2] + n]
        x3 = src[base + toff[t + 3]: base + toff[t + 3] + n]
        x4 = src[base + toff[t + 4]: base + toff[t + 4] + n]
        x5 = src[base + toff[t + 5]: base + toff[t + 5] + n]
        x6 = src[base + toff[t + 6]: base + toff[t + 6] + n]
        x7 = src[base + toff[t + 7]: base + toff[t + 7] + n]
        w0, w1, w2, w3 = wmat[r0, t: t + 8], wmat[r0 + 1, t: t + 8], wmat[r0 + 2, t: t + 8], wmat[r0 + 3, t: t + 8]
        w00, w01, w02, w03, w04, w05, w06, w07 = w0[0], w0[1], w0[2], w0[3], w0[4], w0[5], w0[6], w0[7]
        w10, w11, w12, w13, w14, w15, w16, w17 = w1[0], w1[1], w1[2], w1[3], w1[4], w1[5], w1[6], w1[7]
        w20, w21, w22, w23, w24, w25, w26, w27 = w2[0], w2[1], w2[2], w2[3], w2[4], w2[5], w2[6], w2[7]
        w30, w31, w32, w33, w34, w35, w36, w37 = w3[0], w3[1], w3[2], w3[3], w3[4], w3[5], w3[6], w3[7]
        for j in range(n):
            u0, u1, u2, u3, u4, u5, u6, u7 = x0[j], x1[j], x2[j], x3[j], x4[j], x5[j], x6[j], x7[j]
            # a chain from the accumulator, so each line is 8 fused multiply-adds
            a0[j] = ((((((((a0[j] + w00 * u0) + w01 * u1) + w02 * u2) + w03 * u3) + w04 * u4)
                      + w05 * u5) + w06 * u6) + w07 * u7)
            a1[j] = ((((((((a1[j] + w10 * u0) + w11 * u1) + w12 * u2) + w13 * u3) + w14 * u4)
                      + w15 * u5) + w16 * u6) + w17 * u7)
            a2[j] = ((((((((a2[j] + w20 * u0) + w21 * u1) + w22 * u2) + w23 * u3) + w24 * u4)
                      + w25 * u5) + w26 * u6) + w27 * u7)
            a3[j] = ((((((((a3[j] + w30 * u0) + w31 * u1) + w32 * u2) + w33 * u3) + w34 * u4)
                      + w35 * u5) + w36 * u6) + w37 * u7)
        t += 8
    if t + 4 <= nt:
        x0 = src[base + toff[t]: base + toff[t] + n]
        x1 = src[base + toff[t + 1]: base + toff[t + 1] + n]
        x2 = src[base + toff[t + 2]: base + toff[t + 2] + n]
        x3 = src[base + toff[t + 3]: base + toff[t + 3] + n]
        w00, w01, w02, w03 = wmat[r0, t], wmat[r0, t + 1], wmat[r0, t + 2], wmat[r0, t + 3]
        w10, w11, w12, w13 = wmat[r0 + 1, t], wmat[r0 + 1, t + 1], wmat[r0 + 1, t + 2], wmat[r0 + 1, t + 3]
        w20, w21, w22, w23 = wmat[r0 + 2, t], wmat[r0 + 2, t + 1], wmat[r0 + 2, t + 2], wmat[r0 + 2, t + 3]
        w30, w31, w32, w33 = wmat[r0 + 3, t], wmat[r0 + 3, t + 1], wmat[r0 + 3, t + 2], wmat[r0 + 3, t + 3]
        for j in range(n):
            u, v, p, q = x0[j], x1[j], x2[j], x3[j]
            a0[j] = (((a0[j] + w00 * u) + w01 * v) + w02 * p) + w03 * q
            a1[j] = (((a1[j] + w10 * u) + w11 * v) + w12 * p) + w13 * q
            a2[j] = (((a2[j] + w20 * u) + w21 * v) + w22 * p) + w23 * q
            a3[j] = (((a3[j] + w30 * u) + w31 * v) + w32 * p) + w33 * q
        t += 4
    while t < nt:
        x0 = src[base + toff[t]: base + toff[t] + n]
        w00, w10, w20, w30 = wmat[r0, t], wmat[r0 + 1, t], wmat[r0 + 2, t], wmat[r0 + 3, t]
        for j in range(n):
            u = x0[j]
            a0[j] += w00 * u
            a1[j] += w10 * u
            a2[j] += w20 * u
            a3[j] += w30 * u
        t += 1


@njit(cache=True, fastmath=_FMA)
def _gather2(src, base, n, toff, nt, wmat, r0, a0, a1):
    """:func:`_gather4` for 2 accumulators (a block whose other 2 rows are padding): the same taps
    in the same order per accumulator, so the same bits, at half the work."""
    t = 0
    while t + 8 <= nt:
        x0 = src[base + toff[t]: base + toff[t] + n]
        x1 = src[base + toff[t + 1]: base + toff[t + 1] + n]
        x2 = src[base + toff[t + 2]: base + toff[t + 2] + n]
        x3 = src[base + toff[t + 3]: base + toff[t + 3] + n]
        x4 = src[base + toff[t + 4]: base + toff[t + 4] + n]
        x5 = src[base + toff[t + 5]: base + toff[t + 5] + n]
        x6 = src[base + toff[t + 6]: base + toff[t + 6] + n]
        x7 = src[base + toff[t + 7]: base + toff[t + 7] + n]
        w0, w1 = wmat[r0, t: t + 8], wmat[r0 + 1, t: t + 8]
        w00, w01, w02, w03, w04, w05, w06, w07 = w0[0], w0[1], w0[2], w0[3], w0[4], w0[5], w0[6], w0[7]
        w10, w11, w12, w13, w14, w15, w16, w17 = w1[0], w1[1], w1[2], w1[3], w1[4], w1[5], w1[6], w1[7]
        for j in range(n):
            u0, u1, u2, u3, u4, u5, u6, u7 = x0[j], x1[j], x2[j], x3[j], x4[j], x5[j], x6[j], x7[j]
            a0[j] = ((((((((a0[j] + w00 * u0) + w01 * u1) + w02 * u2) + w03 * u3) + w04 * u4)
                      + w05 * u5) + w06 * u6) + w07 * u7)
            a1[j] = ((((((((a1[j] + w10 * u0) + w11 * u1) + w12 * u2) + w13 * u3) + w14 * u4)
                      + w15 * u5) + w16 * u6) + w17 * u7)
        t += 8
    if t + 4 <= nt:
        x0 = src[base + toff[t]: base + toff[t] + n]
        x1 = src[base + toff[t + 1]: base + toff[t + 1] + n]
        x2 = src[base + toff[t + 2]: base + toff[t + 2] + n]
        x3 = src[base + toff[t + 3]: base + toff[t + 3] + n]
        w00, w01, w02, w03 = wmat[r0, t], wmat[r0, t + 1], wmat[r0, t + 2], wmat[r0, t + 3]
        w10, w11, w12, w13 = wmat[r0 + 1, t], wmat[r0 + 1, t + 1], wmat[r0 + 1, t + 2], wmat[r0 + 1, t + 3]
        for j in range(n):
            u, v, p, q = x0[j], x1[j], x2[j], x3[j]
            a0[j] = (((a0[j] + w00 * u) + w01 * v) + w02 * p) + w03 * q
            a1[j] = (((a1[j] + w10 * u) + w11 * v) + w12 * p) + w13 * q
        t += 4
    while t < nt:
        x0 = src[base + toff[t]: base + toff[t] + n]
        w00, w10 = wmat[r0, t], wmat[r0 + 1, t]
        for j in range(n):
            u = x0[j]
            a0[j] += w00 * u
            a1[j] += w10 * u
        t += 1


@njit(cache=True)
def gather(src, base, n, toff, nt, wmat, r0, live, a0, a1, a2, a3):
    """:func:`_gather4`, or :func:`_gather2` when only ``live`` <= 2 of the block's rows are real
    (the rest pad the channel count to a multiple of 4: LeNet's 6 channels are 4 + 2)."""
    if live <= 2:
        _gather2(src, base, n, toff, nt, wmat, r0, a0, a1)
    else:
        _gather4(src, base, n, toff, nt, wmat, r0, a0, a1, a2, a3)


@njit(parallel=True, cache=True)
def _forward(xtp, wmat, bias, y, kh_, kw_, sh, sw, dh, dw):
    """xtp (C, Hp, Wp, N) padded so that every tap is inside, wmat (Op, C*KH*KW), bias (Op,)
    -> fills y (N, O, OH, OW)."""
    c_, hp, wp, n = xtp.shape
    o_, oh_, ow_ = y.shape[1], y.shape[2], y.shape[3]
    src = xtp.reshape(-1)
    ntaps = c_ * kh_ * kw_
    nblocks = wmat.shape[0] // BLOCK
    # with stride 1 along the width the row's positions are one run; else one run per position
    runs, m = (1, ow_ * n) if sw == 1 else (ow_, n)
    for task in prange(nblocks * oh_):
        r0, oh = (task % nblocks) * BLOCK, task // nblocks  # see INTERLEAVED
        toff = np.empty(ntaps, np.int64)
        for k in range(ntaps):
            c, kh, kw = k // (kh_ * kw_), (k // kw_) % kh_, k % kw_
            toff[k] = ((c * hp + oh * sh + kh * dh) * wp + kw * dw) * n
        tile = np.empty((BLOCK, ow_ * n), xtp.dtype)
        for i in range(BLOCK):
            tile[i, :] = bias[r0 + i]
        for r in range(runs):
            for j0 in range(0, m, PIECE):
                j1 = min(m, j0 + PIECE)
                t0, t1 = r * n + j0, r * n + j1
                gather(src, r * sw * n + j0, j1 - j0, toff, ntaps, wmat, r0, o_ - r0,
                         tile[0, t0:t1], tile[1, t0:t1], tile[2, t0:t1], tile[3, t0:t1])
        for i in range(min(BLOCK, o_ - r0)):
            row = tile[i]
            for b in range(n):
                for ow in range(ow_):
                    y[b, r0 + i, oh, ow] = row[ow * n + b]


@njit(cache=True)
def _covering_taps(ih, iw, oh_, ow_, n, o_, kh_, kw_, sh, sw, ph, pw, dh, dw, wmat, r0, toff, wsel):
    """Fills toff/wsel with the taps whose window covers input position (ih, iw): the offset of
    each covering output position's run of N in gyt, and the 4 channels' weights of that tap.
    Returns the tap count (taps between strided outputs or outside the output are skipped)."""
    nt = 0
    for o in range(o_):
        for kh in range(kh_):
            th = ih + ph - kh * dh  # = oh * sh for the output row this tap came from
            if th < 0 or th % sh != 0 or th // sh >= oh_:
                continue
            for kw in range(kw_):
                tw = iw + pw - kw * dw
                if tw < 0 or tw % sw != 0 or tw // sw >= ow_:
                    continue
                toff[nt] = ((o * oh_ + th // sh) * ow_ + tw // sw) * n
                for i in range(BLOCK):
                    wsel[i, nt] = wmat[r0 + i, (o * kh_ + kh) * kw_ + kw]
                nt += 1
    return nt


@njit(cache=True)
def _same_width_taps(iw, jw, ow_, pw, kw_, dw):
    """With width stride 1: whether input columns iw and jw are covered by the same kernel columns
    (then jw's taps are iw's, each shifted jw - iw output columns)."""
    for kw in range(kw_):
        if (0 <= iw + pw - kw * dw < ow_) != (0 <= jw + pw - kw * dw < ow_):
            return False
    return True


@njit(parallel=True, cache=True)
def backward_input_gather_into(gyt, wmat, gx, kh_, kw_, sh, sw, ph, pw, dh, dw):
    """gyt (Op, OH, OW, N), wmat (Cp, O*KH*KW) -> fills gx (N, C, H, W), for any geometry: each
    input position gathers the output positions whose window covered it.

    With width stride 1, a run of input columns covered by the same kernel columns (all the
    interior ones) reads consecutive output columns, one contiguous run of L*N values per tap:
    one gather over the whole run instead of L short ones (the same sums, in the same order)."""
    oh_, ow_, n = gyt.shape[1], gyt.shape[2], gyt.shape[3]
    o_ = wmat.shape[1] // (kh_ * kw_)  # gyt may hold extra zero channels past O
    c_, h_, w_ = gx.shape[1], gx.shape[2], gx.shape[3]
    src = gyt.reshape(-1)
    nblocks = wmat.shape[0] // BLOCK
    for task in prange(nblocks * h_):
        r0, ih = (task % nblocks) * BLOCK, task // nblocks  # see INTERLEAVED
        tile = np.zeros((BLOCK, w_ * n), gyt.dtype)
        toff = np.empty(o_ * kh_ * kw_, np.int64)
        wsel = np.empty((BLOCK, o_ * kh_ * kw_), gyt.dtype)
        iw = 0
        while iw < w_:
            run = 1
            if sw == 1:
                while iw + run < w_ and _same_width_taps(iw, iw + run, ow_, pw, kw_, dw):
                    run += 1
            nt = _covering_taps(ih, iw, oh_, ow_, n, o_, kh_, kw_, sh, sw, ph, pw, dh, dw, wmat, r0, toff, wsel)
            start, m = iw * n, run * n
            for j0 in range(0, m, PIECE):
                j1 = min(m, j0 + PIECE)
                t0, t1 = start + j0, start + j1
                gather(src, j0, j1 - j0, toff, nt, wsel, 0, c_ - r0, tile[0, t0:t1], tile[1, t0:t1],
                       tile[2, t0:t1], tile[3, t0:t1])
            iw += run
        for i in range(min(BLOCK, c_ - r0)):
            row = tile[i]
            for b in range(n):
                for iw in range(w_):
                    gx[b, r0 + i, ih, iw] = row[iw * n + b]


@njit(cache=True, fastmath=_DOT)
def _dot4x4(g0, g1, g2, g3, x0, x1, x2, x3, m, acc):
    """acc[i, t] += dot(g_i[:m], x_t[:m]) for i, t < 4: 16 dot products sharing 8 loads."""
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = acc.dtype.type(0)  # not a bare 0: float64
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = s00
    for j in range(m):
        a, b, c, d = g0[j], g1[j], g2[j], g3[j]
        u, v, p, q = x0[j], x1[j], x2[j], x3[j]
        s00 += a * u
        s01 += a * v
        s02 += a * p
        s03 += a * q
        s10 += b * u
        s11 += b * v
        s12 += b * p
        s13 += b * q
        s20 += c * u
        s21 += c * v
        s22 += c * p
        s23 += c * q
        s30 += d * u
        s31 += d * v
        s32 += d * p
        s33 += d * q
    acc[0, 0] += s00
    acc[0, 1] += s01
    acc[0, 2] += s02
    acc[0, 3] += s03
    acc[1, 0] += s10
    acc[1, 1] += s11
    acc[1, 2] += s12
    acc[1, 3] += s13
    acc[2, 0] += s20
    acc[2, 1] += s21
    acc[2, 2] += s22
    acc[2, 3] += s23
    acc[3, 0] += s30
    acc[3, 1] += s31
    acc[3, 2] += s32
    acc[3, 3] += s33


@njit(cache=True, fastmath=_DOT)
def _dot2x4(g0, g1, x0, x1, x2, x3, m, acc):
    """acc[i, t] += dot(g_i[:m], x_t[:m]) for i < 2, t < 4: the last block of 1 or 2 channels."""
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = acc.dtype.type(0)
    for j in range(m):
        a, b = g0[j], g1[j]
        u, v, p, q = x0[j], x1[j], x2[j], x3[j]
        s00 += a * u
        s01 += a * v
        s02 += a * p
        s03 += a * q
        s10 += b * u
        s11 += b * v
        s12 += b * p
        s13 += b * q
    acc[0, 0] += s00
    acc[0, 1] += s01
    acc[0, 2] += s02
    acc[0, 3] += s03
    acc[1, 0] += s10
    acc[1, 1] += s11
    acc[1, 2] += s12
    acc[1, 3] += s13


@njit(cache=True)
def tap_offsets(c_, kh_, kw_, hp, wp, dh, dw, n):
    """The offset of each tap (c, kh, kw) in a flat (C, Hp, Wp, N) input, for the output row and
    column 0; padded to a multiple of BLOCK by repeating the last tap (whose sums are dropped)."""
    ntaps = c_ * kh_ * kw_
    offset = np.empty(-(-ntaps // BLOCK) * BLOCK, np.int64)
    for t in range(offset.size):
        k = min(t, ntaps - 1)
        c, kh, kw = k // (kh_ * kw_), (k // kw_) % kh_, k % kw_
        offset[t] = ((c * hp + kh * dh) * wp + kw * dw) * n
    return offset


def weight_chunks(out_rows, w_shape, dtype):
    """Zeroed partial sums of backward-weight, (K, Op, taps padded) for w (O, C, KH, KW): output
    rows split into K chunks, enough for about TASKS tasks of 4 output channels each (chunks only
    make parallel work; each adds one partial sum); O and the taps padded to multiples of BLOCK."""
    o, c, kh, kw = w_shape
    blocks = -(-o // BLOCK)
    return np.zeros((min(out_rows, -(-TASKS // blocks)), blocks * BLOCK, -(-c * kh * kw // BLOCK) * BLOCK), dtype)


@njit(cache=True)
def weight_row_sums(g, r0, go, xf, offset, xo, m, live, acc):
    """acc[i, t] += dot(g[r0 + i, go:][:m], xf[offset[t] + xo:][:m]) for i < 4 and every tap t;
    acc (4, taps), 16 dot products sharing 8 loads per pass. With live <= 2, rows 2 and 3 are
    padding: only rows 0 and 1 are summed and the others are left alone."""
    g0, g1 = g[r0, go: go + m], g[r0 + 1, go: go + m]
    g2, g3 = g[r0 + 2, go: go + m], g[r0 + 3, go: go + m]
    for k0 in range(0, offset.size, BLOCK):
        o0, o1, o2, o3 = offset[k0] + xo, offset[k0 + 1] + xo, offset[k0 + 2] + xo, offset[k0 + 3] + xo
        block = acc[:, k0: k0 + BLOCK]
        if live <= 2:
            _dot2x4(g0, g1, xf[o0: o0 + m], xf[o1: o1 + m], xf[o2: o2 + m], xf[o3: o3 + m], m, block)
        else:
            _dot4x4(g0, g1, g2, g3, xf[o0: o0 + m], xf[o1: o1 + m], xf[o2: o2 + m], xf[o3: o3 + m], m,
                    block)


@njit(cache=True)
def sum_chunks_into(chunks, gw):
    """chunks (K, Op, taps padded) of partial sums -> gw (O, C, KH, KW), summed in chunk order."""
    o_, c_, kh_, kw_ = gw.shape
    for i in range(o_):
        for k in range(c_ * kh_ * kw_):
            total = chunks.dtype.type(0)
            for chunk in range(chunks.shape[0]):
                total += chunks[chunk, i, k]
            gw[i, k // (kh_ * kw_), (k // kw_) % kh_, k % kw_] = total


@njit(parallel=True, cache=True)
def _backward_weight_chunks(gyt, xtp, chunks, sh, sw, dh, dw, kh_, kw_, o_):
    """Fills chunks (K, Op, taps padded) with the sums of each chunk of output rows."""
    op, oh_, ow_, n = gyt.shape
    c_, hp, wp = xtp.shape[0], xtp.shape[1], xtp.shape[2]
    g = gyt.reshape(op, oh_ * ow_ * n)
    xf = xtp.reshape(-1)
    runs, m = (1, ow_ * n) if sw == 1 else (ow_, n)
    offset = tap_offsets(c_, kh_, kw_, hp, wp, dh, dw, n)
    nblocks, nchunks = op // BLOCK, chunks.shape[0]
    for task in prange(nchunks * nblocks):
        chunk, r0 = task // nblocks, (task % nblocks) * BLOCK
        for oh in range(chunk * oh_ // nchunks, (chunk + 1) * oh_ // nchunks):
            for r in range(runs):
                weight_row_sums(g, r0, (oh * ow_ + r) * n, xf, offset, (oh * sh * wp + r * sw) * n, m,
                                o_ - r0, chunks[chunk, r0: r0 + BLOCK])


@njit(cache=True)
def _gradient_row(gy, o, oh, row):
    """row (OW*N) = row oh of channel o of gy (N, O, OH, OW), batch innermost."""
    n, ow_ = gy.shape[0], gy.shape[3]
    for b in range(n):
        for ow in range(ow_):
            row[ow * n + b] = gy[b, o, oh, ow]


@njit(parallel=True, cache=True)
def _backward_weight_rows_chunks(gy, xtp, chunks, sh, sw, dh, dw, kh_, kw_):
    """:func:`_backward_weight_chunks` reading gy (N, O, OH, OW) as it is: each task lays its own
    rows out batch innermost (:func:`_gradient_row`) and uses them while in cache, the same values
    in the same order, so the same sums; no batch-innermost copy of gy is written."""
    n, o_, oh_, ow_ = gy.shape
    c_, hp, wp = xtp.shape[0], xtp.shape[1], xtp.shape[2]
    xf = xtp.reshape(-1)
    runs, m = (1, ow_ * n) if sw == 1 else (ow_, n)
    offset = tap_offsets(c_, kh_, kw_, hp, wp, dh, dw, n)
    nblocks, nchunks = chunks.shape[1] // BLOCK, chunks.shape[0]
    for task in prange(nchunks * nblocks):
        chunk, r0 = task // nblocks, (task % nblocks) * BLOCK
        live = min(BLOCK, o_ - r0)
        g = np.zeros((BLOCK, ow_ * n), gy.dtype)  # rows past O stay zero
        for oh in range(chunk * oh_ // nchunks, (chunk + 1) * oh_ // nchunks):
            for i in range(live):
                _gradient_row(gy, r0 + i, oh, g[i])
            for r in range(runs):
                weight_row_sums(g, 0, r * n, xf, offset, (oh * sh * wp + r * sw) * n, m, live,
                                chunks[chunk, r0: r0 + BLOCK])


def backward_weight_into(gyt, xtp, gw, sh, sw, dh, dw):
    """gyt (Op, OH, OW, N), Op a multiple of 4; xtp (C, Hp, Wp, N) the zero-padded input, so every
    tap lands inside it -> fills gw (O, C, KH, KW).

    gw[o, c, kh, kw] = sum over (oh, ow) of dot(gyt[o, oh, ow], xtp[c, oh*sh + kh*dh, ow*sw + kw*dw]).
    Each task takes 4 output channels and a chunk of output rows, and per row runs over all taps
    (c, kh, kw), 4 at a time, while that row's gradient and the input rows under it stay in cache
    (LeNet's conv1, tap-block-outer, streamed its 3 MB gradient once per 4 taps); with stride 1
    along the width a whole output row is one contiguous run of OW*N values in both layouts.
    """
    o, _, kh, kw = gw.shape
    chunks = weight_chunks(gyt.shape[1], gw.shape, gyt.dtype)
    _backward_weight_chunks(gyt, xtp, chunks, sh, sw, dh, dw, kh, kw, o)
    sum_chunks_into(chunks, gw)


@dataclass(frozen=True)
class Layouts:
    """The batch-innermost copies one convolution's kernels share; None where not made yet.

    x: the forward's padded copy of x (C, Hp, Wp, N), which backward-weight reads as is;
    gy: backward-input's copy of gy (Op, OH, OW, N), which backward-weight reads as is.
    """

    x: np.ndarray | None = None
    gy: np.ndarray | None = None


def padded_input(x, kernel_hw, padding, dilation, stride):
    """x (N, C, H, W) -> (C, Hp, Wp, N), padded just enough for every tap of every output
    (a negative padding crops)."""
    out_hw = conv2d_out_hw(x.shape[2:], kernel_hw, stride, padding, dilation)
    hp, wp = ((out_hw[i] - 1) * stride[i] + dilation[i] * (kernel_hw[i] - 1) + 1 for i in range(2))
    return to_batch_inner(x, padding[0], padding[1], hp, wp, x.shape[1])


def _batch_inner_gradient(gy):
    """gy (N, O, OH, OW) -> (Op, OH, OW, N), O zero-padded to a multiple of BLOCK."""
    return to_batch_inner(gy, 0, 0, gy.shape[2], gy.shape[3], -(-gy.shape[1] // BLOCK) * BLOCK)


def forward(x, w, b, stride, padding, dilation):
    """x (N, C, H, W), w (O, C, KH, KW), b (O,) or None
    -> (y (N, O, OH, OW), Layouts with x's copy if one was made, workspace bytes).

    Where ``conv_out_lanes`` applies (16 or more output channels, 5 or 3 wide, stride 1, ...) its kernel
    computes y from x as it is, with the same bits; backward-weight then makes the copy itself."""
    out_w = conv2d_out_hw(x.shape[2:], w.shape[2:], stride, padding, dilation)[1]
    if conv_out_lanes.applies(x.dtype, w.shape, stride, padding, dilation, out_w):
        y, workspace = conv_out_lanes.forward(x, w, b, padding)
        return y, Layouts(), workspace
    return batch_inner_forward(x, w, b, stride, padding, dilation)


def batch_inner_forward(x, w, b, stride, padding, dilation):
    """:func:`forward` by this module's own kernel, on the batch-innermost copy of x, which it
    returns in the Layouts."""
    o, c, kh, kw = w.shape
    xtp = padded_input(x, (kh, kw), padding, dilation, stride)
    oh, ow = conv2d_out_hw(x.shape[2:], (kh, kw), stride, padding, dilation)
    y = np.empty((x.shape[0], o, oh, ow), x.dtype)
    wmat = padded_rows(w.reshape(o, c * kh * kw))
    bias = np.zeros(wmat.shape[0], x.dtype)
    if b is not None:
        bias[:o] = b
    _forward(xtp, wmat, bias, y, kh, kw, *stride, *dilation)
    return y, Layouts(x=xtp), xtp.nbytes + wmat.nbytes


def backward_input(gy, w, input_hw, stride, padding, dilation, layouts):
    """gy (N, O, OH, OW), w (O, C, KH, KW), layouts from forward
    -> (gx (N, C, H, W), layouts plus gy's copy, workspace bytes).

    Gathers, per input position, the output positions whose window covered it (any geometry).
    """
    o, c, kh, kw = w.shape
    gx = np.empty((gy.shape[0], c) + tuple(input_hw), gy.dtype)
    gyt = _batch_inner_gradient(gy)
    wmat = padded_rows(np.ascontiguousarray(w.transpose(1, 0, 2, 3)).reshape(c, o * kh * kw))
    backward_input_gather_into(gyt, wmat, gx, kh, kw, *stride, *padding, *dilation)
    return gx, replace(layouts, gy=gyt), gyt.nbytes + wmat.nbytes


def backward_weight(gy, x, kernel_hw, stride, padding, dilation, layouts):
    """gy (N, O, OH, OW), x (N, C, H, W), layouts of this convolution (x's copy made here where None)
    -> (gw (O, C, KH, KW), workspace bytes). Without backward-input's copy of gy, gy is read as it
    is (:func:`_backward_weight_rows_chunks`); the sums are the same either way."""
    xtp = padded_input(x, kernel_hw, padding, dilation, stride) if layouts.x is None else layouts.x
    gw = np.empty((gy.shape[1], x.shape[1]) + tuple(kernel_hw), gy.dtype)
    if layouts.gy is not None:
        backward_weight_into(layouts.gy, xtp, gw, *stride, *dilation)
        return gw, layouts.gy.nbytes + xtp.nbytes
    chunks = weight_chunks(gy.shape[2], gw.shape, gy.dtype)
    _backward_weight_rows_chunks(gy, xtp, chunks, *stride, *dilation, *kernel_hw)
    sum_chunks_into(chunks, gw)
    return gw, chunks.nbytes + xtp.nbytes
