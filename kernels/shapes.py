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


# --- adaptive pooling (added with the modern-CNN kernels)
def adaptive_bin(i: int, n_in: int, n_out: int) -> Tuple[int, int]:
    """[start, end) of output bin ``i`` of ``n_out`` over ``n_in`` inputs, as torch:
    start = floor(i * n_in / n_out), end = ceil((i + 1) * n_in / n_out)."""
    return (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
