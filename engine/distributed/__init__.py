"""Data-parallel training on MPI ranks (mpi4py; NCCL through CuPy for GPU arrays).

``mpiexec -n K python script.py``: every rank trains a copy of the model on its share of each
global batch; :class:`DistributedContext` broadcasts the initial parameters, averages gradients,
shards batches, reduces metrics, checks the ranks agree on the configuration, and aborts the job
when a rank fails. Without mpiexec it is rank 0 of 1 and changes nothing (mpi4py not even imported).
"""
from engine.distributed.config_check import ConfigMismatch
from engine.distributed.context import DistributedContext
from engine.distributed.sampler import ShardedDataLoader, shard
from engine.distributed.world import MPIUnavailable, launched_by_mpi

__all__ = ["ConfigMismatch", "DistributedContext", "MPIUnavailable", "ShardedDataLoader",
           "launched_by_mpi", "shard"]
