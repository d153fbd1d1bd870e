"""The im2col workspace budget shared by every backend that unfolds its input.

im2col builds a (C*KH*KW, N*OH*OW) matrix; a backend splits the batch into chunks so that the
unfolded buffer of one chunk never exceeds this many bytes (one sample at least is always processed).
"""
from __future__ import annotations

DEFAULT_WORKSPACE_BYTES = 256 * 1024 * 1024
_limit = DEFAULT_WORKSPACE_BYTES


def get_workspace_limit() -> int:
    """The current im2col workspace budget in bytes."""
    return _limit


def set_workspace_limit(nbytes: int) -> None:
    """Set the im2col workspace budget in bytes (a positive int)."""
    global _limit
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes <= 0:
        raise ValueError(f"workspace limit must be a positive int number of bytes, got {nbytes!r}")
    _limit = nbytes


def batch_chunk(n: int, bytes_per_sample: int) -> int:
    """How many of ``n`` samples fit in the budget at once (at least 1)."""
    return max(1, min(n, _limit // max(1, bytes_per_sample)))
