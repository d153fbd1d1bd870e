"""``DistributedContext``: what a training script calls to train one model data-parallel on MPI ranks.

Under ``mpiexec -n K`` each of the K processes holds a full copy of the model and trains on its
K-th of every global batch; gradients are averaged across ranks after ``backward`` so every copy
takes the same step. A lone process (no mpiexec) is rank 0 of size 1 and every call is a no-op.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import numpy as np

from engine.autograd import no_grad
from engine.data import DataLoader
from engine.device import array_device
from engine.distributed.config_check import ConfigMismatch, config_digest, describe_differences
from engine.distributed.faults import abort_job, install_excepthook
from engine.distributed.flat import common_dtype, pack
from engine.distributed.mpi_collectives import MPICollectives
from engine.distributed.nccl_collectives import NcclCollectives
from engine.distributed.sampler import ShardedDataLoader, shard
from engine.distributed.world import local_rank, world_comm
from engine.tensor import Tensor

DEFAULT_TIMEOUT = 300.0  # seconds any collective may wait for the other ranks (ENGINE_DIST_TIMEOUT)


def timeout_from_env() -> float:
    text = os.environ.get("ENGINE_DIST_TIMEOUT", "")
    try:
        return float(text) if text.strip() else DEFAULT_TIMEOUT
    except ValueError:
        raise ValueError(f"ENGINE_DIST_TIMEOUT must be a number of seconds, got {text!r}") from None


def collectives_for(array, mpi, nccl_factory):
    """NCCL (``nccl_factory()``) for a GPU array, ``mpi`` for a host array."""
    return nccl_factory() if array_device(array).type == "cuda" else mpi


class DistributedContext:
    """This process's place in the MPI job, and the collectives data-parallel training needs.

    Args:
        timeout: seconds a collective may wait for the other ranks before the job is aborted
            (default ``$ENGINE_DIST_TIMEOUT`` or 300).
        comm: an mpi4py communicator (default: COMM_WORLD under mpiexec, none for a lone process).

    Attributes: ``rank``, ``size``, ``is_main`` (rank 0: the one that prints and writes files),
    ``local_rank`` (the rank's index on its machine: the GPU it should use).

    Use it as a context manager around training: an exception in any rank aborts the whole job
    (one line on stderr names the rank and the error) instead of leaving the others waiting.
    """

    def __init__(self, timeout: Optional[float] = None, comm=None):
        self.comm = world_comm() if comm is None else comm
        self.rank = 0 if self.comm is None else self.comm.Get_rank()
        self.size = 1 if self.comm is None else self.comm.Get_size()
        self.is_main = self.rank == 0
        self._mpi = None
        self.timeout = timeout_from_env() if timeout is None else timeout  # checked before the watchdog starts
        self._mpi = MPICollectives(self.comm, self.timeout) if self.size > 1 else None
        self._nccl = None
        # a collective (ranks of one machine): taken here, where every rank is, not on first use
        self.local_rank = local_rank(self.comm) if self.size > 1 else 0
        if self.size > 1:
            install_excepthook(self.comm, self.rank, self.size)

    @property
    def timeout(self) -> float:
        """Seconds a collective may wait for the other ranks before the job is aborted (settable)."""
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {seconds!r}")
        self._timeout = float(seconds)
        if self._mpi is not None:
            self._mpi.watchdog.timeout = self._timeout

    def __repr__(self):
        return f"DistributedContext(rank={self.rank}, size={self.size})"

    # ------------------------------------------------------------------ faults
    def __enter__(self) -> "DistributedContext":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or self.size == 1 or getattr(exc, "raised_on_all_ranks", False):
            return False
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            return False
        abort_job(self.comm, self.rank, self.size, exc, show_traceback=not isinstance(exc, SystemExit))
        return False  # not reached: MPI_Abort ends the process

    # ------------------------------------------------------------------ placement
    def _collectives(self, array):
        return collectives_for(array, self._mpi, self._nccl_collectives)

    def _nccl_collectives(self) -> NcclCollectives:
        if self._nccl is None:
            self._nccl = NcclCollectives(self.comm, self.rank, self.size)
        return self._nccl

    # ------------------------------------------------------------------ model state
    def broadcast_module(self, model, root: int = 0) -> None:
        """Copy rank ``root``'s parameters into every rank's ``model`` (one flat broadcast).

        The engine's Module registers parameters only (it has no buffers yet), so parameters are its state.
        """
        params = list(model.parameters())
        if self.size == 1 or not params:
            return
        arrays = [p._data for p in params]
        common_dtype(arrays, "broadcast_module")
        flat, bounds = pack(arrays, [a.shape for a in arrays], like=arrays[0])
        self._collectives(flat).broadcast_(flat, root, "the parameter broadcast")
        if self.rank != root:
            with no_grad():  # an in-place copy the graph need not record (it bumps the versions)
                for p, (lo, hi) in zip(params, bounds):
                    p.copy_(flat[lo:hi].reshape(p.shape))

    def average_gradients(self, model, samples: Optional[int] = None) -> None:
        """Replace every parameter's gradient with its average over the ranks (one flat allreduce).

        ``samples``: this rank's batch size. Given, the average is weighted by it, so uneven shards
        (a last batch that does not split evenly) still give exactly the 1-process gradient of the
        mean loss; None weighs ranks equally. A parameter with no gradient on this rank counts as
        zeros, and every trainable parameter gets the averaged gradient.
        """
        params = [p for p in model.parameters() if p.requires_grad]
        if self.size == 1 or not params:
            return
        common_dtype([p._data for p in params], "average_gradients")
        grads = [None if p.grad is None else p.grad._data for p in params]
        flat, bounds = pack(grads, [p._data.shape for p in params], like=params[0]._data, extra=1)
        flat[-1] = 1  # the weight slot: after the sum it holds the total weight
        if samples is not None:
            flat *= samples
        self._collectives(flat).allreduce_sum_(flat, "the gradient allreduce")
        flat[:-1] /= flat[-1]
        for p, (lo, hi) in zip(params, bounds):
            p.grad = Tensor._wrap(flat[lo:hi].reshape(p._data.shape).copy())

    # ------------------------------------------------------------------ data
    def shard(self, items):
        """This rank's contiguous part of ``items`` (e.g. a global batch's sample indices)."""
        return items if self.size == 1 else shard(items, self.rank, self.size)

    def data_loader(self, dataset, batch_size: int, **kwargs) -> DataLoader:
        """A DataLoader whose batches are this rank's share of global batches of ``batch_size``
        (a plain DataLoader for a lone process). Keyword arguments are DataLoader's."""
        if self.size == 1:
            return DataLoader(dataset, batch_size=batch_size, **kwargs)
        return ShardedDataLoader(dataset, batch_size=batch_size, rank=self.rank, size=self.size, **kwargs)

    # ------------------------------------------------------------------ metrics and agreement
    def reduce_metrics(self, metrics: Mapping[str, Any], op: str = "mean") -> Dict[str, Any]:
        """The sum (``op='sum'``) or mean (``'mean'``) over ranks of each value of ``metrics``.

        Values are numbers (returned as floats) or numpy arrays (returned with their shape and dtype;
        integer counts are summed exactly up to 2**53). Every rank must pass the same keys and shapes.
        """
        if op not in ("sum", "mean"):
            raise ValueError(f"reduce_metrics: op must be 'sum' or 'mean', got {op!r}")
        values = {k: np.asarray(v) for k, v in metrics.items()}
        if self.size > 1:
            flat, bounds = pack([v.astype(np.float64) for v in values.values()],
                                [v.shape for v in values.values()], like=np.zeros(0, np.float64))
            self._mpi.allreduce_sum_(flat, "the metrics allreduce")
            if op == "mean":
                flat /= self.size
            values = {k: flat[lo:hi].reshape(v.shape).astype(v.dtype if op == "sum" else np.float64)
                      for (k, v), (lo, hi) in zip(values.items(), bounds)}
        return {k: float(v) if v.ndim == 0 else v for k, v in values.items()}

    def reduce_evaluation(self, result):
        """Combine per-rank ``(mean_loss, accuracy, confusion)`` results (``training.loop.evaluate``
        on this rank's shard) into those of the whole evaluation set."""
        loss, _, confusion = result
        count = int(confusion.sum())
        total = self.reduce_metrics({"loss_sum": loss * count, "confusion": confusion}, op="sum")
        confusion = total["confusion"]
        count = int(confusion.sum())
        return total["loss_sum"] / count, float(np.trace(confusion)) / count, confusion

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on at least one (e.g. a Ctrl-C stop request)."""
        return self.reduce_metrics({"flag": float(bool(flag))}, op="sum")["flag"] > 0

    def barrier(self) -> None:
        """Wait until every rank gets here (bounded by the timeout)."""
        if self.size > 1:
            self._mpi.allgather(np.zeros(1, np.uint8), "the barrier")

    def check_same_config(self, config: Mapping[str, Any]) -> None:
        """Raise ConfigMismatch on every rank, naming the differing keys, unless all ranks passed the
        same configuration (compared by a SHA-256 of its JSON)."""
        if self.size == 1:
            return
        digest = np.frombuffer(config_digest(config), dtype=np.uint8)
        digests = self._mpi.allgather(digest, "the configuration check")
        if (digests == digests[0]).all():
            return
        configs = self.comm.allgather(dict(config))  # every rank is here: the digests arrived
        raise ConfigMismatch("the ranks were started with different configurations ("
                             f"{describe_differences(configs)}); start every rank with the same arguments")
