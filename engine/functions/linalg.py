"""Matrix products: matmul (with batching/broadcasting) and the fused linear layer."""
from __future__ import annotations

from engine.autograd import Function
from engine.functions.elementwise import unbroadcast


class MatMul(Function):
    """a @ b for a (..., n, k) and b (..., k, m) with broadcast batch dims (1-D operands are
    promoted to 2-D by Tensor.__matmul__ before they get here)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a @ b

    def backward(self, gy):
        a, b = self.saved_tensors
        ga = unbroadcast(gy @ b.swapaxes(-1, -2), a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(a.swapaxes(-1, -2) @ gy, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Linear(Function):
    """y = x @ w.T + b for x (..., in), w (out, in), b (out,) or None."""

    def forward(self, x, w, b=None):
        self.save_for_backward(x, w)
        y = x @ w.T
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        x, w = self.saved_tensors
        gx = gy @ w if self.needs_input_grad[0] else None
        gw = gb = None
        if self.needs_input_grad[1]:
            gw = gy.reshape(-1, gy.shape[-1]).T @ x.reshape(-1, x.shape[-1])
        if len(self.needs_input_grad) > 2 and self.needs_input_grad[2]:
            gb = gy.reshape(-1, gy.shape[-1]).sum(axis=0)
        return gx, gw, gb
