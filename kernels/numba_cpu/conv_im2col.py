"""im2col convolution: Numba unfolds (and folds back), BLAS (numpy.matmul) multiplies.

BLAS runs on one thread (see threads.py): handing it the second core between Numba kernels
measured 4-20x slower on this 2-core machine, as the two thread pools fought over the cores.

The chunked driver (``kernels.im2col_driver``) is shared with the other backends; this module gives
it the two primitives, ``_im2col`` and ``_col2im``, and chunks that fit CACHE_BYTES.

Shapes: x (N, C, H, W), w (O, C, KH, KW), gy (N, O, OH, OW). Geometry args are (h, w) pairs.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from kernels import im2col_driver
from kernels.shapes import conv2d_out_hw


@njit(cache=True)
def _valid(n_out, n_in, k, s, p, d):
    """[lo, hi): the output positions whose tap at kernel offset k lands inside the input."""
    first = k * d - p  # input index = o * s + first
    lo = max(0, -(first // s)) if first < 0 else 0
    while lo < n_out and lo * s + first < 0:
        lo += 1
    hi = lo
    while hi < n_out and hi * s + first < n_in:
        hi += 1
    return lo, hi


@njit(parallel=True, cache=True)
def _im2col(x, n0, n1, kh_, kw_, sh, sw, ph, pw, dh, dw, oh_, ow_, cols):
    """Fill cols (C*KH*KW, (n1-n0)*OH*OW) from samples n0:n1 of x; padding reads as 0."""
    c_, h_, w_ = x.shape[1], x.shape[2], x.shape[3]
    zero = x.dtype.type(0)
    for r in prange(c_ * kh_ * kw_):
        c, kh, kw = r // (kh_ * kw_), (r // kw_) % kh_, r % kw_
        lo, hi = _valid(ow_, w_, kw, sw, pw, dw)  # the same columns are valid in every row
        first = kw * dw - pw
        row = cols[r]
        for n in range(n0, n1):
            for oh in range(oh_):
                base = ((n - n0) * oh_ + oh) * ow_
                ih = oh * sh - ph + kh * dh
                out = row[base: base + ow_]
                if ih < 0 or ih >= h_:
                    out[:] = zero
                    continue
                out[:lo] = zero
                out[hi:] = zero
                src = x[n, c, ih]
                if sw == 1:
                    out[lo:hi] = src[lo + first: hi + first]
                else:
                    for ow in range(lo, hi):
                        out[ow] = src[ow * sw + first]


@njit(parallel=True, cache=True)
def _col2im(cols, n0, n1, kh_, kw_, sh, sw, ph, pw, dh, dw, oh_, ow_, gx):
    """gx[n0:n1] = the sum of every column of cols (C*KH*KW, (n1-n0)*OH*OW) at its input position."""
    c_, h_, w_ = gx.shape[1], gx.shape[2], gx.shape[3]
    zero = gx.dtype.type(0)
    for task in prange((n1 - n0) * c_):  # one (sample, channel) plane per task: no write races
        n, c = n0 + task // c_, task % c_
        plane = gx[n, c]
        plane[:, :] = zero
        for kh in range(kh_):
            for kw in range(kw_):
                lo, hi = _valid(ow_, w_, kw, sw, pw, dw)
                first = kw * dw - pw
                row = cols[(c * kh_ + kh) * kw_ + kw]
                for oh in range(oh_):
                    ih = oh * sh - ph + kh * dh
                    if ih < 0 or ih >= h_:
                        continue
                    base = ((n - n0) * oh_ + oh) * ow_
                    dst = plane[ih]
                    if sw == 1:
                        dst[lo + first: hi + first] += row[base + lo: base + hi]
                    else:
                        for ow in range(lo, hi):
                            dst[ow * sw + first] += row[base + ow]


CACHE_BYTES = 4 << 20  # measured on LeNet's conv2: 4 MiB chunks beat both 1 MiB and one 16 MiB block


def _geometry(kernel_hw, stride, padding, dilation, out_hw):
    return (*kernel_hw, *stride, *padding, *dilation, *out_hw)


def conv2d_forward(x, w, b, stride, padding, dilation):
    """x (N, C, H, W), w (O, C, KH, KW), b (O,) or None -> (y (N, O, OH, OW), workspace bytes)."""
    out_hw = conv2d_out_hw(x.shape[2:], w.shape[2:], stride, padding, dilation)
    geometry = _geometry(w.shape[2:], stride, padding, dilation, out_hw)

    def unfold(n0, n1, cols):
        _im2col(x, n0, n1, *geometry, cols)

    return im2col_driver.forward(np, unfold, x.shape[0], w, b, out_hw, CACHE_BYTES)


def conv2d_backward_input(gy, w, input_hw, stride, padding, dilation):
    """gy (N, O, OH, OW), w (O, C, KH, KW) -> (gx (N, C, H, W), workspace bytes)."""
    geometry = _geometry(w.shape[2:], stride, padding, dilation, gy.shape[2:])
    gx = np.empty((gy.shape[0], w.shape[1]) + tuple(input_hw), gy.dtype)

    def fold(cols, n0, n1):
        _col2im(cols, n0, n1, *geometry, gx)

    return gx, im2col_driver.backward_input(np, fold, gy, w, CACHE_BYTES)


def conv2d_backward_weight(gy, x, kernel_hw, stride, padding, dilation):
    """gy (N, O, OH, OW), x (N, C, H, W) -> (gw (O, C, KH, KW), workspace bytes)."""
    geometry = _geometry(kernel_hw, stride, padding, dilation, gy.shape[2:])

    def unfold(n0, n1, cols):
        _im2col(x, n0, n1, *geometry, cols)

    return im2col_driver.backward_weight(np, unfold, gy, x.shape[1], kernel_hw, CACHE_BYTES)
