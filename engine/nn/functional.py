"""``engine.nn.functional``: stateless ops with torch's names and arguments (import as ``F``)."""
from __future__ import annotations

import warnings

from engine.functions import conv as _conv
from engine.functions import loss as _loss
from engine.functions import pool as _pool
from engine.functions.checks import as_float_tensors, check_broadcast
from engine.functions.linalg import Linear as _Linear
from engine.tensor import Tensor

__all__ = ["conv2d", "avg_pool2d", "max_pool2d", "sigmoid", "relu", "tanh", "linear", "flatten",
           "log_softmax", "softmax", "cross_entropy", "mse_loss"]


def conv2d(input: Tensor, weight: Tensor, bias: Tensor = None, stride=1, padding=0, dilation=1, groups: int = 1,
           algo: str = "auto") -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    Args:
        input: (N, C_in, H, W) or unbatched (C_in, H, W).
        weight: (C_out, C_in / groups, kH, kW).
        bias: (C_out,) or None.
        stride, padding, dilation: int or (h, w) pair.
        groups: split the channels into ``groups`` independent convolutions (C_in and C_out divisible
            by it; ``groups == C_in`` is a depthwise convolution).
        algo: ``'im2col'`` (unfold + matmul), ``'direct'`` (no unfolded buffer) or ``'auto'``
            (time both once per shape and keep the faster; ``engine.set_conv_algo`` forces one globally).

    Returns:
        (N, C_out, OH, OW) with OH = floor((H + 2*padding - dilation*(kH - 1) - 1) / stride) + 1.

    Example:
        >>> F.conv2d(engine.ones(1, 1, 6, 8), engine.tensor([[[[1.0, -1.0]]]])).shape
        engine.Size([1, 1, 6, 7])
    """
    return _conv.conv2d(input, weight, bias, stride, padding, dilation, groups, algo)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True) -> Tensor:
    """Average over kH x kW windows of (N, C, H, W) (or (C, H, W)), as ``torch.nn.functional.avg_pool2d``.

    ``stride`` defaults to ``kernel_size``; zero padding counts in the divisor when ``count_include_pad``;
    ``ceil_mode`` keeps a last partial window that starts inside the input.
    """
    return _pool.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> Tensor:
    """Maximum over kH x kW windows, as ``torch.nn.functional.max_pool2d``; padding acts as -inf and
    the gradient goes to the first maximum of each window."""
    return _pool.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode)


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), elementwise."""
    return input.sigmoid()


def relu(input: Tensor) -> Tensor:
    """max(x, 0), elementwise."""
    return input.relu()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def linear(input: Tensor, weight: Tensor, bias: Tensor = None) -> Tensor:
    """y = input @ weight.T + bias for input (..., in_features), weight (out_features, in_features)."""
    input, weight, bias = as_float_tensors("linear", input=input, weight=weight, bias=bias)
    if weight.ndim != 2 or input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input shape {tuple(input.shape)} does not match weight shape "
                         f"{tuple(weight.shape)} (input's last dim must equal weight's dim 1, in_features)")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},) for weight shape "
                         f"{tuple(weight.shape)}, got bias shape {tuple(bias.shape)}")
    return _Linear.apply(input, weight, bias)


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return input.flatten(start_dim, end_dim)


def _dim(input, dim, op):
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1  # torch's legacy implicit choice
    if not -input.ndim <= dim < max(input.ndim, 1):
        raise IndexError(f"{op}: dim {dim} is out of range for input shape {tuple(input.shape)}")
    return dim % max(input.ndim, 1)


def log_softmax(input: Tensor, dim: int = None) -> Tensor:
    """log(softmax(x)) along ``dim``, computed stably."""
    (input,) = as_float_tensors("log_softmax", input=input)
    return _loss.LogSoftmax.apply(input, _dim(input, dim, "log_softmax"))


