"""Joining tensors: ``cat`` along an existing dim and ``stack`` along a new one."""
from __future__ import annotations

import numpy as np

from engine.autograd import Function, Variable
from engine.backend import backend_for
from engine.functions.checks import check_same_device


class Cat(Function):
    """y = concatenate(inputs, dim); backward splits gy back into the inputs' sizes."""

    def forward(self, *arrays, dim):
        self.dim = dim
        self.sizes = [a.shape[dim] for a in arrays]
        return backend_for(arrays[0]).xp.concatenate(arrays, axis=dim)

    def backward(self, gy):
        bounds = np.cumsum(self.sizes)[:-1].tolist()
        parts = backend_for(gy).xp.split(gy, bounds, axis=self.dim)
        return tuple(part if needed else None for part, needed in zip(parts, self.needs_input_grad))


def _checked(op, tensors):
    if isinstance(tensors, Variable) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}: expected a list or tuple of Tensors, got {type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{op}: expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Variable):
            raise TypeError(f"{op}: element {i} of tensors must be a Tensor, got {type(t).__name__}")
    check_same_device(op, tensors)
    dtype = np.result_type(*[t.dtype for t in tensors])
    return [t.to(dtype) for t in tensors]


def _dim(op, dim, ndim):
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -ndim <= dim < ndim:
        raise IndexError(f"{op}: dim {dim} is out of range for tensors of {ndim} dims "
                         f"(expected to be in [{-ndim}, {ndim - 1}])")
    return dim % ndim


def cat(tensors, dim=0):
    """Concatenate tensors of equal shape except along ``dim``, like ``torch.cat``."""
    tensors = _checked("cat", tensors)
    first = tuple(tensors[0].shape)
    if not first:
        raise ValueError("cat: zero-dimensional tensors cannot be concatenated")
    dim = _dim("cat", dim, len(first))
    for i, t in enumerate(tensors):
        shape = tuple(t.shape)
        if len(shape) != len(first) or shape[:dim] + shape[dim + 1:] != first[:dim] + first[dim + 1:]:
            raise ValueError(f"cat: sizes of tensors must match except in dimension {dim}: tensor 0 has shape "
                             f"{first}, tensor {i} has shape {shape}")
    return Cat.apply(*tensors, dim=dim)


def stack(tensors, dim=0):
    """Join tensors of one shape along a new dim ``dim``, like ``torch.stack``."""
    tensors = _checked("stack", tensors)
    first = tuple(tensors[0].shape)
    for i, t in enumerate(tensors):
        if tuple(t.shape) != first:
            raise ValueError(f"stack: expects each tensor to be equal size, but got {first} at entry 0 and "
                             f"{tuple(t.shape)} at entry {i}")
    dim = _dim("stack", dim, len(first) + 1)
    return cat([t.unsqueeze(dim) for t in tensors], dim=dim)
