"""Broadcasting arithmetic: add, sub, mul, div, pow, neg, exp, log."""
from __future__ import annotations

import numpy as np

from engine.autograd import Function
from engine.backend import backend_for


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class Add(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a + b

    def backward(self, gy):
        return unbroadcast(gy, self.shapes[0]), unbroadcast(gy, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        self.shapes = (a.shape, b.shape)
        return a - b

    def backward(self, gy):
        gb = unbroadcast(-gy, self.shapes[1]) if self.needs_input_grad[1] else None
        return unbroadcast(gy, self.shapes[0]), gb


class Mul(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, gy):
        a, b = self.saved_tensors
        ga = unbroadcast(gy * b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(gy * a, b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a / b

    def backward(self, gy):
        a, b = self.saved_tensors
        ga = unbroadcast(gy / b, a.shape) if self.needs_input_grad[0] else None
        gb = unbroadcast(-gy * a / (b * b), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    """a ** b for tensor or scalar exponent."""

    def forward(self, a, b):
        y = a**b
        self.save_for_backward(a, b, y)
        return y

    def backward(self, gy):
        a, b, y = self.saved_tensors
        xp = backend_for(gy).xp
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):  # cupy never warns; numpy would here
            if self.needs_input_grad[0]:  # b * a**(b-1), and 0 where b == 0 (even at a == 0), as torch
                ga = unbroadcast(gy * xp.where(b == 0, 0, b * a ** (b - 1)), a.shape)
            if self.needs_input_grad[1]:  # y * log(a): NaN for a < 0; 0 at a == 0 for b >= 0, as torch
                gb = unbroadcast(gy * xp.where((a == 0) & (b >= 0), 0, y * xp.log(a)), b.shape)
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, gy):
        return -gy


class Exp(Function):
    def forward(self, a):
        y = backend_for(a).xp.exp(a)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        return gy * y


class Log(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return backend_for(a).xp.log(a)

    def backward(self, gy):
        (a,) = self.saved_tensors
        return gy / a


class Sqrt(Function):
    def forward(self, a):
        y = backend_for(a).xp.sqrt(a)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        return gy / (2 * y)


class Abs(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return backend_for(a).xp.abs(a)

    def backward(self, gy):
        (a,) = self.saved_tensors
        return gy * backend_for(a).xp.sign(a)
