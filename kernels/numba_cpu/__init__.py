"""The Numba CPU backend: every kernel of ``kernels.contract`` compiled with Numba.

Convolution has two algorithms: ``'direct'`` (batch-innermost loops vectorised over N, no
unfolded buffer) and ``'im2col'`` (Numba unfolds, BLAS multiplies, in workspace-bounded chunks).
Kernels are compiled on first use and cached on disk (``cache=True``), so later processes start
fast. :func:`set_num_threads` sets Numba's and BLAS's thread counts together.
"""
from __future__ import annotations

import numpy

from kernels.numba_cpu.activation import (
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from kernels.numba_cpu.conv import (
    clear_caches,
    conv2d_backward_input,
    conv2d_backward_weight,
    conv2d_forward,
    peak_workspace_bytes,
    reset_peak_workspace,
)
from kernels.numba_cpu.loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward
from kernels.numba_cpu.pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from kernels.numba_cpu.threads import get_num_threads, set_num_threads

# --- modern CNNs
from kernels.numba_cpu.adaptive_pool import (  # noqa: E402
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_max_pool2d_forward,
)
from kernels.numba_cpu.batchnorm import (  # noqa: E402
    batch_norm_backward,
    batch_norm_forward_eval,
    batch_norm_forward_train,
)
from kernels.numba_cpu.dropout import dropout_backward, dropout_forward  # noqa: E402

NAME = "numba"
xp = numpy

__all__ = [
    "NAME",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "clear_caches",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "conv2d_forward",
    "get_num_threads",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "peak_workspace_bytes",
    "relu_backward",
    "relu_forward",
    "reset_peak_workspace",
    "set_num_threads",
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
