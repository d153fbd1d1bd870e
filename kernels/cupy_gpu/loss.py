"""Fused softmax + cross-entropy: one block per row with a stable log-sum-exp."""

from __future__ import annotations

import cupy

from ._compile import check_int32, ints, kernel, launch_1d


def softmax_cross_entropy_forward(logits, target):
    """logits (N, K), target (N,) int64 -> (loss (N,), probs (N, K)), per-sample loss."""
    N, K = logits.shape
    check_int32(logits.size)
    loss = cupy.empty((N,), logits.dtype)
    probs = cupy.empty((N, K), logits.dtype)
    if N > 0:
        block = min(1024, max(32, -(-K // 32) * 32))
        kern = kernel("LOSS", "softmax_cross_entropy_forward", logits.dtype)
        kern((N,), (block,), (logits, target, loss, probs) + ints(K))
    return loss, probs


def softmax_cross_entropy_backward(gloss, probs, target):
    """glogits (N, K) = gloss[:, None] * (probs - one_hot(target))."""
    N, K = probs.shape
    glogits = cupy.empty((N, K), probs.dtype)
    args = (gloss, probs, target, glogits) + ints(glogits.size, K)
    launch_1d(kernel("LOSS", "softmax_cross_entropy_backward", probs.dtype), glogits.size, args)
    return glogits
