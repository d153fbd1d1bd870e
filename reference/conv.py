"""2-D convolution (cross-correlation, like torch.nn.functional.conv2d) in plain NumPy.

Two algorithms, chosen by ``algo``:

* ``'direct'``: a sum over the KH*KW kernel offsets; each offset contracts the channel axis of
  one strided slice of the padded input with one (O, C) slice of the weight.
* ``'im2col'``: unfold the padded input into a (C*KH*KW, n*OH*OW) matrix and multiply it with
  the (O, C*KH*KW) weight; ``col2im`` folds the gradient back. The batch is processed in chunks
  so that one chunk's unfolded matrix fits ``kernels.workspace``'s budget.

Backward-input also takes ``algo='flipped'`` (stride 1: see ``kernels.conv_flipped``). The forward
returns the padded x with y; backward-weight reuses it when passed as ``saved``.

Geometry arguments (stride, padding, dilation, input_hw, kernel_hw) are (h, w) int pairs.
"""
from __future__ import annotations

import numpy as np

from kernels import im2col_driver
from kernels.conv_flipped import backward_input_flipped
from kernels.shapes import conv2d_out_hw

Pair = tuple[int, int]


def offset_window(i: int, j: int, out_hw: Pair, stride: Pair, dilation: Pair) -> tuple:
    """Index of the (N, C, OH, OW) view of a padded (N, C, Hp, Wp) array that kernel offset
    (i, j) touches: rows i*dh + oh*sh for oh < OH, columns j*dw + ow*sw for ow < OW."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
    cols = slice(j * dw, j * dw + (ow - 1) * sw + 1, sw)
    return (slice(None), slice(None), rows, cols)


def pad_widths(input_hw: Pair, padding: Pair, kernel_hw: Pair, out_hw: Pair, stride: Pair,
               dilation: Pair) -> list:
    """((top, bottom), (left, right)): ``padding`` before the input, and after it as much as the
    last window needs (more than ``padding`` with pooling's ceil_mode, less when the stride
    skips the last rows)."""
    widths = []
    for axis in range(2):
        p = padding[axis]
        needed = (out_hw[axis] - 1) * stride[axis] + dilation[axis] * (kernel_hw[axis] - 1) + 1
        widths.append((p, max(0, needed - p - input_hw[axis])))
    return widths


def pad_for_windows(x: np.ndarray, padding: Pair, kernel_hw: Pair, out_hw: Pair,
                    stride: Pair, dilation: Pair, value: float = 0.0) -> np.ndarray:
    """x (N, C, H, W) padded with ``value`` per :func:`pad_widths`; the real input sits at
    [ph:ph+H, pw:pw+W]."""
    widths = pad_widths(x.shape[2:], padding, kernel_hw, out_hw, stride, dilation)
    return np.pad(x, [(0, 0), (0, 0)] + widths, constant_values=value)


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: Pair,
                   padding: Pair, dilation: Pair, algo: str) -> tuple:
    """x (N, C, H, W), w (O, C, KH, KW), b (O,) or None -> (y (N, O, OH, OW), saved): saved is
    the padded x, which backward-weight reuses."""
    kernel_hw = w.shape[2:]
    out_hw = conv2d_out_hw(x.shape[2:], kernel_hw, stride, padding, dilation)
    xp = pad_for_windows(x, padding, kernel_hw, out_hw, stride, dilation)
    if algo == "direct":
        y = _direct_forward(xp, w, out_hw, stride, dilation)
    elif algo == "im2col":
        y = _im2col_forward(xp, w, out_hw, stride, dilation)
    else:
        raise ValueError(f"algo must be one of ('im2col', 'direct'), got {algo!r}")
    if b is not None:
        y += b[None, :, None, None]
    return y, xp


def conv2d_backward_input(gy: np.ndarray, w: np.ndarray, input_hw: Pair, stride: Pair,
                          padding: Pair, dilation: Pair, algo: str, saved=None) -> tuple:
    """gy (N, O, OH, OW), w (O, C, KH, KW) -> (gx (N, C, H, W), saved unchanged)."""
    if algo == "flipped":
        def forward(g, flipped, full):
            return conv2d_forward(g, flipped, None, (1, 1), full, dilation, "direct")[0]

        return backward_input_flipped(forward, gy, w, stride, padding, dilation), saved
    if algo not in ("im2col", "direct"):
        raise ValueError(f"algo must be one of ('im2col', 'direct', 'flipped'), got {algo!r}")
    n, c = gy.shape[0], w.shape[1]
    (h, wd), (ph, pw) = input_hw, padding
    kernel_hw, out_hw = w.shape[2:], gy.shape[2:]
    # The gradient of the padded input, shaped exactly like the forward's padded input.
    (top, bottom), (left, right) = pad_widths(input_hw, padding, kernel_hw, out_hw, stride, dilation)
    gxp = np.zeros((n, c, top + h + bottom, left + wd + right), gy.dtype)
    if algo == "direct":
        _direct_backward_input(gy, w, gxp, stride, dilation)
    else:
        _im2col_backward_input(gy, w, gxp, stride, dilation)
    return np.ascontiguousarray(gxp[:, :, ph:ph + h, pw:pw + wd]), saved


def conv2d_backward_weight(gy: np.ndarray, x: np.ndarray, kernel_hw: Pair, stride: Pair,
                           padding: Pair, dilation: Pair, algo: str, saved=None) -> np.ndarray:
    """gy (N, O, OH, OW), x (N, C, H, W), saved (forward's padded x) or None -> gw (O, C, KH, KW)."""
    out_hw = gy.shape[2:]
    xp = pad_for_windows(x, padding, kernel_hw, out_hw, stride, dilation) if saved is None else saved
    if algo == "direct":
        return _direct_backward_weight(gy, xp, kernel_hw, stride, dilation)
    if algo == "im2col":
        return _im2col_backward_weight(gy, xp, kernel_hw, stride, dilation)
    raise ValueError(f"algo must be one of ('im2col', 'direct'), got {algo!r}")


# --- direct: one tensordot per kernel offset ------------------------------------------------

def _direct_forward(xp, w, out_hw, stride, dilation):
    n, o = xp.shape[0], w.shape[0]
    y = np.zeros((o, n) + tuple(out_hw), xp.dtype)  # (O, N, OH, OW), transposed at the end
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            window = xp[offset_window(i, j, out_hw, stride, dilation)]  # (N, C, OH, OW)
            y += np.tensordot(w[:, :, i, j], window, axes=([1], [1]))
    return np.ascontiguousarray(y.transpose(1, 0, 2, 3))


def _direct_backward_input(gy, w, gxp, stride, dilation):
    out_hw = gy.shape[2:]
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            # (N, O, OH, OW) x (O, C) -> (N, OH, OW, C); one offset's positions never repeat.
            contribution = np.tensordot(gy, w[:, :, i, j], axes=([1], [0]))
            gxp[offset_window(i, j, out_hw, stride, dilation)] += contribution.transpose(0, 3, 1, 2)


def _direct_backward_weight(gy, xp, kernel_hw, stride, dilation):
    o, c = gy.shape[1], xp.shape[1]
    out_hw = gy.shape[2:]
    gw = np.empty((o, c) + tuple(kernel_hw), gy.dtype)
    for i in range(kernel_hw[0]):
        for j in range(kernel_hw[1]):
            window = xp[offset_window(i, j, out_hw, stride, dilation)]  # (N, C, OH, OW)
            gw[:, :, i, j] = np.tensordot(gy, window, axes=([0, 2, 3], [0, 2, 3]))
    return gw


# --- im2col / col2im + matmul, batch processed in workspace-sized chunks (kernels.im2col_driver) ---

def im2col(xp: np.ndarray, kernel_hw: Pair, out_hw: Pair, stride: Pair, dilation: Pair,
           cols: np.ndarray) -> None:
    """Fill cols (C*KH*KW, n*OH*OW), rows ordered like w.reshape(O, -1), from the padded xp (n, C, Hp, Wp)."""
    n, c = xp.shape[:2]
    kh, kw = kernel_hw
    cols = cols.reshape((c, kh, kw, n) + tuple(out_hw))  # a view: cols is C-contiguous
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = xp[offset_window(i, j, out_hw, stride, dilation)].transpose(1, 0, 2, 3)


def col2im(cols: np.ndarray, gxp: np.ndarray, kernel_hw: Pair, out_hw: Pair, stride: Pair,
           dilation: Pair) -> None:
    """Add cols (C*KH*KW, n*OH*OW) into the padded gradient gxp (n, C, Hp, Wp), in place."""
    n, c = gxp.shape[:2]
    kh, kw = kernel_hw
    cols = cols.reshape((c, kh, kw, n) + tuple(out_hw))
    for i in range(kh):
        for j in range(kw):
            gxp[offset_window(i, j, out_hw, stride, dilation)] += cols[:, i, j].transpose(1, 0, 2, 3)


def _im2col_forward(xp, w, out_hw, stride, dilation):
    def unfold(n0, n1, cols):
        im2col(xp[n0:n1], w.shape[2:], out_hw, stride, dilation, cols)

    return im2col_driver.forward(np, unfold, xp.shape[0], w, None, out_hw)[0]


def _im2col_backward_input(gy, w, gxp, stride, dilation):
    def fold(cols, n0, n1):
        col2im(cols, gxp[n0:n1], w.shape[2:], gy.shape[2:], stride, dilation)

    im2col_driver.backward_input(np, fold, gy, w)


def _im2col_backward_weight(gy, xp, kernel_hw, stride, dilation):
    def unfold(n0, n1, cols):
        im2col(xp[n0:n1], kernel_hw, gy.shape[2:], stride, dilation, cols)

    return im2col_driver.backward_weight(np, unfold, gy, xp.shape[1], kernel_hw)[0]