def softmax(input: Tensor, dim: int = None) -> Tensor:
    (input,) = as_float_tensors("softmax", input=input)
    return _loss.Softmax.apply(input, _dim(input, dim, "softmax"))


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits (N, K) (or (K,)) against class indices (N,) (or ()).

    Computed stably with log-sum-exp (finite for logits of ±1e4). ``reduction``: 'mean' | 'sum' | 'none'.
    """
    (input,) = as_float_tensors("cross_entropy", input=input)
    if not isinstance(target, Tensor):
        raise TypeError(f"cross_entropy: argument 'target' must be a Tensor of class indices, "
                        f"got {type(target).__name__}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices (int64), got dtype "
                        f"{target.dtype} with shape {tuple(target.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    unbatched = input.ndim == 1
    logits = input.reshape(1, -1) if unbatched else input
    labels = target.reshape(1) if unbatched and target.ndim == 0 else target
    if logits.ndim != 2 or labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(f"cross_entropy: expected input (N, K) and target (N,), got input shape "
                         f"{tuple(input.shape)} and target shape {tuple(target.shape)}")
    classes = logits.shape[1]
    out_of_range = (labels._data < 0) | (labels._data >= classes)
    if labels.numel() and bool(out_of_range.any()):  # one host read per call, also on a GPU
        low, high = int(labels._data.min()), int(labels._data.max())
        if low < 0 or high >= classes:
            raise ValueError(f"cross_entropy: target values must be in [0, {classes - 1}] for input shape "
                             f"{tuple(input.shape)}, got values in [{low}, {high}]")
    labels = labels if labels.dtype == "int64" else labels.long()
    loss = _loss.SoftmaxCrossEntropy.apply(logits, labels)
    if unbatched:
        loss = loss.reshape(())
    return _reduce(loss, reduction, "cross_entropy")


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or per-element) squared error; shapes must match or broadcast."""
    check_broadcast("mse_loss", input.shape, target.shape)
    if tuple(input.shape) != tuple(target.shape):
        warnings.warn(f"mse_loss: using a target size ({tuple(target.shape)}) that is different to the input "
                      f"size ({tuple(input.shape)}). This will likely lead to incorrect results due to "
                      "broadcasting. Please ensure they have the same size.", UserWarning, stacklevel=2)
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return _reduce((input - target) ** 2, reduction, "mse_loss")


# --- modern CNNs: batch norm, dropout, adaptive pooling
from engine.functions import adaptive_pool as _adaptive_pool  # noqa: E402
from engine.functions import dropout as _dropout  # noqa: E402
from engine.functions import normalization as _normalization  # noqa: E402

__all__ += ["batch_norm", "dropout", "adaptive_avg_pool2d", "adaptive_max_pool2d"]


def batch_norm(input: Tensor, running_mean, running_var, weight: Tensor = None, bias: Tensor = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) of ``input`` (N, C, ...), as ``torch.nn.functional.batch_norm``.

    Training (or no running statistics): with the batch's mean and biased variance over all dims
    but 1, and ``running_mean``/``running_var`` (C,) updated in place by ``momentum`` (the variance
    unbiased); eval: with the running statistics. Then ``* weight + bias`` (C,) when given.
    Training needs more than one value per channel.
    """
    return _normalization.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the others by 1 / (1 - p) when ``training``;
    ``input`` itself otherwise. The mask comes from the engine's generator (``engine.manual_seed``).
    ``inplace`` is accepted for torch's signature; the result is always a new tensor."""
    return _dropout.dropout(input, p, training)


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Mean over bins that tile (N, C, H, W) (or (C, H, W)) into ``output_size`` (int or (OH, OW); None
    keeps that dim): bin i spans [floor(i*H/OH), ceil((i+1)*H/OH)), as torch."""
    return _adaptive_pool.adaptive_avg_pool2d(input, output_size)


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Maximum over the bins of ``adaptive_avg_pool2d``; with ``return_indices`` also (N, C, OH, OW)
    int64 positions h*W+w of each maximum."""
    return _adaptive_pool.adaptive_max_pool2d(input, output_size, return_indices)
