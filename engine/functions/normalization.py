"""Batch normalisation: the Function (train and eval) and its checked wrapper ``batch_norm``.

The kernels see (N, C, L): BatchNorm1d's (N, C) is L = 1, BatchNorm2d's (N, C, H, W) is L = H*W.
"""
from __future__ import annotations

from engine.autograd import Function, Variable
from engine.backend import backend_for, contiguous
from engine.functions.checks import as_float_tensors


class BatchNorm(Function):
    """y (N,C,...) = (x - mean) / sqrt(var + eps) * weight + bias, per channel (dim 1).

    With ``use_batch_stats`` mean and var are the batch's (biased var), and ``running_mean`` /
    ``running_var`` (raw arrays, or None) move towards them by ``momentum`` (running_var gets the
    unbiased batch variance, as torch); otherwise the running statistics normalise.
    """

    def forward(self, x, weight, bias, running_mean, running_var, use_batch_stats, momentum, eps):
        backend = backend_for(x)
        xp = backend.xp
        self.shape = x.shape  # (N, C, ...): the kernels see (N, C, L); the output is not a view of anything
        x = contiguous(x).reshape(x.shape[0], x.shape[1], -1)
        C = x.shape[1]
        w = xp.ones(C, x.dtype) if weight is None else contiguous(weight)
        b = xp.zeros(C, x.dtype) if bias is None else contiguous(bias)
        if use_batch_stats:
            y, mean, var = backend.batch_norm_forward_train(x, w, b, eps)
            if running_mean is not None:
                count = x.shape[0] * x.shape[2]
                running_mean[...] = (1 - momentum) * running_mean + momentum * mean
                running_var[...] = (1 - momentum) * running_var + momentum * var * (count / (count - 1))
        else:
            y = backend.batch_norm_forward_eval(x, running_mean, running_var, w, b, eps)
            mean, var = running_mean.copy(), running_var
        invstd = (1 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
        self.use_batch_stats = use_batch_stats
        self.save_for_backward(x, mean, invstd, w)
        return y.reshape(self.shape)

    def backward(self, gy):
        x, mean, invstd, w = self.saved_tensors
        gy = contiguous(gy).reshape(x.shape)
        gx, gw, gb = backend_for(gy).batch_norm_backward(gy, x, mean, invstd, w, self.use_batch_stats)
        return (gx.reshape(self.shape) if self.needs_input_grad[0] else None,
                gw if self.needs_input_grad[1] else None,
                gb if self.needs_input_grad[2] else None)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Checked entry point; see ``engine.nn.functional.batch_norm``."""
    (input,) = as_float_tensors("batch_norm", input=input)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must be at least 2-D (N, C, ...), got input shape {tuple(input.shape)}")
    shape = tuple(input.shape)
    C = shape[1]
    named = {"running_mean": running_mean, "running_var": running_var, "weight": weight, "bias": bias}
    for name, value in named.items():
        if value is None:
            continue
        if not isinstance(value, Variable):
            raise TypeError(f"batch_norm: argument '{name}' must be a Tensor or None, got {type(value).__name__}")
        if tuple(value.shape) != (C,):
            raise ValueError(f"batch_norm: {name} must have shape ({C},) for input shape {shape} "
                             f"(C is dim 1), got {name} shape {tuple(value.shape)}")
        if value.dtype != input.dtype:
            raise TypeError(f"batch_norm: {name} has dtype {value.dtype}, input has dtype {input.dtype}")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)):
        raise TypeError(f"batch_norm: momentum must be a number, got {momentum!r}")
    if (running_mean is None) != (running_var is None):
        raise ValueError("batch_norm: pass both running_mean and running_var, or neither")
    use_batch_stats = bool(training) or running_mean is None
    per_channel = input.numel() // max(C, 1)
    if use_batch_stats and per_channel <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input shape {shape}")
    stats = (None, None) if running_mean is None else (running_mean._data, running_var._data)
    if stats[0] is not None and training:  # updated in place below
        running_mean._version_counter.bump()
        running_var._version_counter.bump()
    return BatchNorm.apply(input, weight, bias, *stats, use_batch_stats, float(momentum), float(eps))
