"""Broadcasting arithmetic: add, sub, mul, div, pow, neg, exp, log."""
from __future__ import annotations

from engine.autograd import Function
from engine.device import array_module


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
        xp = array_module(gy)
        ga = gb = None
        if self.needs_input_grad[0]:
            ga = unbroadcast(gy * b * a ** (b - 1), a.shape)
        if self.needs_input_grad[1]:
            log_a = xp.log(xp.where(a > 0, a, 1))
            gb = unbroadcast(gy * y * log_a, b.shape)
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, gy):
        return -gy


class Exp(Function):
    def forward(self, a):
        y = array_module(a).exp(a)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        return gy * y


class Log(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return array_module(a).log(a)

    def backward(self, gy):
        (a,) = self.saved_tensors
        return gy / a


class Sqrt(Function):
    def forward(self, a):
        y = array_module(a).sqrt(a)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        return gy / (2 * y)


class Abs(Function):
    def forward(self, a):
        self.save_for_backward(a)
        return array_module(a).abs(a)

    def backward(self, gy):
        (a,) = self.saved_tensors
        return gy * array_module(a).sign(a)
