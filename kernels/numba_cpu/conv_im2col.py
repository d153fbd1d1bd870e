"""im2col convolution: Numba unfolds (and folds back), BLAS (numpy.matmul) multiplies.

BLAS runs on one thread (see threads.py): handing it the second core between Numba kernels
measured 4-20x slower on this 2-core machine, as the two thread pools fought over the cores.

The batch is processed in chunks of ``kernels.workspace.batch_chunk`` samples so that one chunk's
unfolded matrix cols (C*KH*KW, n*OH*OW) stays within the workspace budget:

* forward:         y   = w (O, C*KH*KW) @ cols          -> (O, n*OH*OW), then to (n, O, OH, OW)
* backward-input:  cols = w.T @ gy (O, n*OH*OW), then col2im adds each column back into gx
* backward-weight: gw  += gy (O, n*OH*OW) @ cols.T

Shapes: x (N, C, H, W), w (O, C, KH, KW), gy (N, O, OH, OW). Geometry args are (h, w) pairs.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from kernels import workspace


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


def _chunk(n, bytes_per_sample):
    """Samples per chunk: within the workspace budget, and small enough (CACHE_BYTES) that the
    unfolded chunk is still in cache when BLAS reads it."""
    return min(workspace.batch_chunk(n, bytes_per_sample), max(1, CACHE_BYTES // bytes_per_sample))


def _view(buffer, rows, cols):
    """The first rows*cols elements of a flat buffer as a C-contiguous (rows, cols) matrix."""
    return buffer[: rows * cols].reshape(rows, cols)


def _geometry(kernel_hw, stride, padding, dilation):
    return (*kernel_hw, *stride, *padding, *dilation)


def conv2d_forward(x, w, b, stride, padding, dilation):
    """x (N, C, H, W), w (O, C, KH, KW), b (O,) or None -> (y (N, O, OH, OW), workspace bytes)."""
    from kernels.shapes import conv2d_out_hw

    n, o = x.shape[0], w.shape[0]
    oh, ow = conv2d_out_hw(x.shape[2:], w.shape[2:], stride, padding, dilation)
    k = w[0].size
    wmat = w.reshape(o, k)
    y = np.empty((n, o, oh, ow), x.dtype)
    chunk = _chunk(n, k * oh * ow * x.itemsize)
    cols = np.empty(k * chunk * oh * ow, x.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        part = _view(cols, k, (n1 - n0) * oh * ow)
        _im2col(x, n0, n1, *_geometry(w.shape[2:], stride, padding, dilation), oh, ow, part)
        out = (wmat @ part).reshape(o, n1 - n0, oh * ow)
        y[n0:n1].reshape(n1 - n0, o, oh * ow)[...] = out.transpose(1, 0, 2)
    if b is not None:
        y += b.reshape(1, o, 1, 1)
    return y, cols.nbytes + o * chunk * oh * ow * x.itemsize


def _gradient_rows(gy, n0, n1, buffer):
    """gy[n0:n1] (n, O, OH, OW) rearranged into ``buffer`` as the (O, n*OH*OW) matrix im2col's products need."""
    o, oh, ow = gy.shape[1:]
    rows = _view(buffer, o, (n1 - n0) * oh * ow)
    rows.reshape(o, n1 - n0, oh * ow)[...] = gy[n0:n1].reshape(n1 - n0, o, oh * ow).transpose(1, 0, 2)
    return rows


def conv2d_backward_input(gy, w, input_hw, stride, padding, dilation):
    """gy (N, O, OH, OW), w (O, C, KH, KW) -> (gx (N, C, H, W), workspace bytes)."""
    n, o, oh, ow = gy.shape
    k = w[0].size
    wmat_t = w.reshape(o, k).T
    gx = np.empty((n, w.shape[1]) + tuple(input_hw), gy.dtype)
    chunk = _chunk(n, k * oh * ow * gy.itemsize)
    cols = np.empty(k * chunk * oh * ow, gy.dtype)
    g = np.empty(o * chunk * oh * ow, gy.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        part_g = _gradient_rows(gy, n0, n1, g)
        part = _view(cols, k, (n1 - n0) * oh * ow)
        np.matmul(wmat_t, part_g, out=part)
        _col2im(part, n0, n1, *_geometry(w.shape[2:], stride, padding, dilation), oh, ow, gx)
    return gx, cols.nbytes + g.nbytes


def conv2d_backward_weight(gy, x, kernel_hw, stride, padding, dilation):
    """gy (N, O, OH, OW), x (N, C, H, W) -> (gw (O, C, KH, KW), workspace bytes)."""
    n, o, oh, ow = gy.shape
    k = x.shape[1] * kernel_hw[0] * kernel_hw[1]
    gw = np.zeros((o, k), gy.dtype)
    chunk = _chunk(n, k * oh * ow * gy.itemsize)
    cols = np.empty(k * chunk * oh * ow, gy.dtype)
    g = np.empty(o * chunk * oh * ow, gy.dtype)
    for n0 in range(0, n, chunk):
        n1 = min(n, n0 + chunk)
        part_g = _gradient_rows(gy, n0, n1, g)
        part = _view(cols, k, (n1 - n0) * oh * ow)
        _im2col(x, n0, n1, *_geometry(kernel_hw, stride, padding, dilation), oh, ow, part)
        gw += part_g @ part.T
    return gw.reshape((o, x.shape[1]) + tuple(kernel_hw)), cols.nbytes + g.nbytes
