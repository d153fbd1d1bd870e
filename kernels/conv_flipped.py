"""Backward-input as a forward convolution, for any backend's forward kernel (stride 1 only).

With stride 1, the gradient of the input is the cross-correlation of gy (N, O, OH, OW) with the
kernel flipped in both spatial axes and its channel axes swapped, (C, O, KH, KW), padded by
d*(k-1) - p on each side: the "full" convolution. It runs over whole rows of gy (fast for the
direct kernels) but also over the zero border. A negative padding is a crop of gy.
"""
from __future__ import annotations


def backward_input_flipped(forward, gy, w, stride, padding, dilation):
    """gx (N, C, H, W) of a stride-1 convolution, from gy (N, O, OH, OW) and w (O, C, KH, KW).

    ``forward(x, w, padding)`` is the backend's forward convolution with stride 1, no bias and
    this ``dilation``; its return value is passed through (the caller unpacks it).
    """
    if tuple(stride) != (1, 1):
        raise ValueError(f"algo 'flipped' needs stride (1, 1), got stride={tuple(stride)}")
    full = [dilation[i] * (w.shape[2 + i] - 1) - padding[i] for i in range(2)]
    crop_h, crop_w = (max(0, -f) for f in full)
    if crop_h or crop_w:
        gy = gy[:, :, crop_h:gy.shape[2] - crop_h, crop_w:gy.shape[3] - crop_w].copy()
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).copy()  # .copy() is C-contiguous
    return forward(gy, flipped, (max(0, full[0]), max(0, full[1])))
