"""2-D average and max pooling with PyTorch's semantics, one (sample, channel) plane per task.

Output sizes come from ``kernels.shapes.pool2d_out_hw`` (ceil_mode included). A window is clipped
to the input; for the average, ``count_include_pad`` divides by the window clipped to the padded
input [-p, n + p) instead of by the in-bounds count. Max pooling treats padding as -inf, keeps the
first maximum in row-major window order, and lets a NaN win (the last NaN of a window), as torch.
Shapes: x (N, C, H, W), y / gy / indices (N, C, OH, OW). Geometry args are (h, w) pairs.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from kernels.shapes import pool2d_out_hw

NO_DILATION = (1, 1)


@njit(cache=True)
def _bounds(n_out, n_in, k, s, p, d, include_pad):
    """Per output position: first and one-past-last in-bounds input index and the divisor count."""
    lo = np.empty(n_out, np.int64)
    hi = np.empty(n_out, np.int64)
    count = np.empty(n_out, np.int64)
    for o in range(n_out):
        start = o * s - p
        end = min(start + (k - 1) * d + 1, n_in + p)
        lo[o] = max(start, 0)
        hi[o] = min(end, n_in)
        count[o] = end - start if include_pad else hi[o] - lo[o]
    return lo, hi, count


@njit(cache=True)
def _inverse_counts(ch, cw, one):
    """(OH, OW) 1 / divisor in the data's dtype: a multiply per output instead of a divide."""
    inv = np.empty((ch.size, cw.size), type(one))
    for i in range(ch.size):
        for j in range(cw.size):
            inv[i, j] = one / type(one)(ch[i] * cw[j])
    return inv


def _chunks(planes: int) -> int:
    """Split ``planes`` (N*C) into about 8 chunks per thread: per-chunk scratch, balanced load.
    (Computed here: calling get_num_threads inside a kernel would stop Numba caching it.)"""
    return max(1, min(planes, 8 * numba.get_num_threads()))


