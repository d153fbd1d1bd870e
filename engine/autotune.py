"""Choosing between conv algorithms: forced per call/module, globally, or timed once per shape.

With ``algo='auto'`` the first call of a kernel at a new (backend, shapes, dtype, geometry) runs
every algorithm (a warm-up call, then ``TIMED_RUNS`` timed ones whose minimum counts, so one run
slowed by a busy machine does not decide), keeps the fastest for the rest of the process (like
cuDNN's benchmark mode) and returns its result.

The candidates are ``ALGOS``; backward-input at stride 1 also has ``'flipped'``: the direct
forward convolution of gy with the flipped kernel, which runs over whole rows but also over a zero
border, where the kernels' own direct algorithm gathers only real (input, output) pairs but N
values at a time. A forced ``'direct'`` picks between the two by :func:`direct_input_gradient`.
"""
from __future__ import annotations

import time
from typing import Dict, Tuple

ALGOS = ("im2col", "direct")
FLIPPED = "flipped"
TIMED_RUNS = 3
CHOICES = ALGOS + ("auto",)

_global_algo = "auto"
_choices: Dict[Tuple, str] = {}


def check_algo(algo: str, name: str = "algo") -> str:
    if algo not in CHOICES:
        raise ValueError(f"{name} must be one of {CHOICES}, got {algo!r}")
    return algo


def set_conv_algo(algo: str) -> None:
    """Force every ``algo='auto'`` convolution to ``'im2col'`` or ``'direct'`` (``'auto'`` restores timing)."""
    global _global_algo
    _global_algo = check_algo(algo)


def get_conv_algo() -> str:
    return _global_algo


def chosen_algos() -> Dict[Tuple, str]:
    """The cache of timed choices: key (backend, kernel, argument signature) -> algorithm."""
    return dict(_choices)


def clear_choices() -> None:
    _choices.clear()


def _signature(args) -> Tuple:
    return tuple((a.shape, str(a.dtype)) if hasattr(a, "shape") else a for a in args)


def candidates(kernel: str, stride) -> Tuple[str, ...]:
    """The algorithms ``'auto'`` times for ``kernel`` at this stride."""
    if kernel == "conv2d_backward_input" and tuple(stride) == (1, 1):
        return ALGOS + (FLIPPED,)
    return ALGOS


def direct_input_gradient(batch: int, input_hw, out_hw, stride) -> str:
    """The direct backward-input algorithm for these shapes: 'flipped' at stride 1 when the output
    is about as large as the input (little border) or the batch is small (short gathers), else
    'direct'. (Measured on the numba backend, 2 cores: LeNet's conv2, 14x14 -> 10x10 at batch 256,
    gathers faster; 28x28 -> 28x28 and 32x32 -> 32x32 run faster flipped.)"""
    if tuple(stride) != (1, 1):
        return "direct"
    same_size = input_hw[0] * input_hw[1] <= 1.25 * out_hw[0] * out_hw[1]
    return FLIPPED if same_size or batch < 128 else "direct"


def _forced(kernel: str, algo: str, args) -> str:
    """The kernel algorithm for a forced ``algo`` ('im2col' or 'direct')."""
    if kernel == "conv2d_backward_input" and algo == "direct":
        gy, _, input_hw, stride = args[:4]
        return direct_input_gradient(gy.shape[0], input_hw, gy.shape[2:], stride)
    return algo


def run_conv_kernel(backend, kernel: str, algo: str, *args, **keywords):
    """``backend.<kernel>(*args, algo, **keywords)`` with ``algo`` resolved as described in the module
    docstring; ``keywords``: the backward kernels' ``saved=`` (what earlier kernels returned)."""
    fn = getattr(backend, kernel)
    if algo == "auto":
        algo = _global_algo
    if algo != "auto":
        return fn(*args, _forced(kernel, algo, args), **keywords)
    key = (backend.NAME, kernel) + _signature(args)
    choice = _choices.get(key)
    if choice is not None:
        return fn(*args, choice, **keywords)
    sync = getattr(backend, "synchronize", lambda: None)
    best = None
    stride = args[3]  # every conv kernel's arguments: three arrays or shapes, then stride
    for candidate in candidates(kernel, stride):
        fn(*args, candidate, **keywords)  # warm-up: JIT compilation
        sync()
        elapsed = float("inf")
        for _ in range(TIMED_RUNS):
            start = time.perf_counter()
            out = fn(*args, candidate, **keywords)
            sync()
            elapsed = min(elapsed, time.perf_counter() - start)
        if best is None or elapsed < best[0]:
            best = (elapsed, candidate, out)
    _choices[key] = best[1]
    return best[2]
