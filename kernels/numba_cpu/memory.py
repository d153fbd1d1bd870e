"""Large arrays from the heap, not from fresh pages: glibc's malloc settings for this backend.

A training step allocates and frees the same large arrays every time (activations, the
batch-innermost copies, gradients: up to 6.4 MB each for LeNet at batch 256). glibc serves a block
above its mmap threshold with a fresh mapping and unmaps it on free, so every step pays the kernel
for faulting and zeroing those pages again (the threshold adapts upwards only after such a block
is freed, and allocation order decides whether it ever does). Measured on the project's 2-core
machine: a LeNet step took 16-30 ms median without this and 11.7-14 ms with it.

:func:`keep_freed_blocks` raises the mmap threshold to glibc's maximum (32 MiB on 64-bit) and the
trim threshold to 256 MiB, so freed blocks stay in the heap for the next step (the process keeps
up to that much memory it no longer uses). An explicit ``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_`` in the environment wins; on other C libraries nothing changes.
"""
from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's HEAP_MAX-bound maximum on 64-bit; larger values are refused
TRIM_THRESHOLD = 256 << 20
ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_blocks() -> bool:
    """Apply the settings above; True when glibc took them."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in ENVIRONMENT):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others: no glibc, no mallopt
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


APPLIED = keep_freed_blocks()
