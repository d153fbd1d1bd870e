"""The backend contract: every kernel and capability a backend has, declared once.

A backend is a package (``reference``, ``kernels.numba_cpu``, ``kernels.cupy_gpu``) whose
``__init__`` calls :func:`export` with its name, its array module (numpy or cupy) and the modules
that implement the kernels. ``export`` takes every name of :data:`CONTRACT` from those modules,
fills the optional capabilities a backend does not implement with their defaults, and sets
``__all__``; a missing required kernel is a TypeError naming it. Nothing else lists the kernels.

Kernels take raw C-contiguous arrays of one floating dtype (float32 or float64) and return new
arrays of that dtype; they never see a Tensor and never check arguments (the engine's Functions do,
once). Geometry arguments are ``(h, w)`` int pairs; output sizes come from ``kernels.shapes``.
Kernels keep no state between calls.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, Optional


@dataclass(frozen=True)
class Capability:
    """One entry of the contract: its name, its call signature, and (if optional) its default."""

    name: str
    signature: str
    default: Optional[Callable] = None

    @property
    def required(self) -> bool:
        return self.default is None


def _no_op(*args) -> None:
    return None


def _zero(*args) -> int:
    return 0


def not_provided(*args):
    """The default of a fused kernel a backend lacks; the engine checks :func:`provides` first."""
    raise NotImplementedError("this backend has no such fused kernel: run the unfused ones")


def provides(backend, name: str) -> bool:
    """Whether ``backend`` implements the optional kernel ``name`` (not just its default)."""
    return getattr(backend, name, not_provided) is not not_provided


def _sgd_step(params, grads, lr) -> None:
    """The default ``sgd_step``: one in-place array update per parameter, in the backend's array module."""
    for p, g in zip(params, grads):
        p -= p.dtype.type(lr) * g


