"""DataLoader: mini-batches of in-memory arrays as engine Tensors, on the model's device.

The whole dataset is moved to the device once (on cuda: one host-to-device copy); each batch is
a slice of it (``X[order[i:i + B]]``), so there is no per-sample Python work. Shuffling is
deterministic: epoch ``e`` uses the permutation of a generator seeded by ``(seed, e)``, so a run
resumed at epoch ``e`` (and step ``k``, see :meth:`DataLoader.batches`) sees the same batches.
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np

import engine


def _dataset_arrays(dataset):
    """``(inputs, targets)`` of a dataset with ``.data``/``.targets`` or of an ``(X, y)`` pair."""
    if isinstance(dataset, (tuple, list)) and len(dataset) == 2:
        return dataset[0], dataset[1]
    return dataset.data, dataset.targets


class DataLoader:
    """Iterate over ``(inputs, targets)`` Tensor mini-batches of an in-memory dataset.

    Args:
        dataset: an object with ``.data`` (N, ...) and ``.targets`` (N,) numpy arrays (e.g.
            :class:`FashionMNIST`), or a pair ``(inputs, targets)``.
        batch_size: samples per batch.
        shuffle: a new permutation every epoch (else the dataset's order).
        drop_last: drop the last batch when it is smaller than ``batch_size`` (kept by default).
        seed: seeds the permutations (epoch ``e`` uses ``numpy.random.default_rng([seed, e])``);
            None draws one at construction, fixed for this loader's life.
        device: where batches are produced (``'cpu'``, ``'cuda'``, an ``engine.device``); None: cpu.

    Iterating runs one epoch; the epoch counter then advances (or set it with :meth:`set_epoch`).

    Example::

        >>> loader = DataLoader(FashionMNIST(train=False), batch_size=256, shuffle=True, seed=0)
        >>> X, y = next(iter(loader))      # X: (256, 1, 28, 28) float32, y: (256,) int64
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: Optional[int] = None, device=None):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        inputs, targets = _dataset_arrays(dataset)
        if len(inputs) != len(targets):
            raise ValueError(f"dataset has {len(inputs)} inputs but {len(targets)} targets")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(np.random.SeedSequence().entropy % 2**63) if seed is None else int(seed)
        self.epoch = 0
        self.device = engine.device(device if device is not None else "cpu")
        # Moved once (no copy on the CPU); batches are slices of these device-resident tensors.
        self._inputs = engine.from_numpy(np.ascontiguousarray(inputs)).to(self.device)
        self._targets = engine.from_numpy(np.ascontiguousarray(targets)).to(self.device)

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self._targets)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        """Samples per epoch (fewer than the dataset's with ``drop_last``)."""
        n = len(self._targets)
        return len(self) * self.batch_size if self.drop_last else n

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose permutation the next iteration uses."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch`` as an int64 numpy array (the identity without shuffle)."""
        n = len(self._targets)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n).astype(np.int64)

    def batches(self, epoch: int, start: int = 0) -> Iterator[Tuple[engine.Tensor, engine.Tensor]]:
        """The batches of ``epoch`` from batch index ``start`` on (resuming mid-epoch)."""
        order = self.order(epoch)
        index = engine.from_numpy(order).to(self.device) if self.shuffle else None  # one transfer per epoch
        for b in range(start, len(self)):
            lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, len(order))
            rows = slice(lo, hi) if index is None else index[lo:hi]
            yield self._inputs[rows], self._targets[rows]

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)
