"""Reductions: sum, mean, max/min (with indices), all with torch's ``dim`` / ``keepdim``."""
from __future__ import annotations

from engine.autograd import Function
from engine.backend import backend_for


def normalize_dims(dim, ndim, op):
    """``dim`` (None, int or tuple, negatives allowed) as a sorted tuple of axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
        lo, hi = (-ndim, ndim - 1) if ndim else (-1, 0)
        if not lo <= d <= hi:
            raise IndexError(f"{op}: dim {d} is out of range for a tensor of {ndim} dims "
                             f"(expected to be in [{lo}, {hi}])")
        out.append(d % max(ndim, 1))
    return tuple(sorted(set(out)))


def _expand_back(gy, in_shape, dims, keepdim):
    """Reshape a reduced gradient so it broadcasts against the input shape."""
    if not keepdim and gy.ndim != len(in_shape):
        shape = [1 if i in dims else n for i, n in enumerate(in_shape)]
        gy = gy.reshape(shape)
    return gy


class Sum(Function):
    def forward(self, a, dims, keepdim):
        self.in_shape, self.dims, self.keepdim = a.shape, dims, keepdim
        return backend_for(a).xp.asarray(a.sum(axis=dims, keepdims=keepdim))

    def backward(self, gy):
        xp = backend_for(gy).xp
        return xp.broadcast_to(_expand_back(gy, self.in_shape, self.dims, self.keepdim), self.in_shape).copy()


class Mean(Function):
    def forward(self, a, dims, keepdim):
        self.in_shape, self.dims, self.keepdim = a.shape, dims, keepdim
        self.count = 1
        for d in dims:
            self.count *= a.shape[d]
        return backend_for(a).xp.asarray(a.mean(axis=dims, keepdims=keepdim))

    def backward(self, gy):
        xp = backend_for(gy).xp
        g = _expand_back(gy, self.in_shape, self.dims, self.keepdim) / self.count
        return xp.broadcast_to(g, self.in_shape).astype(gy.dtype, copy=True)


class MaxAlongDim(Function):
    """(values, indices) of the max (or min) over one dim; the gradient goes to the first extreme
    element, like torch. ``indices`` (int64) is a second, non-differentiable output."""

    def forward(self, a, dim, keepdim, take_min=False):
        xp = backend_for(a).xp
        index = xp.expand_dims(a.argmin(axis=dim) if take_min else a.argmax(axis=dim), dim)
        values = xp.take_along_axis(a, index, axis=dim)
        self.in_shape, self.dim, self.index = a.shape, dim, index
        if keepdim:
            return values, index
        return xp.squeeze(values, dim), xp.squeeze(index, dim)

    def backward(self, gy, g_indices=None):
        xp = backend_for(gy).xp
        gy = gy if gy.ndim == len(self.in_shape) else xp.expand_dims(gy, self.dim)
        shape = [1] * len(self.in_shape)
        shape[self.dim] = self.in_shape[self.dim]
        positions = xp.arange(self.in_shape[self.dim]).reshape(shape)
        return ((positions == self.index) * gy).astype(gy.dtype, copy=False)


def arg_extreme(array, axis, keepdim, take_min):
    """Indices (int64) of the first max (or min) along ``axis``; no gradient."""
    index = array.argmin(axis=axis) if take_min else array.argmax(axis=axis)
    return backend_for(array).xp.expand_dims(index, axis) if keepdim else index


class MaxAll(Function):
    """max (or min) of all elements; the gradient is shared evenly among ties, like torch."""

    def forward(self, a, take_min=False):
        xp = backend_for(a).xp
        value = a.min() if take_min else a.max()
        self.save_for_backward(a, value)
        return xp.asarray(value)

    def backward(self, gy):
        a, value = self.saved_tensors
        mask = a == value
        return gy * mask / mask.sum()
