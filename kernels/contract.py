"""The backend contract: every kernel a backend must implement, in one place.

A backend is a module (``reference``, ``kernels.numba_cpu``, ``kernels.cupy_gpu``) that defines
``NAME`` (str), ``xp`` (its array module: numpy or cupy) and every function below. Kernels take
raw C-contiguous arrays of one floating dtype (float32 or float64) and return new arrays of that
dtype; they never see a Tensor and never check arguments (the engine's Functions do, once).
Geometry arguments are ``(h, w)`` int pairs; output sizes come from ``kernels.shapes``.

Adding a backend means filling this table; ``check_backend`` says what is missing.
"""
from __future__ import annotations

KERNELS = {
    # --- convolution (cross-correlation, like torch.nn.functional.conv2d; algo is 'im2col' or 'direct')
    "conv2d_forward": "(x (N,C,H,W), w (O,C,KH,KW), b (O,) or None, stride, padding, dilation, algo)"
    " -> y (N,O,OH,OW)",
    "conv2d_backward_input": "(gy (N,O,OH,OW), w (O,C,KH,KW), input_hw, stride, padding, dilation, algo)"
    " -> gx (N,C,H,W)",
    "conv2d_backward_weight": "(gy (N,O,OH,OW), x (N,C,H,W), kernel_hw, stride, padding, dilation, algo)"
    " -> gw (O,C,KH,KW)",
    # --- pooling (padding acts as zero for avg, as -inf for max)
    "avg_pool2d_forward": "(x (N,C,H,W), kernel, stride, padding, ceil_mode, count_include_pad)"
    " -> y (N,C,OH,OW)",
    "avg_pool2d_backward": "(gy (N,C,OH,OW), input_hw, kernel, stride, padding, ceil_mode,"
    " count_include_pad) -> gx (N,C,H,W)",
    "max_pool2d_forward": "(x (N,C,H,W), kernel, stride, padding, dilation, ceil_mode)"
    " -> (y (N,C,OH,OW), indices (N,C,OH,OW) int64 flat h*W+w of the first maximum in the window)",
    "max_pool2d_backward": "(gy (N,C,OH,OW), indices (N,C,OH,OW), input_hw) -> gx (N,C,H,W)",
    # --- activations: backward gets the forward's output y
    "sigmoid_forward": "(x) -> y",
    "sigmoid_backward": "(gy, y) -> gx",
    "relu_forward": "(x) -> y",
    "relu_backward": "(gy, y) -> gx",
    "tanh_forward": "(x) -> y",
    "tanh_backward": "(gy, y) -> gx",
    # --- fused softmax + cross-entropy, per sample (the engine applies the reduction)
    "softmax_cross_entropy_forward": "(logits (N,K), target (N,) int64 in [0,K)) -> (loss (N,), probs (N,K))",
    "softmax_cross_entropy_backward": "(gloss (N,), probs (N,K), target (N,)) -> glogits (N,K)",
}

# --- modern CNNs: batch norm, dropout, adaptive pooling
KERNELS.update({
    # batch norm over (N,C,L) (BatchNorm2d passes L = H*W): statistics per channel over N*L values
    "batch_norm_forward_train": "(x (N,C,L), weight (C,), bias (C,), eps) -> (y (N,C,L), mean (C,), var (C,) biased)",
    "batch_norm_forward_eval": "(x (N,C,L), running_mean (C,), running_var (C,), weight (C,), bias (C,), eps)"
    " -> y (N,C,L)",
    "batch_norm_backward": "(gy (N,C,L), x (N,C,L), mean (C,), invstd (C,), weight (C,), training bool)"
    " -> (gx (N,C,L), gweight (C,), gbias (C,))",
    # dropout: keep is uint8 of x's shape (drawn by the engine), scale = 1 / (1 - p)
    "dropout_forward": "(x, keep uint8, scale) -> y = x * keep * scale",
    "dropout_backward": "(gy, keep uint8, scale) -> gx = gy * keep * scale",
    # adaptive pooling: bins from kernels.shapes.adaptive_bin; max backward is max_pool2d_backward
    "adaptive_avg_pool2d_forward": "(x (N,C,H,W), out_hw) -> y (N,C,OH,OW)",
    "adaptive_avg_pool2d_backward": "(gy (N,C,OH,OW), input_hw) -> gx (N,C,H,W)",
    "adaptive_max_pool2d_forward": "(x (N,C,H,W), out_hw) -> (y (N,C,OH,OW), indices (N,C,OH,OW) int64 flat h*W+w"
    " of the first maximum in the bin)",
})

ATTRIBUTES = ("NAME", "xp")


def check_backend(module) -> None:
    """Raise TypeError naming every attribute or kernel ``module`` lacks."""
    missing = [name for name in ATTRIBUTES + tuple(KERNELS) if not hasattr(module, name)]
    if missing:
        raise TypeError(f"backend {getattr(module, '__name__', module)!r} lacks: {', '.join(missing)}")
