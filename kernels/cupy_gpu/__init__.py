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

from kernels.contract import export  # noqa: E402

from . import activation, conv, loss, pool  # noqa: E402
from . import modern  # noqa: E402  (batch norm, dropout, adaptive pooling)


def synchronize() -> None:
    """Wait until every kernel queued on the current CUDA device has finished."""
    cupy.cuda.Device().synchronize()


export(globals(), "cupy", cupy, (activation, conv, loss, pool, modern))
