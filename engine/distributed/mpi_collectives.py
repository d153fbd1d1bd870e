"""Collectives on host (numpy) arrays over MPI, each one bounded by a timeout.

Every operation is MPI's nonblocking form (``Iallreduce``, ``Ibcast``, ``Iallgather``) polled until
it completes or ``timeout`` seconds pass, so a rank whose peer died or hangs raises
:class:`CollectiveTimeout` instead of waiting forever.
"""
from __future__ import annotations

import time

import numpy as np

BUSY_POLL_SECONDS = 0.005  # poll without sleeping this long (a step's allreduce usually finishes in it)
IDLE_POLL_SECONDS = 0.001  # then sleep this long between polls, leaving the core to others


class CollectiveTimeout(RuntimeError):
    """A collective operation did not complete in time: another rank stopped, hangs or lags far behind."""


class MPICollectives:
    """In-place sum-allreduce, broadcast and allgather of numpy arrays on an mpi4py communicator."""

    def __init__(self, comm, timeout: float):
        from mpi4py import MPI

        self.comm, self.timeout, self._mpi = comm, float(timeout), MPI
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def allreduce_sum_(self, array: np.ndarray, what: str) -> None:
        """Replace ``array`` (contiguous) with its elementwise sum over all ranks."""
        self._wait(self.comm.Iallreduce(self._mpi.IN_PLACE, array, op=self._mpi.SUM), what)

    def broadcast_(self, array: np.ndarray, root: int, what: str) -> None:
        """Overwrite ``array`` on every rank with rank ``root``'s."""
        self._wait(self.comm.Ibcast(array, root=root), what)

    def allgather(self, array: np.ndarray, what: str) -> np.ndarray:
        """``(size, *array.shape)``: every rank's ``array``, in rank order."""
        gathered = np.empty((self.size,) + array.shape, dtype=array.dtype)
        self._wait(self.comm.Iallgather(np.ascontiguousarray(array), gathered), what)
        return gathered

    def _wait(self, request, what: str) -> None:
        started = time.monotonic()
        while not request.Test():
            waited = time.monotonic() - started
            if waited > self.timeout:
                raise CollectiveTimeout(
                    f"rank {self.rank} of {self.size}: {what} did not complete within {self.timeout:g} s; "
                    f"another rank has stopped, hangs or is far behind (set ENGINE_DIST_TIMEOUT to wait longer)")
            if waited > BUSY_POLL_SECONDS:
                time.sleep(IDLE_POLL_SECONDS)
