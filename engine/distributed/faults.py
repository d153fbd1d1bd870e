"""Stopping every rank when one fails, so that no rank waits forever for a dead peer.

A rank that raises prints one line naming itself and the error, then calls ``MPI_Abort``, which
makes the launcher terminate every rank of the job. Peers that stop without aborting (killed, or
stuck) are caught by the collectives' watchdog (see :mod:`engine.distributed.mpi_collectives`).
"""
from __future__ import annotations

import sys
import traceback


def failure_line(rank: int, size: int, exc: BaseException) -> str:
    return f"engine.distributed: rank {rank} of {size} failed: {type(exc).__name__}: {exc}; stopping all ranks"


def abort_job(comm, rank: int, size: int, exc: BaseException, show_traceback: bool = False) -> None:
    """Report ``exc`` on stderr and abort the whole MPI job (does not return)."""
    if show_traceback:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(failure_line(rank, size, exc), file=sys.stderr, flush=True)
    sys.stdout.flush()
    comm.Abort(1)


def install_excepthook(comm, rank: int, size: int) -> None:
    """Abort the job on an exception that nothing caught (after Python prints its traceback)."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        previous(exc_type, exc, tb)
        if not getattr(exc, "raised_on_all_ranks", False):
            abort_job(comm, rank, size, exc)

    sys.excepthook = hook
