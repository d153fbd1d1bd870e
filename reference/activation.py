"""Elementwise activations; each backward receives the forward's output ``y`` (any shape)."""
from __future__ import annotations

import numpy as np


def sigmoid_forward(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), computed from exp(-|x|) so that no exp ever overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(gy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """gx = gy * y * (1 - y)."""
    return gy * y * (1 - y)


def relu_forward(x: np.ndarray) -> np.ndarray:
    """max(x, 0); NaN stays NaN, as in torch."""
    return np.maximum(x, np.zeros((), x.dtype))


def relu_backward(gy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """gx = 0 where y <= 0, else gy (the gradient at 0 is 0 and NaN passes gy on, as in torch)."""
    return np.where(y <= 0, np.zeros((), gy.dtype), gy)


def tanh_forward(x: np.ndarray) -> np.ndarray:
    """tanh(x)."""
    return np.tanh(x)


def tanh_backward(gy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """gx = gy * (1 - y**2)."""
    return gy * (1 - y * y)
