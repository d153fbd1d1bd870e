"""Which runs of a ``Sequential`` execute as one fused kernel, chosen with no code from the user.

A ``Conv2d`` -> ``Sigmoid``/``ReLU``/``Tanh`` -> ``AvgPool2d(2)`` run (LeNet's block) becomes one
:class:`engine.functions.fused.ConvActPool` when all of these hold; otherwise its modules run one
by one, as written:

* the modules are exactly those classes (a subclass may change ``forward``) and the conv has
  stride 1, no dilation, no groups, and ``algo`` 'auto' or 'direct' (``set_conv_algo`` too);
* the pool is 2x2 with stride 2 and no padding, and the conv output's height and width are even;
* the input is a 4-D float32/float64 tensor with the conv's channel count, on the device and of
  the dtype of the conv's parameters, whose backend has the fused kernels (``numba`` has).

The Sequential's intermediate outputs are not visible to the user, so nothing observable changes
but speed: the fused kernels reproduce the unfused ones (see ``kernels/numba_cpu/conv_fused.py``).
:func:`set_fusion` turns it off (e.g. to compare the two paths).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from engine.autotune import get_conv_algo
from engine.backend import backend_for
from engine.device import float32, float64
from engine.functions.fused import ConvActPool
from engine.nn.module import Module
from engine.nn.modules.activation import ReLU, Sigmoid, Tanh
from engine.nn.modules.conv import Conv2d
from engine.nn.modules.pooling import AvgPool2d
from engine.tensor import Tensor
from kernels.contract import provides
from kernels.shapes import pair

ACTIVATIONS = {Sigmoid: "sigmoid", ReLU: "relu", Tanh: "tanh"}
RUN_LENGTH = 3  # conv, activation, pool
_enabled = True


def set_fusion(enabled: bool) -> None:
    """Let ``Sequential`` fuse conv-activation-pool runs (the default) or run every module alone."""
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"set_fusion: enabled must be a bool, got {enabled!r}")
    _enabled = enabled


def get_fusion() -> bool:
    return _enabled


def _plain_conv(m: Module) -> bool:
    return (type(m) is Conv2d and m.stride == (1, 1) and m.dilation == (1, 1) and m.groups == 1
            and m.algo in ("auto", "direct") and get_conv_algo() in ("auto", "direct"))


def _plain_pool(m: Module) -> bool:
    if type(m) is not AvgPool2d:
        return False
    try:
        kernel, stride, padding = pair(m.kernel_size, "kernel_size"), pair(m.stride or m.kernel_size, "stride"), \
            pair(m.padding, "padding")
    except (TypeError, ValueError):
        return False  # the unfused pool raises the error
    return kernel == (2, 2) and stride == (2, 2) and padding == (0, 0)


def fusable_run(modules: Sequence[Module], start: int) -> Optional[Tuple[Conv2d, str]]:
    """(conv, activation name) when modules[start:start + 3] is a fusable run, else None."""
    if not _enabled or start + RUN_LENGTH > len(modules):
        return None
    conv, act, pool = modules[start:start + RUN_LENGTH]
    if not (_plain_conv(conv) and type(act) in ACTIVATIONS and _plain_pool(pool)):
        return None
    return conv, ACTIVATIONS[type(act)]


def _fits(conv: Conv2d, x) -> bool:
    """Whether input ``x`` takes the fused path through ``conv`` (else the unfused path, which also
    raises the errors bad input deserves)."""
    if not isinstance(x, Tensor) or x.ndim != 4 or x.dtype not in (float32, float64):  # not dtype.name: 3 us
        return False
    weight, bias, where = conv.weight, conv.bias, x.device
    if x.shape[1] != conv.in_channels or weight.dtype != x.dtype or weight.device != where:
        return False
    if bias is not None and (bias.dtype != x.dtype or bias.device != where):
        return False
    out = [x.shape[2 + i] + 2 * conv.padding[i] - conv.kernel_size[i] + 1 for i in range(2)]
    if min(out) < 2 or out[0] % 2 or out[1] % 2:
        return False
    return provides(backend_for(x._data), "fused_conv_act_pool_forward")


def run_fused(conv: Conv2d, activation: str, x, x_layout=None, next_conv: Optional[Conv2d] = None):
    """(output, next layout) of the fused run on ``x``, or None when ``x`` does not fit it.

    ``x_layout``: the previous fused run's next layout, when ``x`` is that run's output; with
    ``next_conv`` (the conv of the fusable run that follows) the kernel also writes the output in
    the layout that conv reads, so it need not copy it (see ``kernels/numba_cpu/conv_fused.py``).
    """
    if not _fits(conv, x):
        return None
    handoff = {"x_layout": x_layout, "next_padding": None if next_conv is None else next_conv.padding}
    output = ConvActPool.apply(x, conv.weight, conv.bias, conv.padding, activation, handoff=handoff)
    return output, handoff["next_layout"]
