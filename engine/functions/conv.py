"""2-D convolution (cross-correlation, as in torch): the Function and its checked wrapper."""
from __future__ import annotations

from engine.autograd import Function
from engine.autotune import check_algo, run_conv_kernel
from engine.backend import backend_for, contiguous
from engine.functions.checks import as_float_tensors, batched
from engine.functions.join import cat
from kernels.shapes import conv2d_out_hw, pair


class Conv2d(Function):
    """y (N,O,OH,OW) = conv(x (N,C,H,W), w (O,C,KH,KW)) + b (O,).

    The forward kernel also returns ``saved``, whatever of its work the backward kernels can reuse
    (e.g. a copy of x in another layout; opaque here, None when nothing). It is saved with x and w;
    backward-input returns it again, possibly with gy's layout added, for backward-weight.
    """

    def forward(self, x, w, b, stride, padding, dilation, algo):
        x, w, b = contiguous(x), contiguous(w), contiguous(b)
        self.geometry = (stride, padding, dilation)
        self.algo = algo
        self.input_hw, self.kernel_hw = x.shape[2:], w.shape[2:]
        y, saved = run_conv_kernel(backend_for(x), "conv2d_forward", algo, x, w, b, *self.geometry)
        weight_grad = self.needs_input_grad[1]
        self.save_for_backward(x if weight_grad else None, w if self.needs_input_grad[0] else None,
                               saved if weight_grad else None)
        return y

    def backward(self, gy):
        x, w, saved = self.saved_tensors
        gy = contiguous(gy)
        backend = backend_for(gy)
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            gx, saved = run_conv_kernel(backend, "conv2d_backward_input", self.algo,
                                        gy, w, self.input_hw, *self.geometry, saved=saved)
        if self.needs_input_grad[1]:
            gw = run_conv_kernel(backend, "conv2d_backward_weight", self.algo,
                                 gy, x, self.kernel_hw, *self.geometry, saved=saved)
        if self.needs_input_grad[2]:
            gb = gy.sum(axis=(0, 2, 3))
        return gx, gw, gb


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
    """Checked entry point; see ``engine.nn.functional.conv2d`` for the documentation."""
    input, weight, bias = as_float_tensors("conv2d", input=input, weight=weight, bias=bias)
    x, restore = batched(input, "conv2d")
    groups = check_groups(x.shape, weight.shape, groups)
    per_group = tuple(x.shape[:1]) + (x.shape[1] // groups,) + tuple(x.shape[2:])
    stride, padding, dilation = check_conv_geometry(per_group, weight.shape, stride, padding, dilation)
    check_algo(algo)
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},) to match weight "
                         f"{tuple(weight.shape)}, got bias shape {tuple(bias.shape)}")
    if groups == 1:
        return restore(Conv2d.apply(x, weight, bias, stride, padding, dilation, algo))
    return restore(_grouped_conv2d(x, weight, bias, groups, stride, padding, dilation, algo))


# --- grouped convolution (added with the modern CNNs): one ungrouped Conv2d per group, joined on channels,
# so every backend and both algorithms (and autotune, per group shape) serve it unchanged.
def _grouped_conv2d(x, weight, bias, groups, stride, padding, dilation, algo):
    """y (N,O,OH,OW): group g convolves input channels [g*C/groups, (g+1)*C/groups) with filters
    [g*O/groups, (g+1)*O/groups) of weight (O, C/groups, KH, KW)."""
    cin, cout = x.shape[1] // groups, weight.shape[0] // groups
    outputs = []
    for g in range(groups):
        xg = x[:, g * cin:(g + 1) * cin]
        wg = weight[g * cout:(g + 1) * cout]
        bg = None if bias is None else bias[g * cout:(g + 1) * cout]
        outputs.append(Conv2d.apply(xg, wg, bg, stride, padding, dilation, algo))
    return cat(outputs, dim=1)


def check_groups(x_shape, w_shape, groups) -> int:
    """Validate ``groups`` against input (N, C, H, W) and weight (O, C/groups, KH, KW); return it."""
    if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
        raise ValueError(f"conv2d: groups must be a positive int, got groups={groups!r}")
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    if groups == 1:
        return 1
    if len(w_shape) != 4:
        raise ValueError(f"conv2d: weight must be 4-D (out_channels, in_channels/groups, kH, kW), "
                         f"got weight shape {w_shape}")
    if x_shape[1] % groups:
        raise ValueError(f"conv2d: input channels {x_shape[1]} (input shape {x_shape}) are not divisible by "
                         f"groups={groups}")
    if w_shape[0] % groups:
        raise ValueError(f"conv2d: out_channels {w_shape[0]} (weight shape {w_shape}) are not divisible by "
                         f"groups={groups}")
    if x_shape[1] // groups != w_shape[1]:
        raise ValueError(f"conv2d: input has {x_shape[1]} channels (input shape {x_shape}), so with groups={groups} "
                         f"weight dim 1 must be {x_shape[1] // groups}, got weight shape {w_shape}")
    return groups


def check_conv_geometry(x_shape, w_shape, stride, padding, dilation):
    """Validate conv2d's shapes and geometry; return (stride, padding, dilation) as pairs."""
    stride, padding = pair(stride, "stride"), pair(padding, "padding")
    dilation = pair(dilation, "dilation")
    x_shape, w_shape = tuple(x_shape), tuple(w_shape)
    if len(w_shape) != 4:
        raise ValueError(f"conv2d: weight must be 4-D (out_channels, in_channels, kH, kW), "
                         f"got weight shape {w_shape}")
    if min(w_shape) <= 0:
        raise ValueError(f"conv2d: weight (kernel) sizes must be positive, got weight shape {w_shape}")
    if min(stride) <= 0:
        raise ValueError(f"conv2d: stride must be positive, got stride={stride}")
    if min(dilation) <= 0:
        raise ValueError(f"conv2d: dilation must be positive, got dilation={dilation}")
    if min(padding) < 0:
        raise ValueError(f"conv2d: padding must be non-negative, got padding={padding}")
    if x_shape[1] != w_shape[1]:
        raise ValueError(f"conv2d: input has {x_shape[1]} channels (input shape {x_shape}) but weight "
                         f"expects {w_shape[1]} (weight shape {w_shape}, in_channels is dim 1)")
    for i, axis in enumerate(("height", "width")):
        padded = x_shape[2 + i] + 2 * padding[i]
        span = dilation[i] * (w_shape[2 + i] - 1) + 1
        if span > padded:
            raise ValueError(
                f"conv2d: kernel {axis} {span} (weight shape {w_shape}, dilation {dilation}) is larger "
                f"than the padded input {axis} {padded} (input shape {x_shape}, padding {padding})")
    assert min(conv2d_out_hw(x_shape[2:], w_shape[2:], stride, padding, dilation)) > 0
    return stride, padding, dilation
