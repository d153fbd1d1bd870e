"""Softmax, log-softmax and the fused softmax-cross-entropy."""
from __future__ import annotations

from engine.autograd import Function
from engine.backend import backend_for, contiguous


class LogSoftmax(Function):
    def forward(self, x, dim):
        xp = backend_for(x).xp
        shifted = x - x.max(axis=dim, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        self.dim = dim
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        xp = backend_for(gy).xp
        return gy - xp.exp(y) * gy.sum(axis=self.dim, keepdims=True)


class Softmax(Function):
    def forward(self, x, dim):
        xp = backend_for(x).xp
        e = xp.exp(x - x.max(axis=dim, keepdims=True))
        y = e / e.sum(axis=dim, keepdims=True)
        self.dim = dim
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved_tensors
        return y * (gy - (gy * y).sum(axis=self.dim, keepdims=True))


class SoftmaxCrossEntropy(Function):
    """Per-sample loss -log softmax(logits)[target] for logits (N, K), target (N,) int."""

    def forward(self, logits, target):
        loss, probs = backend_for(logits).softmax_cross_entropy_forward(contiguous(logits), contiguous(target))
        self.save_for_backward(probs, contiguous(target))
        return loss

    def backward(self, gloss):
        probs, target = self.saved_tensors
        return backend_for(gloss).softmax_cross_entropy_backward(contiguous(gloss), probs, target), None
