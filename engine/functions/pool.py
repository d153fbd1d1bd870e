"""2-D average and max pooling: the Functions and their checked wrappers."""
from __future__ import annotations

import numpy as np

from engine.autograd import Function
from engine.backend import backend_for, contiguous
from engine.functions.checks import as_float_tensors, batched
from kernels.shapes import pair, pool2d_out_hw


class AvgPool2d(Function):
    def forward(self, x, kernel, stride, padding, ceil_mode, count_include_pad):
        self.input_hw = x.shape[2:]
        self.options = (kernel, stride, padding, ceil_mode, count_include_pad)
        return backend_for(x).avg_pool2d_forward(contiguous(x), *self.options)

    def backward(self, gy):
        return backend_for(gy).avg_pool2d_backward(contiguous(gy), self.input_hw, *self.options)


class MaxPool2d(Function):
    def forward(self, x, kernel, stride, padding, dilation, ceil_mode):
        self.input_hw = x.shape[2:]
        y, indices = backend_for(x).max_pool2d_forward(contiguous(x), kernel, stride, padding, dilation, ceil_mode)
        self.save_for_backward(indices)
        return y

    def backward(self, gy):
        (indices,) = self.saved_tensors
        return backend_for(gy).max_pool2d_backward(contiguous(gy), indices, self.input_hw)


def check_pool_geometry(op, x_shape, kernel_size, stride, padding, dilation, ceil_mode):
    """Validate a pooling's arguments like torch does; return (kernel, stride, padding, dilation)."""
    kernel = pair(kernel_size, "kernel_size")
    stride = kernel if stride is None or stride == [] or stride == () else pair(stride, "stride")
    padding, dilation = pair(padding, "padding"), pair(dilation, "dilation")
    if min(kernel) <= 0:
        raise ValueError(f"{op}: kernel_size must be positive, got kernel_size={kernel}")
    if min(stride) <= 0:
        raise ValueError(f"{op}: stride must be positive, got stride={stride}")
    if min(dilation) <= 0:
        raise ValueError(f"{op}: dilation must be positive, got dilation={dilation}")
    if min(padding) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got padding={padding}")
    for i in range(2):
        effective = dilation[i] * (kernel[i] - 1) + 1
        if 2 * padding[i] > effective:
            raise ValueError(f"{op}: padding {padding} must be at most half of the effective kernel size "
                             f"{kernel} (dilation {dilation})")
    out_hw = pool2d_out_hw(tuple(x_shape[2:]), kernel, stride, padding, dilation, ceil_mode)
    geometry = f"kernel_size={kernel}, stride={stride}, padding={padding}, dilation={dilation}"
    if min(out_hw) <= 0:
        raise ValueError(f"{op}: output size {out_hw} is too small for input shape {tuple(x_shape)} with {geometry}")
    for i in range(2):
        starts = np.arange(out_hw[i]) * stride[i] - padding[i]
        taps = starts[:, None] + dilation[i] * np.arange(kernel[i])[None, :]
        if not ((taps >= 0) & (taps < x_shape[2 + i])).any(axis=1).all():
            raise ValueError(f"{op}: a pooling window falls entirely in the padding for input shape "
                             f"{tuple(x_shape)} with {geometry}; use less padding or dilation")
    return kernel, stride, padding, dilation


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Checked entry point; see ``engine.nn.functional.avg_pool2d``."""
    (input,) = as_float_tensors("avg_pool2d", input=input)
    x, restore = batched(input, "avg_pool2d")
    kernel, stride, padding, _ = check_pool_geometry(
        "avg_pool2d", x.shape, kernel_size, stride, padding, 1, ceil_mode)
    return restore(AvgPool2d.apply(x, kernel, stride, padding, bool(ceil_mode), bool(count_include_pad)))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Checked entry point; see ``engine.nn.functional.max_pool2d``."""
    (input,) = as_float_tensors("max_pool2d", input=input)
    x, restore = batched(input, "max_pool2d")
    kernel, stride, padding, dilation = check_pool_geometry(
        "max_pool2d", x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return restore(MaxPool2d.apply(x, kernel, stride, padding, dilation, bool(ceil_mode)))
