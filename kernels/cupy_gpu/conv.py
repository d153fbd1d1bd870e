"""The contract's conv2d kernels: dispatch on ``algo`` ('im2col' or 'direct')."""

from __future__ import annotations

from . import conv_direct, conv_im2col

_ALGOS = {"im2col": conv_im2col, "direct": conv_direct}


def _algo(algo: str):
    try:
        return _ALGOS[algo]
    except KeyError:
        raise ValueError(f"algo must be one of {sorted(_ALGOS)}, got {algo!r}") from None


def conv2d_forward(x, w, b, stride, padding, dilation, algo):
    """y (N, O, OH, OW) = cross-correlation of x (N, C, H, W) with w (O, C, KH, KW), plus b (O,) or None."""
    return _algo(algo).forward(x, w, b, stride, padding, dilation)


def conv2d_backward_input(gy, w, input_hw, stride, padding, dilation, algo):
    """gx (N, C, H, W) of the forward's x, from gy (N, O, OH, OW) and w (O, C, KH, KW)."""
    return _algo(algo).backward_input(gy, w, tuple(input_hw), stride, padding, dilation)


def conv2d_backward_weight(gy, x, kernel_hw, stride, padding, dilation, algo):
    """gw (O, C, KH, KW) of the forward's w, from gy (N, O, OH, OW) and x (N, C, H, W)."""
    return _algo(algo).backward_weight(gy, x, tuple(kernel_hw), stride, padding, dilation)
