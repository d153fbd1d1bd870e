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

# --- modern CNNs
from reference.adaptive_pool import (  # noqa: E402
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_max_pool2d_forward,
)
from reference.batchnorm import batch_norm_backward, batch_norm_forward_eval, batch_norm_forward_train  # noqa: E402
from reference.dropout import dropout_backward, dropout_forward  # noqa: E402

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
    # modern CNNs
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "adaptive_max_pool2d_forward",
    "batch_norm_backward",
    "batch_norm_forward_eval",
    "batch_norm_forward_train",
    "dropout_backward",
    "dropout_forward",
]
