"""Thread count of the Numba kernels, and BLAS (OpenBLAS behind numpy.matmul) kept out of their way.

Numba's pool size is fixed at start-up by ``NUMBA_NUM_THREADS`` (default: the number of cores);
:func:`set_num_threads` can only lower it. BLAS runs on one thread, set when this module loads:
OpenBLAS workers keep spinning for a while after each call, and on a 2-core machine they then
steal the cores from the next Numba kernel (LeNet inference ran 3x slower with two BLAS threads
than with one; im2col, which alternates Numba and BLAS, 4-20x slower; switching BLAS to two
threads only around its products did not help).
"""
from __future__ import annotations

import os

# Numba's OpenMP pool (libgomp) reads its wait policy when it starts, at the first parallel
# kernel (nothing in this package starts it earlier). By default idle workers spin for a while,
# and on a machine whose cores are shared the spinning starves the threads that have work: a
# LeNet step measured 20x slower under load. PASSIVE workers sleep at once; waking one costs
# tens of microseconds per kernel, which is why small elementwise kernels run on the calling
# thread alone (activation.SERIAL_BELOW). An explicit OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import numba  # noqa: E402
from threadpoolctl import ThreadpoolController  # noqa: E402

_blas_libraries = None  # threadpoolctl's controllers of the loaded BLAS libraries, found once


def _set_blas_threads(n: int) -> None:
    global _blas_libraries
    if _blas_libraries is None:
        _blas_libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    for library in _blas_libraries:
        library.set_num_threads(n)


def set_num_threads(n: int) -> None:
    """Run Numba kernels on ``n`` threads, 1 <= n <= NUMBA_NUM_THREADS (BLAS stays on one)."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"set_num_threads: n must be a positive int, got {n!r}")
    limit = numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise ValueError(
            f"set_num_threads: n={n} exceeds NUMBA_NUM_THREADS={limit}; set the environment "
            "variable NUMBA_NUM_THREADS before starting Python to allow more threads"
        )
    numba.set_num_threads(n)
    _set_blas_threads(1)


def get_num_threads() -> int:
    """The number of threads the Numba kernels use now."""
    return numba.get_num_threads()


_set_blas_threads(1)
