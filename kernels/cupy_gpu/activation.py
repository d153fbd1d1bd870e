"""Sigmoid, ReLU and tanh as cupy.ElementwiseKernels (built on first use, one per op).

The operations live in ``sources.ELEMENTWISE``; CuPy compiles each once per dtype and caches it.
Backward gets the forward's output y.
"""

from __future__ import annotations

import functools

import cupy

from .sources import ELEMENTWISE


@functools.lru_cache(maxsize=None)
def _kernel(name: str) -> cupy.ElementwiseKernel:
    in_params, out_params, operation = ELEMENTWISE[name]
    return cupy.ElementwiseKernel(in_params, out_params, operation, f"engine_{name}")


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), computed without overflow."""
    return _kernel("sigmoid_forward")(x)


def sigmoid_backward(gy, y):
    """gx = gy * y * (1 - y)."""
    return _kernel("sigmoid_backward")(gy, y)


def relu_forward(x):
    """y = max(x, 0)."""
    return _kernel("relu_forward")(x)


def relu_backward(gy, y):
    """gx = gy where y > 0, else 0."""
    return _kernel("relu_backward")(gy, y)


def tanh_forward(x):
    """y = tanh(x)."""
    return _kernel("tanh_forward")(x)


def tanh_backward(gy, y):
    """gx = gy * (1 - y**2)."""
    return _kernel("tanh_backward")(gy, y)
