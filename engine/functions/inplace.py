"""Writes into an existing array: ``dest[index] = value`` and ``a += b`` style arithmetic.

Each forward modifies its first array in place and returns it; the Tensor then takes the new
Function as its history (torch's "rebase"), so gradients flow to both the old contents and the
value written. Nothing here saves the destination's array (it has just been overwritten); what
backward needs of the old contents is copied first.
"""
from __future__ import annotations

from engine.autograd import Function
from engine.backend import backend_for
from engine.functions.elementwise import unbroadcast


def _grad_for_value(g, value_shape):
    """``g`` (shaped like the destination region) summed back to the shape of the value written."""
    if g.ndim < len(value_shape):  # numpy lets a value with extra leading 1s fill a region
        g = g.reshape((1,) * (len(value_shape) - g.ndim) + tuple(g.shape))
    return unbroadcast(g, tuple(value_shape))


class SetItem(Function):
    """dest[index] = value (basic or advanced index; value an array or a scalar)."""

    def forward(self, dest, value, index):
        self.index, self.value_shape = index, getattr(value, "shape", ())
        dest[index] = value
        return dest

    def backward(self, gy):
        g_dest = g_value = None
        if self.needs_input_grad[0]:
            g_dest = gy.copy()
            g_dest[self.index] = 0
        if self.needs_input_grad[1]:
            g_value = _grad_for_value(gy[self.index], self.value_shape)
        return g_dest, g_value, None


class InplaceArithmetic(Function):
    """a op= b for op in add, sub, mul, div (b broadcasts to a's shape)."""

    UFUNCS = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide"}

    def forward(self, a, b, op):
        self.op, self.b_shape = op, getattr(b, "shape", ())
        needs_a, needs_b = (self.needs_input_grad + (False, False))[:2]
        old_a = a.copy() if op in ("mul", "div") and needs_b else None
        b_kept = b.copy() if op in ("mul", "div") and hasattr(b, "shape") and _overlaps(a, b) else b
        if op in ("mul", "div"):
            self.save_for_backward(old_a, b_kept)
        ufunc = getattr(backend_for(a).xp, self.UFUNCS[op])
        ufunc(a, b, out=a, casting="same_kind")
        return a

    def backward(self, gy):
        ga = gb = None
        op = self.op
        if op in ("add", "sub"):
            ga = gy if self.needs_input_grad[0] else None
            if self.needs_input_grad[1]:
                gb = unbroadcast(gy if op == "add" else -gy, self.b_shape)
            return ga, gb, None
        old_a, b = self.saved_tensors
        if self.needs_input_grad[0]:
            ga = gy * b if op == "mul" else gy / b
        if self.needs_input_grad[1]:
            gb = unbroadcast(gy * old_a if op == "mul" else -gy * old_a / (b * b), self.b_shape)
        return ga, gb, None


def _overlaps(a, b) -> bool:
    return backend_for(a).xp.may_share_memory(a, b)
