"""Argument checks shared by the ops: dtypes, devices, broadcasting, batching, shapes.

Each raises a ValueError or TypeError that names the op, the argument and the shapes at fault.
They read only ``shape``/``dtype``/``device`` (and call ``reshape``/``to`` on tensors), so they work
on any :class:`engine.autograd.Variable`.
"""
from __future__ import annotations

import numpy as np

from engine.autograd import Variable, check_same_device
from engine.device import dtype_name

__all__ = ["as_float_tensors", "batched", "check_broadcast", "check_same_device", "infer_shape", "promote",
           "shape_args"]


def check_broadcast(op, shape_a, shape_b):
    """Raise ValueError naming ``op`` and both shapes when they don't broadcast."""
    for x, y in zip(reversed(tuple(shape_a)), reversed(tuple(shape_b))):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"{op}: shapes {tuple(shape_a)} and {tuple(shape_b)} cannot be broadcast together "
                             f"(size {x} vs {y})")


def as_float_tensors(op, **named):
    """Check that each named argument is a float tensor (None allowed for ``bias``), all one dtype and device."""
    out, dtypes = [], {}
    for name, value in named.items():
        if value is None and name == "bias":
            out.append(None)
            continue
        if not isinstance(value, Variable):
            raise TypeError(f"{op}: argument '{name}' must be a Tensor, got {type(value).__name__}")
        if value.dtype.kind != "f":
            raise TypeError(f"{op}: argument '{name}' must be a floating point tensor, got "
                            f"{dtype_name(value.dtype)} with shape {tuple(value.shape)}")
        dtypes[name] = value.dtype
        out.append(value)
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{k} is {dtype_name(v)}" for k, v in dtypes.items())
        raise TypeError(f"{op}: arguments must have the same dtype, but {listing}")
    check_same_device(op, out)
    return out


def batched(t, op: str):
    """A 4-D view of a (N,C,H,W) or unbatched (C,H,W) input, and a function undoing the batching."""
    if t.ndim == 4:
        return t, lambda y: y
    if t.ndim == 3:
        return t.reshape((1,) + tuple(t.shape)), lambda y: y.reshape(tuple(y.shape)[1:])
    raise ValueError(f"{op}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got input shape {tuple(t.shape)}")


def promote(a, b):
    """Cast two operands to one dtype the way torch does: a float beats an int, and between two
    floats a 0-d tensor (a wrapped scalar) takes the other's dtype; else float32 + float64 -> float64."""
    if a.dtype == b.dtype:
        return a, b
    a_float, b_float = a.dtype.kind == "f", b.dtype.kind == "f"
    if a_float != b_float:
        target = a.dtype if a_float else b.dtype
    elif a.ndim == 0 and b.ndim > 0:
        target = b.dtype
    elif b.ndim == 0 and a.ndim > 0:
        target = a.dtype
    else:
        target = np.result_type(a.dtype, b.dtype)
    return a.to(target), b.to(target)


def shape_args(shape):
    """``f(2, 3)``, ``f((2, 3))`` and ``f([2, 3])`` all as the tuple ``(2, 3)``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def infer_shape(size: int, shape: tuple, op: str = "reshape", source_shape=None) -> tuple:
    """``shape`` with its one ``-1`` filled in so it holds ``size`` elements; ValueError when impossible."""
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if shape.count(-1) > 1 or any(s < -1 for s in shape) or (-1 not in shape and known != size) \
            or (-1 in shape and (known == 0 or size % known)):
        raise ValueError(f"{op}: shape {tuple(shape)} is invalid for input of size {size}"
                         + ("" if source_shape is None else f" (shape {source_shape})"))
    return tuple(size // known if s == -1 else s for s in shape)
