"""Compile the CUDA sources once per dtype (lazily, on first use) and launch them.

CuPy also keeps the compiled binaries in its on-disk kernel cache, so a new process does not
recompile unchanged sources.
"""

from __future__ import annotations

import functools

import cupy
import numpy

from . import sources
from .sources_modern import MODERN_SOURCES

BLOCK = 256  # threads per block of the one-thread-per-element kernels
INT32_LIMIT = 2**31 - 1024  # kernels index with int; keep idx + blockDim inside int range


@functools.lru_cache(maxsize=None)
def _module(source: str, ctype: str) -> cupy.RawModule:
    text = sources.RAW_SOURCES[source] if source in sources.RAW_SOURCES else MODERN_SOURCES[source]
    code = sources.prelude(ctype) + text  # looked up at compile time, so a test may swap a source in
    return cupy.RawModule(code=code)


@functools.lru_cache(maxsize=None)
def _function(source: str, name: str, ctype: str) -> cupy.RawKernel:
    return _module(source, ctype).get_function(name)


def kernel(source: str, name: str, dtype) -> cupy.RawKernel:
    """Kernel ``name`` of source ``source`` (in sources.py or sources_modern.py) compiled for ``dtype``."""
    return _function(source, name, sources.CTYPES[numpy.dtype(dtype).name])


def ints(*values: int) -> tuple:
    """Kernel arguments declared ``int`` (RawKernel needs explicitly typed scalars)."""
    return tuple(numpy.int32(v) for v in values)


def check_int32(*sizes: int) -> None:
    """Raise ValueError when an array is too large for the kernels' 32-bit indexing."""
    for size in sizes:
        if size >= INT32_LIMIT:
            raise ValueError(f"array of {size} elements is too large for the cupy backend's 32-bit indexing")


def launch_1d(kern: cupy.RawKernel, total: int, args: tuple) -> None:
    """Run ``kern`` with one thread per element of a ``total``-element range (nothing if empty)."""
    if total > 0:
        kern(((total + BLOCK - 1) // BLOCK,), (BLOCK,), args)


@functools.lru_cache(maxsize=None)
def multiprocessor_count() -> int:
    """Streaming multiprocessors of the current device (sizes split-K grids)."""
    return int(cupy.cuda.Device().attributes["MultiProcessorCount"])
