"""Shape arithmetic shared by every backend and by the engine's argument checks.

This is the only place the convolution and pooling output-size formulas live.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

IntOrPair = Union[int, Sequence[int]]


def pair(value: IntOrPair, name: str) -> Tuple[int, int]:
    """Return ``value`` as an ``(h, w)`` pair of ints; ``name`` is used in error messages."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int) or (hasattr(value, "__index__") and not hasattr(value, "__len__")):
        v = int(value)
        return (v, v)
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
    if len(items) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return (int(items[0]), int(items[1]))


def conv_out_size(n: int, k: int, s: int, p: int, d: int = 1) -> int:
    """Output length of a convolution: floor((n + 2p - d(k-1) - 1) / s) + 1."""
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out_size(n: int, k: int, s: int, p: int, d: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a pooling window, as PyTorch computes it.

    With ``ceil_mode`` the last window may hang over the end, but it must start
    inside the input or the left padding (a window starting in the right padding is dropped).
    """
    span = n + 2 * p - d * (k - 1) - 1
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= n + p:
            out -= 1
    else:
        out = span // s + 1
    return out


def conv2d_out_hw(hw, kernel, stride, padding, dilation) -> Tuple[int, int]:
    """(OH, OW) of a 2-D convolution; every argument but ``hw`` is an (h, w) pair."""
    return tuple(
        conv_out_size(hw[i], kernel[i], stride[i], padding[i], dilation[i]) for i in range(2)
    )


def pool2d_out_hw(hw, kernel, stride, padding, dilation, ceil_mode) -> Tuple[int, int]:
    """(OH, OW) of a 2-D pooling; every argument but ``hw`` and ``ceil_mode`` is an (h, w) pair."""
    return tuple(
        pool_out_size(hw[i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode)
        for i in range(2)
    )


# --- launch limits of a 32-bit-indexed CUDA backend (checked before launching, testable without a GPU)

CUDA_GRID_LIMITS = (2**31 - 1, 65535, 65535)  # the most blocks along gridDim.x, .y, .z


def check_index_range(what: str, limit: int, **shapes) -> None:
    """Raise ValueError when an array of one of ``shapes`` has ``limit`` elements or more.

    ``what`` names the kernel; each keyword names an array and gives its shape.
    """
    for name, shape in shapes.items():
        size = 1
        for extent in shape:
            size *= int(extent)
        if size >= limit:
            raise ValueError(f"{what}: {name} of shape {tuple(shape)} has {size} elements, more than the "
                             f"kernels' 32-bit indexing allows (< {limit}); use a smaller batch or input")


def column_chunk_bytes(what: str, limit: int, k: int, out_hw, itemsize: int) -> int:
    """The most bytes of im2col columns (k, n*OH*OW) one chunk may hold so that indices below
    ``limit`` reach them all; ValueError when the columns of one sample are already too many."""
    per_sample = max(1, k * out_hw[0] * out_hw[1])
    check_index_range(what, limit, **{"columns of one sample": (k, out_hw[0] * out_hw[1])})
    return (limit - 1) // per_sample * per_sample * itemsize


def check_cuda_grid(what: str, grid, **shapes) -> None:
    """Raise ValueError when ``grid`` (blocks along x, y[, z]) exceeds CUDA's limits, naming ``shapes``."""
    for axis, (blocks, limit) in enumerate(zip(grid, CUDA_GRID_LIMITS)):
        if blocks > limit:
            named = ", ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items())
            raise ValueError(f"{what}: a launch needs {blocks} blocks along gridDim.{'xyz'[axis]}, more than "
                             f"CUDA's {limit} ({named})")


# --- adaptive pooling (added with the modern-CNN kernels)
def adaptive_bin(i: int, n_in: int, n_out: int) -> Tuple[int, int]:
    """[start, end) of output bin ``i`` of ``n_out`` over ``n_in`` inputs, as torch:
    start = floor(i * n_in / n_out), end = ceil((i + 1) * n_in / n_out)."""
    return (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
