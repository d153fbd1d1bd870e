"""Adaptive average and max pooling: any (OH, OW), bins from ``kernels.shapes.adaptive_bin``."""
from __future__ import annotations

from engine.autograd import Function
from engine.backend import backend_for, contiguous
from engine.functions.checks import as_float_tensors, batched


class AdaptiveAvgPool2d(Function):
    def forward(self, x, out_hw):
        self.input_hw = x.shape[2:]
        return backend_for(x).adaptive_avg_pool2d_forward(contiguous(x), out_hw)

    def backward(self, gy):
        return backend_for(gy).adaptive_avg_pool2d_backward(contiguous(gy), self.input_hw)


class AdaptiveMaxPool2d(Function):
    """(y, indices): indices (int64 h*W+w of each maximum) is a second, non-differentiable output."""

    def forward(self, x, out_hw):
        self.input_hw = x.shape[2:]
        y, self.indices = backend_for(x).adaptive_max_pool2d_forward(contiguous(x), out_hw)
        return y, self.indices

    def backward(self, gy, g_indices=None):
        return backend_for(gy).max_pool2d_backward(contiguous(gy), self.indices, self.input_hw)


def output_hw(op, input_shape, output_size):
    """``output_size`` (int, pair, None entries keeping the input's size) as a checked (OH, OW)."""
    sizes = (output_size, output_size) if output_size is None or isinstance(output_size, int) else output_size
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise TypeError(f"{op}: output_size must be an int or a pair of ints (or None), got {output_size!r}") from None
    if len(sizes) != 2 or any(s is not None and (isinstance(s, bool) or not isinstance(s, int)) for s in sizes):
        raise TypeError(f"{op}: output_size must be an int or a pair of ints (or None), got {output_size!r}")
    out = tuple(input_shape[2 + i] if s is None else s for i, s in enumerate(sizes))
    if min(out) <= 0:
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    if min(input_shape[2:]) <= 0:
        raise ValueError(f"{op}: input has an empty spatial dim, input shape {tuple(input_shape)}")
    return out


def adaptive_avg_pool2d(input, output_size):
    """Checked entry point; see ``engine.nn.functional.adaptive_avg_pool2d``."""
    (input,) = as_float_tensors("adaptive_avg_pool2d", input=input)
    x, restore = batched(input, "adaptive_avg_pool2d")
    return restore(AdaptiveAvgPool2d.apply(x, output_hw("adaptive_avg_pool2d", x.shape, output_size)))


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Checked entry point; see ``engine.nn.functional.adaptive_max_pool2d``."""
    (input,) = as_float_tensors("adaptive_max_pool2d", input=input)
    x, restore = batched(input, "adaptive_max_pool2d")
    y, indices = AdaptiveMaxPool2d.apply(x, output_hw("adaptive_max_pool2d", x.shape, output_size))
    return (restore(y), restore(indices)) if return_indices else restore(y)
