"""The three convolution kernels of the contract, dispatching on ``algo``.

``algo`` is 'im2col' or 'direct'; backward-input also takes 'flipped' (stride 1: the direct
forward of gy with the flipped kernel, see ``kernels.conv_flipped``). The forward returns, besides
y, what the backward kernels can reuse: for 'direct' the batch-innermost copy of x
(``conv_direct.Layouts``), which backward-input returns again with its copy of gy added; the
caller passes it on as ``saved``. A kernel ignores a ``saved`` that another algorithm made.

Each call records the scratch memory it used besides its inputs and output (the unfolded matrix
for im2col, the batch-innermost copies for direct); :func:`peak_workspace_bytes` reports the
largest since :func:`reset_peak_workspace` (a statistic only: no result depends on it).
"""
from __future__ import annotations

import numpy as np

from kernels.conv_flipped import backward_input_flipped
from kernels.numba_cpu import conv_direct, conv_im2col

_peak = 0


def _record(scratch: int) -> None:
    global _peak
    _peak = max(_peak, scratch)


def _contiguous(*arrays):
    # no-ops on the contract's C-contiguous arrays; a strided view would compile a new signature
    return [np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a for a in arrays]


def _layouts(saved) -> conv_direct.Layouts:
    """The direct algorithm's reusable copies in ``saved``, or none if another algorithm made it."""
    return saved if isinstance(saved, conv_direct.Layouts) else conv_direct.Layouts()


def _unknown(algo, allowed=("im2col", "direct")):
    return ValueError(f"algo must be one of {allowed}, got {algo!r}")


def peak_workspace_bytes() -> int:
    """The most scratch bytes one convolution kernel used since the last reset."""
    return _peak


def reset_peak_workspace() -> None:
    global _peak
    _peak = 0


def conv2d_forward(x, w, b, stride, padding, dilation, algo):
    """x (N, C, H, W), w (O, C, KH, KW), b (O,) or None -> (y (N, O, OH, OW), saved)."""
    x, w, b = _contiguous(x, w, b)
    if algo == "direct":
        y, saved, scratch = conv_direct.forward(x, w, b, stride, padding, dilation)
    elif algo == "im2col":
        (y, scratch), saved = conv_im2col.conv2d_forward(x, w, b, stride, padding, dilation), None
    else:
        raise _unknown(algo)
    _record(scratch)
    return y, saved


def conv2d_backward_input(gy, w, input_hw, stride, padding, dilation, algo, saved=None):
    """gy (N, O, OH, OW), w (O, C, KH, KW) -> (gx (N, C, H, W), saved for backward-weight)."""
    gy, w = _contiguous(gy, w)
    if algo == "direct":
        gx, saved, scratch = conv_direct.backward_input(gy, w, input_hw, stride, padding, dilation,
                                                        _layouts(saved))
    elif algo == "flipped":
        def forward(g, flipped, full):
            return conv_direct.forward(g, flipped, None, (1, 1), full, dilation)

        gx, _, scratch = backward_input_flipped(forward, gy, w, stride, padding, dilation)
    elif algo == "im2col":
        gx, scratch = conv_im2col.conv2d_backward_input(gy, w, input_hw, stride, padding, dilation)
    else:
        raise _unknown(algo, ("im2col", "direct", "flipped"))
    _record(scratch)
    return gx, saved


def conv2d_backward_weight(gy, x, kernel_hw, stride, padding, dilation, algo, saved=None):
    """gy (N, O, OH, OW), x (N, C, H, W) -> gw (O, C, KH, KW)."""
    gy, x = _contiguous(gy, x)
    if algo == "direct":
        gw, scratch = conv_direct.backward_weight(gy, x, kernel_hw, stride, padding, dilation,
                                                  _layouts(saved))
    elif algo == "im2col":
        gw, scratch = conv_im2col.conv2d_backward_weight(gy, x, kernel_hw, stride, padding, dilation)
    else:
        raise _unknown(algo)
    _record(scratch)
    return gw
