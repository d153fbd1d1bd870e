"""Fused softmax + cross-entropy, per sample (the engine applies the reduction)."""
from __future__ import annotations

import numpy as np


def softmax_cross_entropy_forward(
    logits: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """logits (N, K), target (N,) int64 in [0, K) -> (loss (N,), probs (N, K)).

    loss[n] = logsumexp(logits[n]) - logits[n, target[n]], with the row maximum subtracted
    first so that exp never overflows (finite for logits of +-1e4).
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(logits.shape[0]), target]
    return loss, np.exp(log_probs)


def softmax_cross_entropy_backward(
    gloss: np.ndarray, probs: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """gloss (N,), probs (N, K), target (N,) -> glogits (N, K) = (probs - onehot) * gloss[:, None]."""
    g = probs.copy()
    g[np.arange(probs.shape[0]), target] -= 1
    g *= gloss[:, None]
    return g
