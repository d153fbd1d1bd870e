"""The contract's conv2d kernels: dispatch on ``algo`` ('im2col' or 'direct'; backward-input also
'flipped', stride 1: the direct forward of gy with the flipped kernel, see ``kernels.conv_flipped``).

The kernels read x and gy in place, so there is nothing for the backward kernels to reuse: the
forward's ``saved`` is None and backward-input passes on the ``saved`` it was given.
"""

from __future__ import annotations

from kernels.conv_flipped import backward_input_flipped

from . import conv_direct, conv_im2col

_ALGOS = ("im2col", "direct")


def _algo(algo: str, allowed=_ALGOS):
    if algo not in allowed:
        raise ValueError(f"algo must be one of {allowed}, got {algo!r}")
    return conv_direct if algo == "direct" else conv_im2col


def conv2d_forward(x, w, b, stride, padding, dilation, algo):
    """(y (N, O, OH, OW), None): the cross-correlation of x (N, C, H, W) with w (O, C, KH, KW), plus b (O,) or None."""
    return _algo(algo).forward(x, w, b, stride, padding, dilation), None


def conv2d_backward_input(gy, w, input_hw, stride, padding, dilation, algo, saved=None):
    """(gx (N, C, H, W) of the forward's x, saved), from gy (N, O, OH, OW) and w (O, C, KH, KW)."""
    if algo == "flipped":
        def forward(g, flipped, full):
            return conv_direct.forward(g, flipped, None, (1, 1), full, dilation)

        return backward_input_flipped(forward, gy, w, stride, padding, dilation), saved
    module = _algo(algo, _ALGOS + ("flipped",))
    return module.backward_input(gy, w, tuple(input_hw), stride, padding, dilation), saved


def conv2d_backward_weight(gy, x, kernel_hw, stride, padding, dilation, algo, saved=None):
    """gw (O, C, KH, KW) of the forward's w, from gy (N, O, OH, OW) and x (N, C, H, W)."""
    return _algo(algo).backward_weight(gy, x, tuple(kernel_hw), stride, padding, dilation)
