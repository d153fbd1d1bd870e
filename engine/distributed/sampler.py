"""Sharding batches by rank: each rank takes a contiguous slice of every global batch.

The global order is the 1-process :class:`~engine.data.DataLoader` order (the permutation of
``(seed, epoch)``), cut into global batches of ``batch_size`` B; rank r of K takes samples
``[r*n//K, (r+1)*n//K)`` of each batch of n samples (B/K of a full batch). The ranks' slices of a
batch together are exactly the 1-process batch, so the same seed gives the same training.
"""
from __future__ import annotations

from typing import Iterator, Tuple

import engine
from engine.data import DataLoader


def shard_bounds(n: int, rank: int, size: int) -> Tuple[int, int]:
    """``(lo, hi)``: rank ``rank``'s part of ``n`` items split into ``size`` contiguous parts."""
    return n * rank // size, n * (rank + 1) // size


def shard(items, rank: int, size: int):
    """Rank ``rank``'s contiguous part of ``items`` (an array or sequence of n items, n // size or one more)."""
    lo, hi = shard_bounds(len(items), rank, size)
    return items[lo:hi]


class ShardedDataLoader(DataLoader):
    """A :class:`DataLoader` whose batches are this rank's share of the global batches.

    Args are the DataLoader's, with ``batch_size`` the global batch (B, divisible by ``size``), plus
    ``rank`` and ``size``. ``len()`` and ``num_samples`` stay global (batches per epoch, samples per
    epoch over all ranks), so positions ``(epoch, step)`` mean the same for any number of ranks.

    Example (rank 1 of 2)::

        >>> loader = ShardedDataLoader((X, y), batch_size=256, shuffle=True, seed=0, rank=1, size=2)
        >>> Xb, yb = next(iter(loader))    # samples 128..255 of the 1-process loader's first batch
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed=None, device=None, *, rank: int, size: int):
        if not 0 <= rank < size:
            raise ValueError(f"rank must be in [0, size), got rank={rank}, size={size}")
        if isinstance(batch_size, int) and batch_size % size:
            raise ValueError(f"batch_size (the global batch) must be divisible by the {size} ranks, "
                             f"got {batch_size}")
        super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                         device=device)
        self.rank, self.size = rank, size
        last = len(self._targets) % self.batch_size
        if not drop_last and 0 < last < size:
            raise ValueError(f"the last batch has {last} samples, fewer than the {size} ranks: use drop_last "
                             f"or a batch_size that leaves at least {size} samples in it")

    @property
    def local_batch_size(self) -> int:
        """Samples per rank in a full batch (B/K)."""
        return self.batch_size // self.size

    def batches(self, epoch: int, start: int = 0) -> Iterator[Tuple[engine.Tensor, engine.Tensor]]:
        """This rank's part of every global batch of ``epoch`` from batch index ``start`` on."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, len(order))
            rows = engine.from_numpy(shard(order[lo:hi], self.rank, self.size)).to(self.device)
            yield self._inputs[rows], self._targets[rows]
