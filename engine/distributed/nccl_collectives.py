"""Collectives on GPU (cupy) arrays through NCCL (``cupy.cuda.nccl``).

Rank 0 creates NCCL's unique id and MPI broadcasts it; then every rank joins one NCCL communicator
and gradient buffers are reduced GPU to GPU, never through the host. NCCL calls are queued on the
current CUDA stream, so later work on that stream sees the result. They have no timeout: the MPI
watchdog does not cover them, and a peer that never joins leaves the stream waiting.
"""
from __future__ import annotations

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
