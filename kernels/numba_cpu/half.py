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
    def run(*args, **options):
        if args[0].dtype != _HALF:
            return kernel(*args, **options)
        result = kernel(*(_widen(a) for a in args), **{k: _widen(v) for k, v in options.items()})
        if isinstance(result, tuple):
            return tuple(_narrow(r) for r in result)
        return _narrow(result)

    return run


def _widen(value):
    return value.astype(np.float32) if getattr(value, "dtype", None) == _HALF else value


def _narrow(value):
    """float32 arrays back to float16; anything else (indices, a kernel's opaque saved state) as it is."""
    return value.astype(_HALF) if isinstance(value, np.ndarray) and value.dtype == np.float32 else value
