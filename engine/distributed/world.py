"""Finding the MPI world: mpi4py's ``COMM_WORLD`` under ``mpiexec``, nothing for a lone process.

A process that no MPI launcher started never imports mpi4py, so a plain ``python -m ...`` run
behaves exactly as before (size 1), with or without MPI installed.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional

INSTALL_HINT = "run `bash scripts/install_mpi.sh` (pip installs the mpich and mpi4py wheels into .venv)"

# Variables the launchers set in every rank: MPICH's hydra (PMI_*), Open MPI, PMIx-based launchers.
LAUNCHER_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")


class MPIUnavailable(RuntimeError):
    """An MPI launcher started this process but mpi4py (or its MPI library) cannot be loaded."""


def launched_by_mpi(environ: Mapping[str, str] = os.environ) -> bool:
    """True when an MPI launcher (``mpiexec``/``mpirun``) started this process."""
    return any(name in environ for name in LAUNCHER_VARIABLES)


def world_comm(environ: Mapping[str, str] = os.environ) -> Optional[object]:
    """``mpi4py.MPI.COMM_WORLD`` under an MPI launcher, None for a lone process.

    Raises MPIUnavailable (one line, with the install command) when mpiexec started us without mpi4py.
    """
    if not launched_by_mpi(environ):
        return None
    try:
        from mpi4py import MPI
    except ImportError as exc:  # also raised when mpi4py is present but libmpi is not
        raise MPIUnavailable(f"engine.distributed: mpiexec started this process but MPI for Python cannot "
                             f"be loaded ({exc}); {INSTALL_HINT}") from None
    return MPI.COMM_WORLD


def local_rank(comm) -> int:
    """This rank's index among the ranks of ``comm`` on its machine (which GPU it should use).

    A collective over ``comm``: every rank must call it.
    """
    from mpi4py import MPI

    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_rank()
    finally:
        node.Free()
