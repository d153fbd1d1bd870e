"""Activations whose kernels live in the backends: sigmoid, relu, tanh."""
from __future__ import annotations

from engine.autograd import Function
from engine.backend import backend_for, contiguous


class _Activation(Function):
    """y = f(x) with a backward that needs only y; subclasses name the two kernels."""

    forward_kernel = backward_kernel = ""

    def forward(self, x):
        y = getattr(backend_for(x), self.forward_kernel)(contiguous(x))
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        return getattr(backend_for(gy), self.backward_kernel)(contiguous(gy), y)


class Sigmoid(_Activation):
    forward_kernel, backward_kernel = "sigmoid_forward", "sigmoid_backward"


class ReLU(_Activation):
    forward_kernel, backward_kernel = "relu_forward", "relu_backward"


class Tanh(_Activation):
    forward_kernel, backward_kernel = "tanh_forward", "tanh_backward"