@njit(parallel=True, cache=True)
def _avg_forward(x, y, kh_, kw_, sh, sw, ph, pw, include_pad, nchunks):
    n, c, h, w = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    lh, hh, ch = _bounds(oh_, h, kh_, sh, ph, 1, include_pad)
    lw, hw, cw = _bounds(ow_, w, kw_, sw, pw, 1, include_pad)
    src, dst = x.reshape(n * c, h, w), y.reshape(n * c, oh_, ow_)
    zero = x.dtype.type(0)
    inv = _inverse_counts(ch, cw, x.dtype.type(1))
    for chunk in prange(nchunks):
        row = np.empty(w, x.dtype)
        for p in range(chunk * (n * c) // nchunks, (chunk + 1) * (n * c) // nchunks):
            for oh in range(oh_):
                row[:] = zero  # the window's rows summed, then windows along the row
                for ih in range(lh[oh], hh[oh]):
                    xr = src[p, ih]
                    for iw in range(w):
                        row[iw] += xr[iw]
                out = dst[p, oh]
                for ow in range(ow_):
                    s = row[lw[ow]]
                    for iw in range(lw[ow] + 1, hw[ow]):
                        s += row[iw]
                    out[ow] = s * inv[oh, ow]


@njit(parallel=True, cache=True)
def _avg_backward(gy, gx, kh_, kw_, sh, sw, ph, pw, include_pad, nchunks):
    n, c, h, w = gx.shape
    oh_, ow_ = gy.shape[2], gy.shape[3]
    lh, hh, ch = _bounds(oh_, h, kh_, sh, ph, 1, include_pad)
    lw, hw, cw = _bounds(ow_, w, kw_, sw, pw, 1, include_pad)
    src, dst = gy.reshape(n * c, oh_, ow_), gx.reshape(n * c, h, w)
    zero = gy.dtype.type(0)
    inv = _inverse_counts(ch, cw, gy.dtype.type(1))
    # input rows that no window covers (stride > kernel) stay zero
    covered = np.zeros(h, np.bool_)
    for oh in range(oh_):
        covered[lh[oh]: hh[oh]] = True
    for chunk in prange(nchunks):
        row = np.empty(w, gy.dtype)
        for p in range(chunk * (n * c) // nchunks, (chunk + 1) * (n * c) // nchunks):
            plane = dst[p]
            for ih in range(h):
                if not covered[ih]:
                    plane[ih, :] = zero
            for oh in range(oh_):
                row[:] = zero  # this output row's share of each input column, then spread over rows
                g = src[p, oh]
                for ow in range(ow_):
                    v = g[ow] * inv[oh, ow]
                    for iw in range(lw[ow], hw[ow]):
                        row[iw] += v
                for ih in range(lh[oh], hh[oh]):
                    xr = plane[ih]
                    if oh == 0 or ih >= hh[oh - 1]:  # the first window over this input row
                        for iw in range(w):
                            xr[iw] = row[iw]
                    else:
                        for iw in range(w):
                            xr[iw] += row[iw]


@njit(parallel=True, cache=True)
def _avg2x2_forward(x, y, nchunks):
    """The common 2x2, stride-2, unpadded case, every window inside the input: a constant
    stride of 2 lets LLVM vectorise the row loop (the general kernel's windows vary)."""
    n, c, h, w = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    src, dst = x.reshape(n * c, h, w), y.reshape(n * c, oh_, ow_)
    quarter = x.dtype.type(0.25)  # exact: dividing by 4, as torch does, rounds the same
    for chunk in prange(nchunks):
        for p in range(chunk * (n * c) // nchunks, (chunk + 1) * (n * c) // nchunks):
            for oh in range(oh_):
                r0, r1, out = src[p, 2 * oh], src[p, 2 * oh + 1], dst[p, oh]
                for ow in range(ow_):
                    out[ow] = (((r0[2 * ow] + r0[2 * ow + 1]) + r1[2 * ow]) + r1[2 * ow + 1]) * quarter


@njit(parallel=True, cache=True)
def _avg2x2_backward(gy, gx, nchunks):
    n, c, h, w = gx.shape
    oh_, ow_ = gy.shape[2], gy.shape[3]
    src, dst = gy.reshape(n * c, oh_, ow_), gx.reshape(n * c, h, w)
    quarter, zero = gy.dtype.type(0.25), gy.dtype.type(0)
    for chunk in prange(nchunks):
        for p in range(chunk * (n * c) // nchunks, (chunk + 1) * (n * c) // nchunks):
            plane = dst[p]
            plane[2 * oh_:, :] = zero  # an odd last row or column is in no window
            plane[:, 2 * ow_:] = zero
            for oh in range(oh_):
                g, r0, r1 = src[p, oh], plane[2 * oh], plane[2 * oh + 1]
                for ow in range(ow_):
                    v = g[ow] * quarter
                    r0[2 * ow] = v
                    r0[2 * ow + 1] = v
                    r1[2 * ow] = v
                    r1[2 * ow + 1] = v


def _is_plain_2x2(input_hw, out_hw, kernel, stride, padding) -> bool:
    return (tuple(kernel) == (2, 2) and tuple(stride) == (2, 2) and tuple(padding) == (0, 0)
            and 2 * out_hw[0] <= input_hw[0] and 2 * out_hw[1] <= input_hw[1])


@njit(cache=True, inline="always")
def _taps_inside(start, k, d, size):
    """[first, last) of the taps i < k with 0 <= start + i*d < size (geometry checks keep it non-empty)."""
    first = 0 if start >= 0 else (-start + d - 1) // d
    last = min(k, (size - start + d - 1) // d)
    return first, last


@njit(cache=True)
def _window_taps(n_out, step, pad, k, d, size):
    """For each output index o: [first, last) of the taps inside the input of its window, which
    starts at o * step - pad."""
    first, last = np.empty(n_out, np.int64), np.empty(n_out, np.int64)
    for o in range(n_out):
        first[o], last[o] = _taps_inside(o * step - pad, k, d, size)
    return first, last


@njit(parallel=True, cache=True)
def _max_forward(x, y, idx, kh_, kw_, sh, sw, ph, pw, dh, dw):
    n, c, h, w = x.shape
    oh_, ow_ = y.shape[2], y.shape[3]
    ilo, ihi = _window_taps(oh_, sh, ph, kh_, dh, h)
    jlo, jhi = _window_taps(ow_, sw, pw, kw_, dw, w)
    for p in prange(n * c):
        src, dst, at_dst = x[p // c, p % c].reshape(-1), y[p // c, p % c], idx[p // c, p % c]
        for oh in range(oh_):
            h0 = oh * sh - ph
            for ow in range(ow_):
                w0 = ow * sw - pw
                # start from the window's first tap inside the input: no bounds checks below
                at = (h0 + ilo[oh] * dh) * w + w0 + jlo[ow] * dw
                best = src[at]
                for i in range(ilo[oh], ihi[oh]):
                    row = (h0 + i * dh) * w + w0
                    for j in range(jlo[ow], jhi[ow]):
                        v = src[row + j * dw]
                        # strict '>': the first maximum; NaN always wins (so the last NaN), as
                        # in torch. Window bounds once per call, flat indices and selects
                        # together took the ResNet stem's 64x64x48x48 from 43 to 38-40 ms here;
                        # the bounds or the selects alone did not help.
                        take = (v > best) | (v != v)
                        best = v if take else best
                        at = row + j * dw if take else at
                dst[oh, ow] = best
                at_dst[oh, ow] = at


@njit(parallel=True, cache=True)
def _max_backward(gy, idx, gx):
    n, c = gy.shape[0], gy.shape[1]
    for p in prange(n * c):
        dst = gx[p // c, p % c].reshape(-1)
        dst[:] = 0
        g = gy[p // c, p % c].reshape(-1)
        at = idx[p // c, p % c].reshape(-1)
        for i in range(g.size):
            dst[at[i]] += g[i]


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad):
    """x (N, C, H, W) -> y (N, C, OH, OW); padding counts as zeros."""
    x = np.ascontiguousarray(x)
    oh, ow = pool2d_out_hw(x.shape[2:], kernel, stride, padding, NO_DILATION, ceil_mode)
    y = np.empty(x.shape[:2] + (oh, ow), x.dtype)
    chunks = _chunks(y.shape[0] * y.shape[1])
    if _is_plain_2x2(x.shape[2:], (oh, ow), kernel, stride, padding):
        _avg2x2_forward(x, y, chunks)
    else:
        _avg_forward(x, y, *kernel, *stride, *padding, bool(count_include_pad), chunks)
    return y


def avg_pool2d_backward(gy, input_hw, kernel, stride, padding, ceil_mode, count_include_pad):
    """gy (N, C, OH, OW) -> gx (N, C, H, W): each window spreads gy / divisor over its elements."""
    gy = np.ascontiguousarray(gy)
    gx = np.empty(gy.shape[:2] + tuple(input_hw), gy.dtype)
    chunks = _chunks(gy.shape[0] * gy.shape[1])
    if _is_plain_2x2(input_hw, gy.shape[2:], kernel, stride, padding):
        _avg2x2_backward(gy, gx, chunks)
    else:
        _avg_backward(gy, gx, *kernel, *stride, *padding, bool(count_include_pad), chunks)
    return gx


def max_pool2d_forward(x, kernel, stride, padding, dilation, ceil_mode):
    """x (N, C, H, W) -> (y (N, C, OH, OW), indices (N, C, OH, OW) int64, flat h*W + w)."""
    x = np.ascontiguousarray(x)
    oh, ow = pool2d_out_hw(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    y = np.empty(x.shape[:2] + (oh, ow), x.dtype)
    idx = np.empty(y.shape, np.int64)
    _max_forward(x, y, idx, *kernel, *stride, *padding, *dilation)
    return y, idx


def max_pool2d_backward(gy, indices, input_hw):
    """gy, indices (N, C, OH, OW) -> gx (N, C, H, W): gy added at each window's maximum."""
    gy, indices = np.ascontiguousarray(gy), np.ascontiguousarray(indices)
    gx = np.empty(gy.shape[:2] + tuple(input_hw), gy.dtype)
    _max_backward(gy, indices, gx)
    return gx