def _blas_threads(n: int) -> None:
    """Default ``set_num_threads`` for a backend without its own thread pool: only BLAS has threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)


CONTRACT = (
    # --- convolution (cross-correlation, like torch.nn.functional.conv2d; algo is 'im2col' or 'direct',
    # backward-input also 'flipped' (stride 1 only). ``saved`` is opaque and backend-specific, or None:
    # what forward made that the backward kernels of the same convolution can reuse; backward-input
    # returns it with what it adds for backward-weight; a kernel ignores what another algo made)
    Capability("conv2d_forward", "(x (N,C,H,W), w (O,C,KH,KW), b (O,) or None, stride, padding, dilation, algo)"
               " -> (y (N,O,OH,OW), saved)"),
    Capability("conv2d_backward_input", "(gy (N,O,OH,OW), w (O,C,KH,KW), input_hw, stride, padding, dilation,"
               " algo, saved=None) -> (gx (N,C,H,W), saved)"),
    Capability("conv2d_backward_weight", "(gy (N,O,OH,OW), x (N,C,H,W), kernel_hw, stride, padding, dilation,"
               " algo, saved=None) -> gw (O,C,KH,KW)"),
    # --- pooling (padding acts as zero for avg, as -inf for max)
    Capability("avg_pool2d_forward", "(x (N,C,H,W), kernel, stride, padding, ceil_mode, count_include_pad)"
               " -> y (N,C,OH,OW)"),
    Capability("avg_pool2d_backward", "(gy (N,C,OH,OW), input_hw, kernel, stride, padding, ceil_mode,"
               " count_include_pad) -> gx (N,C,H,W)"),
    Capability("max_pool2d_forward", "(x (N,C,H,W), kernel, stride, padding, dilation, ceil_mode)"
               " -> (y (N,C,OH,OW), indices (N,C,OH,OW) int64 flat h*W+w of the first maximum in the window)"),
    Capability("max_pool2d_backward", "(gy (N,C,OH,OW), indices (N,C,OH,OW), input_hw) -> gx (N,C,H,W)"),
    # --- activations: backward gets the forward's output y
    Capability("sigmoid_forward", "(x) -> y"),
    Capability("sigmoid_backward", "(gy, y) -> gx"),
    Capability("relu_forward", "(x) -> y"),
    Capability("relu_backward", "(gy, y) -> gx"),
    Capability("tanh_forward", "(x) -> y"),
    Capability("tanh_backward", "(gy, y) -> gx"),
    # --- fused softmax + cross-entropy, per sample (the engine applies the reduction)
    Capability("softmax_cross_entropy_forward", "(logits (N,K), target (N,) int64 in [0,K))"
               " -> (loss (N,), probs (N,K))"),
    Capability("softmax_cross_entropy_backward", "(gloss (N,), probs (N,K), target (N,) int64) -> glogits (N,K)"),
    # --- modern CNNs: batch norm, dropout, adaptive pooling
    # batch norm over (N,C,L) (BatchNorm2d passes L = H*W): statistics per channel over N*L values
    Capability("batch_norm_forward_train", "(x (N,C,L), weight (C,), bias (C,), eps)"
               " -> (y (N,C,L), mean (C,), var (C,) biased)"),
    Capability("batch_norm_forward_eval", "(x (N,C,L), running_mean (C,), running_var (C,), weight (C,), bias (C,),"
               " eps) -> y (N,C,L)"),
    Capability("batch_norm_backward", "(gy (N,C,L), x (N,C,L), mean (C,), invstd (C,), weight (C,), training bool)"
               " -> (gx (N,C,L), gweight (C,), gbias (C,))"),
    # dropout: keep is uint8 of x's shape (drawn by the engine), scale = 1 / (1 - p)
    Capability("dropout_forward", "(x, keep uint8, scale) -> y = x * keep * scale"),
    Capability("dropout_backward", "(gy, keep uint8, scale) -> gx = gy * keep * scale"),
    # adaptive pooling: bins from kernels.shapes.adaptive_bin; max backward is max_pool2d_backward
    Capability("adaptive_avg_pool2d_forward", "(x (N,C,H,W), out_hw) -> y (N,C,OH,OW)"),
    Capability("adaptive_avg_pool2d_backward", "(gy (N,C,OH,OW), input_hw) -> gx (N,C,H,W)"),
    Capability("adaptive_max_pool2d_forward", "(x (N,C,H,W), out_hw) -> (y (N,C,OH,OW), indices (N,C,OH,OW)"
               " int64 flat h*W+w of the first maximum in the bin)"),
    # --- optional capabilities (a default is used when a backend does not define one)
    Capability("synchronize", "() -> None: wait for queued device work", _no_op),
    Capability("set_num_threads", "(n) -> None: threads for this backend's kernels", _blas_threads),
    Capability("get_num_threads", "() -> int or None (None: the backend has no thread pool)", _no_op),
    Capability("clear_caches", "() -> None: drop compiled-kernel or autotune caches", _no_op),
    Capability("peak_workspace_bytes", "() -> int: the largest scratch buffer since the last reset", _zero),
    Capability("reset_peak_workspace", "() -> None", _no_op),
    # the plain SGD update of a whole parameter group: params and grads are tuples of matching 1-D C-contiguous
    # arrays of one dtype; lr is rounded to that dtype, then p -= lr * g in place (the default: one op each)
    Capability("sgd_step", "(params tuple of 1-D arrays, grads tuple of 1-D arrays, lr float) -> None", _sgd_step),
    # fused conv (stride 1, no dilation or groups) + bias + activation ('sigmoid', 'relu' or 'tanh') + 2x2
    # average pooling of an even conv output; ``saved`` is opaque (None unless keep); a backend without them
    # runs the unfused kernels above (the engine asks ``provides`` first)
    # x_layout: x in the backend's own input layout, as an earlier call's next layout returned it (or None);
    # next_padding (ph, pw) or None asks for y in the layout of a next fused conv with that padding
    Capability("fused_conv_act_pool_forward", "(x (N,C,H,W), w (O,C,KH,KW), b (O,) or None, padding, activation,"
               " keep, x_layout=None, next_padding=None) -> (y (N,O,OH/2,OW/2) = avg_pool2d(act(conv2d(x, w, b)),"
               " 2), saved, next layout or None)", not_provided),
    Capability("fused_conv_act_pool_backward", "(gy (N,O,OH/2,OW/2), w, saved, input_hw, padding, activation,"
               " needs (3 bools)) -> (gx, gw, gb), None where not needed", not_provided),
)

KERNELS: Dict[str, str] = {c.name: c.signature for c in CONTRACT if c.required}
OPTIONAL: Dict[str, str] = {c.name: c.signature for c in CONTRACT if not c.required}
ATTRIBUTES = ("NAME", "xp")


def export(namespace: dict, name: str, xp, sources: Iterable) -> None:
    """Fill a backend package's ``namespace`` with ``NAME``, ``xp`` and every contract entry.

    Each entry is taken from the package itself (``namespace``) or else the first module in
    ``sources`` that defines it; an optional one that none defines gets its default. Raises
    TypeError naming the required kernels missing.
    """
    sources = tuple(sources)
    missing = []
    for capability in CONTRACT:
        found = namespace.get(capability.name)
        if found is None:
            found = next((getattr(m, capability.name) for m in sources if hasattr(m, capability.name)), None)
        if found is None and capability.required:
            missing.append(capability.name)
        namespace[capability.name] = found if found is not None else capability.default
    if missing:
        raise TypeError(f"backend {name!r} lacks: {', '.join(missing)}")
    namespace["NAME"], namespace["xp"] = name, xp
    namespace["__all__"] = list(ATTRIBUTES) + [c.name for c in CONTRACT]


def check_backend(module) -> None:
    """Raise TypeError naming every attribute or contract entry ``module`` lacks."""
    missing = [name for name in ATTRIBUTES + tuple(c.name for c in CONTRACT) if not hasattr(module, name)]
    if missing:
        raise TypeError(f"backend {getattr(module, '__name__', module)!r} lacks: {', '.join(missing)}")
