"""The reference backend: every kernel of ``kernels.contract`` written plainly in NumPy.

Slow but obviously correct; it is the CPU fallback and the second oracle (after torch) that the
faster backends are tested against. Kernels take raw C-contiguous float32/float64 arrays and
return new arrays of the same dtype.
"""
from __future__ import annotations

import numpy

from reference.activation import (
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from reference.conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward
from reference.loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from reference.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

NAME = "reference"
xp = numpy

__all__ = [
    "NAME",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "conv2d_forward",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
    "tanh_backward",
    "tanh_forward",
    "xp",
]
