"""Dropout: zero each element with probability p and scale the rest by 1 / (1 - p) (training only)."""
from __future__ import annotations

import numpy as np

from engine import random
from engine.autograd import Function
from engine.backend import backend_for, contiguous
from engine.device import like
from engine.functions.checks import as_float_tensors


class Dropout(Function):
    """y = x * keep * scale, with ``keep`` (uint8, x's shape) drawn by the wrapper."""

    def forward(self, x, keep, scale):
        self.keep, self.scale = keep, scale
        return backend_for(x).dropout_forward(contiguous(x), keep, scale)

    def backward(self, gy):
        return backend_for(gy).dropout_backward(contiguous(gy), self.keep, self.scale)


def dropout(input, p=0.5, training=True):
    """Checked entry point; see ``engine.nn.functional.dropout``."""
    (input,) = as_float_tensors("dropout", input=input)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise ValueError(f"dropout: probability p has to be between 0 and 1, but got {p!r}")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0.0
    # drawn on the host from the engine's generator, so engine.manual_seed reproduces the mask on any device
    keep = (random.generator().random(tuple(input.shape)) >= p).astype(np.uint8)
    return Dropout.apply(input, like(keep, input._data), 1.0 / (1.0 - p))
