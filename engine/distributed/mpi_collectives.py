"""Collectives on host (numpy) arrays over MPI, each one bounded by a timeout.

The calls are MPI's blocking ones (``Allreduce``, ``Bcast``, ``Allgather``: on this machine MPICH's
blocking allreduce of LeNet's gradients costs a third of its nonblocking one polled with ``Test``
when ranks arrive at different times). A watchdog thread bounds them: a collective still running
after ``timeout`` seconds (a peer died, hangs or lags far behind) prints one line and aborts the job.
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

import numpy as np


def timeout_line(rank: int, size: int, what: str, timeout: float) -> str:
    return (f"engine.distributed: rank {rank} of {size}: {what} did not complete within {timeout:g} s; another "
            f"rank has stopped, hangs or is far behind (set ENGINE_DIST_TIMEOUT to wait longer); stopping all ranks")


class Watchdog:
    """Aborts the MPI job when the collective inside :meth:`guard` runs longer than ``timeout`` seconds.

    The thread wakes every ``min(1 s, timeout / 4)`` to look (``timeout`` may be changed at any time);
    guarding a call costs two attribute writes.
    """

    def __init__(self, comm, timeout: float):
        self.comm, self.timeout = comm, float(timeout)
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._current = None  # (what, started) while a collective runs: one tuple, so one atomic read
        self._thread = threading.Thread(target=self._watch, name="engine.distributed watchdog", daemon=True)
        self._thread.start()

    @contextmanager
    def guard(self, what: str):
        self._current = (what, time.monotonic())
        try:
            yield
        finally:
            self._current = None

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            current = self._current
            if current is not None and time.monotonic() - current[1] > self.timeout:
                print(timeout_line(self.rank, self.size, current[0], self.timeout), file=sys.stderr, flush=True)
                self.comm.Abort(1)


class MPICollectives:
    """In-place sum-allreduce, broadcast and allgather of numpy arrays on an mpi4py communicator."""

    def __init__(self, comm, timeout: float):
        from mpi4py import MPI

        self.comm, self._mpi = comm, MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.watchdog = Watchdog(comm, timeout)

    def allreduce_sum_(self, array: np.ndarray, what: str) -> None:
        """Replace ``array`` (contiguous) with its elementwise sum over all ranks."""
        with self.watchdog.guard(what):
            self.comm.Allreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM)

    def broadcast_(self, array: np.ndarray, root: int, what: str) -> None:
        """Overwrite ``array`` on every rank with rank ``root``'s."""
        with self.watchdog.guard(what):
            self.comm.Bcast(array, root=root)

    def allgather(self, array: np.ndarray, what: str) -> np.ndarray:
        """``(size, *array.shape)``: every rank's ``array``, in rank order."""
        gathered = np.empty((self.size,) + array.shape, dtype=array.dtype)
        with self.watchdog.guard(what):
            self.comm.Allgather(np.ascontiguousarray(array), gathered)
        return gathered
