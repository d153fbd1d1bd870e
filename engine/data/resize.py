"""Resizing image batches in NumPy (the book's ``Resize(96)``/``Resize(224)`` for FashionMNIST).

Both modes are torch's ``F.interpolate`` without anti-aliasing: ``'bilinear'`` with
``align_corners=False`` (source coordinate ``(i + 0.5) * in / out - 0.5``, clamped at 0) and
``'nearest'`` (source index ``floor(i * in / out)``). Each is a separable linear map: an
``(out, in)`` matrix per axis, so a batch is two matrix products, ``Ry @ X @ Rx.T``.
"""
from __future__ import annotations

import numpy as np

MODES = ("bilinear", "nearest")


def interpolation_matrix(size_in: int, size_out: int, mode: str = "bilinear") -> np.ndarray:
    """``(size_out, size_in)`` float64 weights: row i holds how output pixel i mixes the input pixels."""
    if mode not in MODES:
        raise ValueError(f"resize mode must be one of {', '.join(MODES)}, got {mode!r}")
    for name, value in (("size_in", size_in), ("size_out", size_out)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    weights = np.zeros((size_out, size_in))
    rows = np.arange(size_out)
    scale = size_in / size_out
    if mode == "nearest":
        weights[rows, np.minimum(np.floor(rows * scale).astype(np.int64), size_in - 1)] = 1.0
        return weights
    source = np.maximum((rows + 0.5) * scale - 0.5, 0.0)
    low = np.minimum(np.floor(source).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    fraction = source - low
    np.add.at(weights, (rows, low), 1.0 - fraction)
    np.add.at(weights, (rows, high), fraction)  # at the last pixel low == high: the weights add to 1
    return weights


def resize_images(images: np.ndarray, size: int, mode: str = "bilinear") -> np.ndarray:
    """``(..., H, W)`` images -> ``(..., size, size)``, in ``images``' float dtype (float32 stays float32)."""
    images = np.asarray(images)
    if images.ndim < 2:
        raise ValueError(f"resize_images: expected images of shape (..., H, W), got shape {images.shape}")
    dtype = images.dtype if np.issubdtype(images.dtype, np.floating) else np.float32
    rows = interpolation_matrix(images.shape[-2], size, mode).astype(dtype)
    cols = interpolation_matrix(images.shape[-1], size, mode).astype(dtype)
    return np.ascontiguousarray(rows @ images.astype(dtype, copy=False) @ cols.T)


class ResizedLoader:
    """A loader whose batches' images are resized to ``size x size`` (targets unchanged).

    Wraps a :class:`~engine.data.DataLoader` (or a sharded one): ``len``, ``num_samples`` and
    ``batches(epoch, start)`` are the wrapped loader's. The dataset stays 28x28 on its device and
    each batch is resized on the host when it is drawn, so memory grows with the batch, not with
    the dataset (60,000 images at 224x224 would be 12 GB); on a GPU that is a round trip per batch.
    """

    def __init__(self, loader, size: int, mode: str = "bilinear"):
        interpolation_matrix(1, size, mode)  # checks size and mode now, not at the first batch
        self.loader, self.size, self.mode = loader, size, mode

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def num_samples(self) -> int:
        return self.loader.num_samples

    def batches(self, epoch: int, start: int = 0):
        import engine

        for X, y in self.loader.batches(epoch, start):
            resized = resize_images(X.cpu().numpy(), self.size, self.mode)
            yield engine.tensor(resized, device=X.device), y
