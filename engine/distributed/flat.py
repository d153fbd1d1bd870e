"""One flat buffer for many arrays: a single collective call instead of one per parameter."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

from engine.backend import backend_for


def flat_layout(shapes: Sequence[Tuple[int, ...]]) -> List[Tuple[int, int]]:
    """``[(lo, hi), ...]``: where each array of ``shapes`` lies in the flat buffer."""
    bounds, offset = [], 0
    for shape in shapes:
        size = 1
        for n in shape:
            size *= n
        bounds.append((offset, offset + size))
        offset += size
    return bounds


def pack(arrays: Sequence[Optional[object]], shapes, like, extra: int = 0):
    """A contiguous 1-D array of every array of ``arrays`` raveled end to end (None: zeros of its
    shape), then ``extra`` more slots, on the device and with the dtype of ``like``."""
    bounds = flat_layout(shapes)
    xp = backend_for(like).xp  # numpy, or cupy for a GPU array
    flat = xp.zeros(bounds[-1][1] + extra if bounds else extra, dtype=like.dtype)
    for array, (lo, hi) in zip(arrays, bounds):
        if array is not None:
            flat[lo:hi] = array.reshape(-1)
    return flat, bounds


def common_dtype(arrays, what: str):
    dtypes = sorted({str(a.dtype) for a in arrays})
    if len(dtypes) > 1:
        raise TypeError(f"{what}: all parameters must have one dtype to share a flat buffer, got {dtypes}")
    return arrays[0].dtype
