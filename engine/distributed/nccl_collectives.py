"""Collectives on GPU (cupy) arrays through NCCL (``cupy.cuda.nccl``).

Rank 0 creates NCCL's unique id and MPI broadcasts it; then every rank joins one NCCL communicator
and gradient buffers are reduced GPU to GPU, never through the host. NCCL calls are queued on the
current CUDA stream (asynchronous, no timeout of ours: NCCL's own watchdog applies).
"""
from __future__ import annotations

from engine.distributed.world import INSTALL_HINT

NCCL_HINT = ("NCCL is not usable from CuPy here: install the CUDA build of CuPy with NCCL "
             "(pip install cupy-cuda12x nvidia-nccl-cu12)")


def load_nccl():
    """The ``cupy.cuda.nccl`` module, or a RuntimeError saying how to get it."""
    try:
        from cupy.cuda import nccl
    except ImportError as exc:
        raise RuntimeError(f"{NCCL_HINT} ({exc})") from None
    if not getattr(nccl, "available", True):
        raise RuntimeError(NCCL_HINT)
    return nccl


def current_stream_pointer() -> int:
    import cupy

    return cupy.cuda.get_current_stream().ptr


def local_rank(mpi_comm) -> int:
    """This rank's index among the ranks on its machine (which GPU it should use)."""
    if mpi_comm is None:
        return 0
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise RuntimeError(f"local_rank needs mpi4py: {INSTALL_HINT}") from exc
    node = mpi_comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return node.Get_rank()
    finally:
        node.Free()


class NcclCollectives:
    """In-place sum-allreduce and broadcast of cupy arrays between the ranks of ``mpi_comm``.

    ``nccl`` and ``stream`` default to ``cupy.cuda.nccl`` and the current CUDA stream (injectable
    so that the calls can be checked without a GPU).
    """

    def __init__(self, mpi_comm, rank: int, size: int, nccl=None, stream=current_stream_pointer):
        self.nccl = load_nccl() if nccl is None else nccl
        self.stream = stream
        unique_id = self.nccl.get_unique_id() if rank == 0 else None
        unique_id = mpi_comm.bcast(unique_id, root=0)
        self.comm = self.nccl.NcclCommunicator(size, unique_id, rank)
        self._dtypes = {"float16": self.nccl.NCCL_FLOAT16, "float32": self.nccl.NCCL_FLOAT32,
                        "float64": self.nccl.NCCL_FLOAT64}

    def _dtype(self, array) -> int:
        name = str(array.dtype)
        if name not in self._dtypes:
            raise TypeError(f"NCCL collectives take float16/32/64 arrays, got dtype {name}")
        return self._dtypes[name]

    def allreduce_sum_(self, array, what: str) -> None:
        """Replace ``array`` (a contiguous cupy array) with its elementwise sum over all ranks."""
        pointer = array.data.ptr
        self.comm.allReduce(pointer, pointer, array.size, self._dtype(array), self.nccl.NCCL_SUM, self.stream())

    def broadcast_(self, array, root: int, what: str) -> None:
        """Overwrite ``array`` on every rank with rank ``root``'s."""
        self.comm.bcast(array.data.ptr, array.size, self._dtype(array), root, self.stream())
