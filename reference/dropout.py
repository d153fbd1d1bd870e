"""Dropout's masking: y = x * keep * scale (the engine draws ``keep`` and sets scale = 1 / (1 - p))."""
from __future__ import annotations

import numpy as np


def dropout_forward(x: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
    """y = x * scale where keep (uint8, x's shape) is 1, else 0."""
    return np.where(keep != 0, x * x.dtype.type(scale), np.zeros((), x.dtype))


def dropout_backward(gy: np.ndarray, keep: np.ndarray, scale: float) -> np.ndarray:
    """gx = gy * scale where keep is 1, else 0."""
    return dropout_forward(gy, keep, scale)
