"""Thread count for CPU kernels: ``engine.set_num_threads(n)`` (Numba and BLAS together)."""
from __future__ import annotations

import os

from engine import backend

_threads = int(os.environ.get("NUMBA_NUM_THREADS", os.cpu_count() or 1))


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for CPU kernels (Numba's pool; the numba backend keeps BLAS on one thread)."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    cpu = backend.cpu_backend()
    if hasattr(cpu, "set_num_threads"):
        cpu.set_num_threads(n)
    else:  # the reference backend: only BLAS has threads
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    _threads = n


def get_num_threads() -> int:
    """The number of threads CPU kernels use."""
    cpu = backend.cpu_backend()
    if hasattr(cpu, "get_num_threads"):
        return cpu.get_num_threads()
    return _threads
