"""The chunked im2col + GEMM convolution, written once for every backend.

A backend supplies its array module ``xp`` (numpy or cupy) and two primitives bound to one
convolution's arrays and geometry:

    unfold(n0, n1, cols)  fill cols (C*KH*KW, (n1-n0)*OH*OW) with the windows of samples n0:n1
                          (rows ordered like w.reshape(O, -1), padding read as 0)
    fold(cols, n0, n1)    put cols (C*KH*KW, (n1-n0)*OH*OW), the gradient of samples n0:n1's
                          windows, back into the gradient of those samples (summing overlaps)

With w2 = w.reshape(O, C*KH*KW), per chunk of n samples:

* forward:         y    = w2 @ cols                  (O, n*OH*OW), then to (n, O, OH, OW)
* backward-input:  cols = w2.T @ gy (O, n*OH*OW), then fold
* backward-weight: gw  += gy (O, n*OH*OW) @ cols.T

The batch is processed in chunks of at most ``kernels.workspace.batch_chunk`` samples, so that
one chunk's unfolded matrix stays within the workspace budget and, with ``max_chunk_bytes``, within
that many bytes (a backend's own limit: a cache size, or what its indexing can address). The buffers are allocated
once per call; each function also returns the bytes they took.
"""
from __future__ import annotations

from kernels import workspace


def chunk_size(n: int, per_sample_bytes: int, max_chunk_bytes: int | None = None) -> int:
    """Samples per chunk: within the workspace budget and, if given, ``max_chunk_bytes`` (at least 1)."""
    step = workspace.batch_chunk(n, per_sample_bytes)
    if max_chunk_bytes is not None:
        step = min(step, max(1, max_chunk_bytes // per_sample_bytes))
    return step


def _chunks(n: int, step: int):
    return [(n0, min(n, n0 + step)) for n0 in range(0, n, step)]


def _view(buffer, rows: int, cols: int):
    """The first rows*cols elements of a flat buffer as a C-contiguous (rows, cols) matrix."""
    return buffer[: rows * cols].reshape(rows, cols)


def _gradient_rows(gy, n0: int, n1: int, buffer):
    """gy[n0:n1] (n, O, OH, OW) laid out in ``buffer`` as the (O, n*OH*OW) matrix of the products."""
    o, oh, ow = gy.shape[1:]
    rows = _view(buffer, o, (n1 - n0) * oh * ow)
    rows.reshape(o, n1 - n0, oh * ow)[...] = gy[n0:n1].reshape(n1 - n0, o, oh * ow).transpose(1, 0, 2)
    return rows


def forward(xp, unfold, n: int, w, b, out_hw, max_chunk_bytes=None):
    """w (O, C, KH, KW), b (O,) or None -> (y (n, O, OH, OW), workspace bytes)."""
    o, k = w.shape[0], w[0].size
    ohw = out_hw[0] * out_hw[1]
    w2 = w.reshape(o, k)
    y = xp.empty((n, o) + tuple(out_hw), w.dtype)
    step = chunk_size(n, k * ohw * w.itemsize, max_chunk_bytes)
    cols, prod = xp.empty(k * step * ohw, w.dtype), xp.empty(o * step * ohw, w.dtype)
    for n0, n1 in _chunks(n, step):
        part = _view(cols, k, (n1 - n0) * ohw)
        unfold(n0, n1, part)
        out = xp.matmul(w2, part, out=_view(prod, o, (n1 - n0) * ohw))
        out = out.reshape(o, n1 - n0, ohw).transpose(1, 0, 2)  # (n, O, OH*OW)
        dst = y[n0:n1].reshape(n1 - n0, o, ohw)
        if b is None:
            dst[...] = out
        else:
            xp.add(out, b.reshape(o, 1), out=dst)
    return y, cols.nbytes + prod.nbytes


def backward_input(xp, fold, gy, w, max_chunk_bytes=None) -> int:
    """gy (N, O, OH, OW), w (O, C, KH, KW): folds every chunk's gradient columns; -> workspace bytes."""
    n, o, oh, ow = gy.shape
    k = w[0].size
    w2t = w.reshape(o, k).T
    step = chunk_size(n, k * oh * ow * gy.itemsize, max_chunk_bytes)
    cols, g = xp.empty(k * step * oh * ow, gy.dtype), xp.empty(o * step * oh * ow, gy.dtype)
    for n0, n1 in _chunks(n, step):
        part = xp.matmul(w2t, _gradient_rows(gy, n0, n1, g), out=_view(cols, k, (n1 - n0) * oh * ow))
        fold(part, n0, n1)
    return cols.nbytes + g.nbytes


def backward_weight(xp, unfold, gy, c: int, kernel_hw, max_chunk_bytes=None):
    """gy (N, O, OH, OW), the input's C channels -> (gw (O, C, KH, KW), workspace bytes)."""
    n, o, oh, ow = gy.shape
    k = c * kernel_hw[0] * kernel_hw[1]
    gw = xp.zeros((o, k), gy.dtype)
    step = chunk_size(n, k * oh * ow * gy.itemsize, max_chunk_bytes)
    cols, g = xp.empty(k * step * oh * ow, gy.dtype), xp.empty(o * step * oh * ow, gy.dtype)
    for n0, n1 in _chunks(n, step):
        part = _view(cols, k, (n1 - n0) * oh * ow)
        unfold(n0, n1, part)
        gw += _gradient_rows(gy, n0, n1, g) @ part.T
    return gw.reshape((o, c) + tuple(kernel_hw)), cols.nbytes + g.nbytes
