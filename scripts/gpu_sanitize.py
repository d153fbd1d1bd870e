"""Call every kernel of the cupy backend once at LeNet's shapes, for compute-sanitizer to watch.

    compute-sanitizer --tool memcheck --error-exitcode 1 python3 scripts/gpu_sanitize.py --batch 32
    compute-sanitizer --tool racecheck --error-exitcode 1 python3 scripts/gpu_sanitize.py --batch 4

Each contract kernel runs once per dtype (both conv algorithms), on LeNet's channel and spatial shapes with a
small batch (the sanitizers are slow). CuPy's memory pool is switched off, so every array is its own
allocation and memcheck sees a write past its end (inside a pool block it would not). The script
exits 1 when a kernel of the contract was not called (a new kernel must be added here).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Callable, Dict

import numpy as np

from kernels.contract import KERNELS


def calls(gpu, xp, n: int, dtype) -> Dict[str, Callable[[], object]]:
    """{label: a call of one kernel}, each label starting with the contract's name; LeNet's layers, batch ``n``."""
    rng = np.random.default_rng(0)

    def randn(*shape):
        return xp.asarray(rng.standard_normal(shape).astype(dtype))

    one, none = (1, 1), (0, 0)
    found = {}
    # conv1 (1 -> 6, 28x28, k5 pad 2) and conv2 (6 -> 16, 14x14, k5)
    for layer, (c, o, hw, pad) in {"conv1": (1, 6, 28, 2), "conv2": (6, 16, 14, 0)}.items():
        x, w, b = randn(n, c, hw, hw), randn(o, c, 5, 5), randn(o)
        gy = randn(n, o, hw + 2 * pad - 4, hw + 2 * pad - 4)
        geometry = (one, (pad, pad), one)
        for algo in ("direct", "im2col"):
            found[f"conv2d_forward {layer} {algo}"] = partial(gpu.conv2d_forward, x, w, b, *geometry, algo)
            found[f"conv2d_backward_input {layer} {algo}"] = partial(
                gpu.conv2d_backward_input, gy, w, (hw, hw), *geometry, algo)
            found[f"conv2d_backward_weight {layer} {algo}"] = partial(
                gpu.conv2d_backward_weight, gy, x, (5, 5), *geometry, algo)
    # pool1 (6x28x28) and pool2 (16x10x10), 2x2 stride 2
    for layer, (c, hw) in {"pool1": (6, 28), "pool2": (16, 10)}.items():
        x, gy = randn(n, c, hw, hw), randn(n, c, hw // 2, hw // 2)
        window = ((2, 2), (2, 2), none)
        _, index = gpu.max_pool2d_forward(x, *window, one, False)
        found[f"avg_pool2d_forward {layer}"] = partial(gpu.avg_pool2d_forward, x, *window, False, True)
        found[f"avg_pool2d_backward {layer}"] = partial(gpu.avg_pool2d_backward, gy, (hw, hw), *window, False, True)
        found[f"max_pool2d_forward {layer}"] = partial(gpu.max_pool2d_forward, x, *window, one, False)
        found[f"max_pool2d_backward {layer}"] = partial(gpu.max_pool2d_backward, gy, index, (hw, hw))
    x = randn(n, 6, 28, 28)
    for name in ("sigmoid", "relu", "tanh"):
        forward = getattr(gpu, f"{name}_forward")
        found[f"{name}_forward conv1"] = partial(forward, x)
        found[f"{name}_backward conv1"] = partial(getattr(gpu, f"{name}_backward"), x, forward(x))
    logits, gloss = randn(n, 10), randn(n)
    target = xp.asarray(rng.integers(0, 10, n).astype(np.int64))
    _, probs = gpu.softmax_cross_entropy_forward(logits, target)
    found["softmax_cross_entropy_forward fc3"] = partial(gpu.softmax_cross_entropy_forward, logits, target)
    found["softmax_cross_entropy_backward fc3"] = partial(gpu.softmax_cross_entropy_backward, gloss, probs, target)
    # LeNet-BN's first batch norm (6 channels of 28x28), dropout and adaptive pooling at the same size
    x, gy = randn(n, 6, 28 * 28), randn(n, 6, 28 * 28)
    weight, bias = randn(6), randn(6)
    _, mean, var = gpu.batch_norm_forward_train(x, weight, bias, 1e-5)
    invstd = 1 / xp.sqrt(var + 1e-5)
    found["batch_norm_forward_train bn1"] = partial(gpu.batch_norm_forward_train, x, weight, bias, 1e-5)
    found["batch_norm_forward_eval bn1"] = partial(gpu.batch_norm_forward_eval, x, mean, var, weight, bias, 1e-5)
    found["batch_norm_backward bn1"] = partial(gpu.batch_norm_backward, gy, x, mean, invstd, weight, True)
    keep = xp.asarray((rng.random((n, 6, 28 * 28)) < 0.5).astype(np.uint8))
    found["dropout_forward bn1"] = partial(gpu.dropout_forward, x, keep, 2.0)
    found["dropout_backward bn1"] = partial(gpu.dropout_backward, gy, keep, 2.0)
    x, gy = randn(n, 6, 28, 28), randn(n, 6, 5, 5)
    found["adaptive_avg_pool2d_forward pool1"] = partial(gpu.adaptive_avg_pool2d_forward, x, (5, 5))
    found["adaptive_avg_pool2d_backward pool1"] = partial(gpu.adaptive_avg_pool2d_backward, gy, (28, 28))
    found["adaptive_max_pool2d_forward pool1"] = partial(gpu.adaptive_max_pool2d_forward, x, (5, 5))
    return found


def run(gpu, xp, n: int, dtypes=(np.float32, np.float64), synchronize=lambda: None) -> int:
    """Make every call, print one line each; 1 when a contract kernel was left out, else 0."""
    called = set()
    for dtype in dtypes:
        for label, call in calls(gpu, xp, n, dtype).items():
            call()
            synchronize()  # an error is reported at the kernel that caused it
            called.add(label.split()[0])
            print(f"{np.dtype(dtype).name:8s} {label}", flush=True)
    missed = sorted(set(KERNELS) - called)
    if missed:
        print(f"gpu_sanitize: not called: {', '.join(missed)}", file=sys.stderr)
        return 1
    print(f"gpu_sanitize: called all {len(KERNELS)} kernels of the contract, batch {n}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    args = parser.parse_args(argv)
    import cupy

    if hasattr(cupy.cuda, "set_allocator"):  # the emulator has no memory pool to switch off
        cupy.cuda.set_allocator(None)
    import kernels.cupy_gpu as gpu

    return run(gpu, cupy, args.batch, synchronize=gpu.synchronize)


if __name__ == "__main__":
    sys.exit(main())
