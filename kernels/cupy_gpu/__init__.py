"""The CuPy backend: the kernels of ``kernels.contract`` as our own CUDA C, compiled by CuPy.

Arrays are ``cupy.ndarray``; dense products go through cuBLAS (``cupy.matmul``), everything else
is a kernel from ``sources.py`` compiled once per dtype on first use. Importing this package
raises ImportError, with the reason, when CuPy is not installed or no CUDA device is usable;
``engine.backend`` turns that into ``BackendUnavailable``.
"""

from __future__ import annotations

try:
    import cupy
except ImportError as exc:
    raise ImportError(
        "CuPy not installed: the 'cupy' backend needs it "
        "(pip install cupy-cuda12x, or cupy-cuda13x for CUDA 13 drivers)"
    ) from exc

try:
    _device_count = cupy.cuda.runtime.getDeviceCount()
except Exception as exc:  # CUDARuntimeError: no driver, driver too old, ...
    raise ImportError(f"no CUDA device usable by CuPy ({type(exc).__name__}: {exc})") from exc
if _device_count == 0:
    raise ImportError("no CUDA device: CuPy is installed but sees no GPU")

from .activation import (  # noqa: E402
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from .conv import conv2d_backward_input, conv2d_backward_weight, conv2d_forward  # noqa: E402
from .loss import softmax_cross_entropy_backward, softmax_cross_entropy_forward  # noqa: E402
from .pool import (  # noqa: E402
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

# --- modern CNNs
from .modern import (  # noqa: E402
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    adaptive_max_pool2d_forward,
    batch_norm_backward,
    batch_norm_forward_eval,
    batch_norm_forward_train,
    dropout_backward,
    dropout_forward,
)

NAME = "cupy"
xp = cupy


def synchronize() -> None:
    """Wait until every kernel queued on the current CUDA device has finished."""
    cupy.cuda.Device().synchronize()


__all__ = [
    "NAME",
    "xp",
    "synchronize",
    "conv2d_forward",
    "conv2d_backward_input",
    "conv2d_backward_weight",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "relu_forward",
    "relu_backward",
    "tanh_forward",
    "tanh_backward",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
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
