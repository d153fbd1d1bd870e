"""float16 for kernels that Numba compiles only for float32/float64: compute in float32, round back."""
from __future__ import annotations

import functools

import numpy as np

_HALF = np.dtype(np.float16)


def via_float32(kernel):
    """``kernel`` accepting float16 arrays: they are widened to float32 and float results narrowed back.

    Every contract kernel's first argument is its main float array, so that one decides (cheaply).
    """

    @functools.wraps(kernel)
    def run(*args):
        if args[0].dtype != _HALF:
            return kernel(*args)
        result = kernel(*(a.astype(np.float32) if getattr(a, "dtype", None) == _HALF else a for a in args))
        if isinstance(result, tuple):
            return tuple(_narrow(r) for r in result)
        return _narrow(result)

    return run


def _narrow(array):
    return array.astype(_HALF) if array.dtype == np.float32 else array
