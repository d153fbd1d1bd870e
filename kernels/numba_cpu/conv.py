"""The three convolution kernels of the contract, dispatching on ``algo`` ('im2col' or 'direct').

Each call records the scratch memory it used besides its inputs and output (the unfolded matrix
for im2col, the batch-innermost copies for direct); :func:`peak_workspace_bytes` reports the
largest since :func:`reset_peak_workspace`.
"""
from __future__ import annotations

import numpy as np

from kernels.numba_cpu import conv_direct, conv_im2col

_ALGOS = {"im2col": conv_im2col, "direct": conv_direct}
_peak = 0


def _run(algo, kernel, *args):
    global _peak
    try:
        module = _ALGOS[algo]
    except KeyError:
        raise ValueError(f"algo must be 'im2col' or 'direct', got {algo!r}") from None
    # no-ops on the contract's C-contiguous arrays; a strided view would compile a new signature
    args = [np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a for a in args]
    out, scratch = getattr(module, kernel)(*args)
    _peak = max(_peak, scratch)
    return out


def clear_caches() -> None:
    """Drop the layout copies the direct algorithm keeps between forward and backward."""
    conv_direct.clear_caches()


def peak_workspace_bytes() -> int:
    """The most scratch bytes one convolution kernel used since the last reset."""
    return _peak


def reset_peak_workspace() -> None:
    global _peak
    _peak = 0


def conv2d_forward(x, w, b, stride, padding, dilation, algo):
    """x (N, C, H, W), w (O, C, KH, KW), b (O,) or None -> y (N, O, OH, OW)."""
    return _run(algo, "conv2d_forward", x, w, b, stride, padding, dilation)


def conv2d_backward_input(gy, w, input_hw, stride, padding, dilation, algo):
    """gy (N, O, OH, OW), w (O, C, KH, KW) -> gx (N, C, H, W)."""
    return _run(algo, "conv2d_backward_input", gy, w, input_hw, stride, padding, dilation)


def conv2d_backward_weight(gy, x, kernel_hw, stride, padding, dilation, algo):
    """gy (N, O, OH, OW), x (N, C, H, W) -> gw (O, C, KH, KW)."""
    return _run(algo, "conv2d_backward_weight", gy, x, kernel_hw, stride, padding, dilation)
