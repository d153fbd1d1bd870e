"""Adaptive average and max pooling: any (OH, OW), bins from ``kernels.shapes.adaptive_bin``."""
from __future__ import annotations

from engine.autograd import Function
from engine.backend import backend_for, contiguous


class AdaptiveAvgPool2d(Function):
    def forward(self, x, out_hw):
        self.input_hw = x.shape[2:]
        return backend_for(x).adaptive_avg_pool2d_forward(contiguous(x), out_hw)

    def backward(self, gy):
        return backend_for(gy).adaptive_avg_pool2d_backward(contiguous(gy), self.input_hw)


class AdaptiveMaxPool2d(Function):
    def forward(self, x, out_hw):
        self.input_hw = x.shape[2:]
        y, self.indices = backend_for(x).adaptive_max_pool2d_forward(contiguous(x), out_hw)
        return y

    def backward(self, gy):
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
    from engine.tensor import as_float_tensors, batched

    (input,) = as_float_tensors("adaptive_avg_pool2d", input=input)
    x, restore = batched(input, "adaptive_avg_pool2d")
    return restore(AdaptiveAvgPool2d.apply(x, output_hw("adaptive_avg_pool2d", x.shape, output_size)))


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Checked entry point; see ``engine.nn.functional.adaptive_max_pool2d``."""
    from engine.tensor import Tensor, as_float_tensors, batched

    (input,) = as_float_tensors("adaptive_max_pool2d", input=input)
    x, restore = batched(input, "adaptive_max_pool2d")
    y = AdaptiveMaxPool2d.apply(x, output_hw("adaptive_max_pool2d", x.shape, output_size))
    if not return_indices:
        return restore(y)
    indices = y.grad_fn.indices if y.grad_fn is not None else None
    if indices is None:  # no graph was built: run the kernel again for the indices
        indices = backend_for(x._data).adaptive_max_pool2d_forward(contiguous(x._data), tuple(y.shape[2:]))[1]
    return restore(y), restore(Tensor._wrap(indices))
