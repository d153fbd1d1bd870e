"""Fused softmax + cross-entropy, per sample, in one pass over each row of logits."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)  # (N, K) is small: waking threads costs more than the work
def _forward(logits, target, loss, probs):
    n, k = logits.shape
    for i in range(n):
        row = logits[i]
        top = row[0]
        for j in range(1, k):
            top = max(top, row[j])
        total = 0.0  # float64 accumulation: the sum of k exponentials
        for j in range(k):
            e = np.exp(row[j] - top)
            probs[i, j] = e
            total += e
        for j in range(k):
            probs[i, j] /= total
        loss[i] = np.log(total) - (row[target[i]] - top)


@njit(cache=True)
def _backward(gloss, probs, target, glogits):
    n, k = probs.shape
    for i in range(n):
        g = gloss[i]
        for j in range(k):
            glogits[i, j] = probs[i, j] * g
        glogits[i, target[i]] -= g


def softmax_cross_entropy_forward(logits, target):
    """logits (N, K), target (N,) int64 in [0, K) -> (loss (N,), probs (N, K)).

    loss[n] = log(sum(exp(logits[n] - max))) - (logits[n, target[n]] - max): finite for
    logits of +-1e4.
    """
    logits, target = np.ascontiguousarray(logits), np.ascontiguousarray(target)
    loss = np.empty(logits.shape[0], logits.dtype)
    probs = np.empty(logits.shape, logits.dtype)
    _forward(logits, target, loss, probs)
    return loss, probs


def softmax_cross_entropy_backward(gloss, probs, target):
    """gloss (N,), probs (N, K), target (N,) -> glogits (N, K) = (probs - onehot) * gloss[:, None]."""
    gloss, probs, target = (np.ascontiguousarray(a) for a in (gloss, probs, target))
    glogits = np.empty(probs.shape, probs.dtype)
    _backward(gloss, probs, target, glogits)
    return glogits
