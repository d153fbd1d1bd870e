"""GPU benchmark: the engine's cupy kernels against PyTorch (cuDNN / ATen CUDA), op by op.

Each op runs at LeNet's shapes (batch 256) and at two larger conv shapes, forward and backward.
Times are medians over ``--repeat`` calls after ``--warmup`` calls, per call:

    gpu_ms   CUDA-event time from just before the call to just after it (the queue is drained
             between calls, so this is the op's GPU time; tiny ops may be bound by the host)
    host_ms  time the host spends inside the call (launch overhead: Python, argument handling,
             kernel launches), measured without waiting for the GPU

``torch.backends.cudnn.benchmark = True``; TF32 is off for both sides unless ``--tf32`` (the
engine's float32 is full float32). With ``--epoch`` it also times one warm LeNet training epoch on each
side (the second of two, so neither NVRTC compiles, autotuning nor cuDNN's benchmark run is counted):
the engine's model, SGD and DataLoader(device='cuda'), and a plain PyTorch loop, both on the 60,000
FashionMNIST training images already on the GPU, with the seed's hyperparameters.

Usage: python -m benchmarks.gpu_compare [--quick] [--epoch] [--out results.md]
Exits with a message (status 1) when CuPy, PyTorch's CUDA or a GPU is missing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Callable, Dict, List


def _require_gpu():
    """(cupy, torch, engine's cupy backend) or exit with the reason."""
    try:
        import cupy
    except ImportError:
        sys.exit("gpu_compare: CuPy not installed (pip install cupy-cuda12x or cupy-cuda13x); nothing to benchmark")
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            raise RuntimeError("zero devices")
    except Exception as exc:
        sys.exit(f"gpu_compare: no CUDA device usable by CuPy ({exc}); nothing to benchmark")
    try:
        import torch
    except ImportError:
        sys.exit("gpu_compare: PyTorch not installed; it is the opponent")
    if not torch.cuda.is_available():
        sys.exit("gpu_compare: this PyTorch has no CUDA device (CPU-only build?); no cuDNN to compare with")
    from engine import backend

    return cupy, torch, backend.load("cupy")


# --- timing -------------------------------------------------------------------------------------


def time_op(fn: Callable, event_cls, elapsed_ms, warmup: int, repeat: int) -> Dict[str, float]:
    """Median GPU ms (events around each call) and host ms (the call itself) of ``fn()``."""
    for _ in range(warmup):
        fn()
    start, end = event_cls(), event_cls()
    end.record()
    end.synchronize()
    gpu, host = [], []
    for _ in range(repeat):
        start.record()
        t0 = time.perf_counter()
        fn()
        host.append((time.perf_counter() - t0) * 1e3)
        end.record()
        end.synchronize()
        gpu.append(elapsed_ms(start, end))
    return {"gpu_ms": statistics.median(gpu), "host_ms": statistics.median(host)}


# --- cases --------------------------------------------------------------------------------------

CONV_SHAPES = {
    # name: (N, C, H, W, O, K, stride, padding)
    "lenet_conv1": (256, 1, 28, 28, 6, 5, 1, 2),
    "lenet_conv2": (256, 6, 14, 14, 16, 5, 1, 0),
    "conv_64x64_32px_3x3": (64, 64, 32, 32, 64, 3, 1, 1),
    "conv_3x64_224px_7x7s2": (256, 3, 224, 224, 64, 7, 2, 3),
}


def conv_cases(cupy, torch, gpu, dtype, quick: bool):
    """(op, shape, direction, engine_fn, torch_fn) for every conv shape, algorithm and direction."""
    cases = []
    for name, spec in CONV_SHAPES.items():
        N, C, H, W = spec[:4]
        if not (quick and N * C * H * W > 2_000_000):
            cases += _conv_case(cupy, torch, gpu, dtype, name, spec)
    return cases


def _conv_case(cupy, torch, gpu, dtype, name, spec):
    F = torch.nn.functional
    aten = torch.ops.aten
    N, C, H, W, O, K, s, p = spec
    x = cupy.random.standard_normal((N, C, H, W)).astype(dtype)
    w = cupy.random.standard_normal((O, C, K, K)).astype(dtype)
    b = cupy.random.standard_normal((O,)).astype(dtype)
    tx, tw, tb = (torch.as_tensor(a, device="cuda") for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, stride=s, padding=p)
    gy = cupy.random.standard_normal(tuple(ty.shape)).astype(dtype)
    tgy = torch.as_tensor(gy, device="cuda")
    geom = ((s, s), (p, p), (1, 1))

    def t_bwd(mask):
        return lambda: aten.convolution_backward(tgy, tx, tw, [O], [s, s], [p, p], [1, 1], False, [0, 0], 1, mask)

    torch_fns = {
        "forward": lambda: F.conv2d(tx, tw, tb, stride=s, padding=p),
        "grad_input": t_bwd([True, False, False]),
        "grad_weight": t_bwd([False, True, False]),
    }
    cases = []
    for algo in ("im2col", "direct"):
        engine_fns = {
            "forward": lambda a=algo: gpu.conv2d_forward(x, w, b, *geom, a),
            "grad_input": lambda a=algo: gpu.conv2d_backward_input(gy, w, (H, W), *geom, a),
            "grad_weight": lambda a=algo: gpu.conv2d_backward_weight(gy, x, (K, K), *geom, a),
        }
        cases += [(f"conv2d[{algo}]", name, d, fn, torch_fns[d]) for d, fn in engine_fns.items()]
    return cases


def other_cases(cupy, torch, gpu, dtype):
    """Pooling, activations and the fused loss at LeNet's shapes (batch 256)."""
    F = torch.nn.functional
    aten = torch.ops.aten
    pool = ((2, 2), (2, 2), (0, 0))
    for name, shape in {"lenet_pool1": (256, 6, 28, 28), "lenet_pool2": (256, 16, 10, 10)}.items():
        x = cupy.random.standard_normal(shape).astype(dtype)
        tx = torch.as_tensor(x, device="cuda")
        y, idx = gpu.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
        gy = cupy.random.standard_normal(y.shape).astype(dtype)
        tgy = torch.as_tensor(gy, device="cuda")
        _, tidx = F.max_pool2d(tx, 2, 2, return_indices=True)
        yield (
            "avg_pool2d",
            name,
            "forward",
            lambda x=x: gpu.avg_pool2d_forward(x, *pool, False, True),
            lambda tx=tx: F.avg_pool2d(tx, 2, 2),
        )
        yield (
            "avg_pool2d",
            name,
            "backward",
            lambda gy=gy, s=shape: gpu.avg_pool2d_backward(gy, s[2:], *pool, False, True),
            lambda tgy=tgy, tx=tx: aten.avg_pool2d_backward(tgy, tx, [2, 2], [2, 2], [0, 0], False, True, None),
        )
        yield (
            "max_pool2d",
            name,
            "forward",
            lambda x=x: gpu.max_pool2d_forward(x, *pool, (1, 1), False),
            lambda tx=tx: F.max_pool2d(tx, 2, 2, return_indices=True),
        )
        yield (
            "max_pool2d",
            name,
            "backward",
            lambda gy=gy, idx=idx, s=shape: gpu.max_pool2d_backward(gy, idx, s[2:]),
            lambda tgy=tgy, tx=tx, tidx=tidx: aten.max_pool2d_with_indices_backward(
                tgy, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, tidx
            ),
        )
    x = cupy.random.standard_normal((256, 6, 28, 28)).astype(dtype)
    tx = torch.as_tensor(x, device="cuda")
    y = gpu.sigmoid_forward(x)
    ty = torch.sigmoid(tx)
    yield "sigmoid", "lenet_act1", "forward", lambda: gpu.sigmoid_forward(x), lambda: torch.sigmoid(tx)
    yield "sigmoid", "lenet_act1", "backward", lambda: gpu.sigmoid_backward(x, y), lambda: aten.sigmoid_backward(tx, ty)
    z = cupy.random.standard_normal((256, 10)).astype(dtype)
    t = cupy.random.randint(0, 10, 256).astype(cupy.int64)
    g = cupy.full((256,), 1 / 256, dtype)
    tz, tt, tg = (torch.as_tensor(a, device="cuda") for a in (z, t, g))
    tz.requires_grad_()

    def engine_ce():
        _, probs = gpu.softmax_cross_entropy_forward(z, t)
        return gpu.softmax_cross_entropy_backward(g, probs, t)

    yield (
        "softmax_cross_entropy",
        "lenet_loss",
        "fwd+bwd",
        engine_ce,
        lambda: torch.autograd.grad(F.cross_entropy(tz, tt, reduction="none"), tz, tg),
    )


# --- whole epochs, warm, both sides -------------------------------------------------------------

LENET = {"batch_size": 256, "lr": 0.9}  # the seed's


def time_warm_epoch(run_epoch: Callable[[int], object], synchronize: Callable[[], None]) -> Dict[str, float]:
    """Seconds of ``run_epoch(1)`` after ``run_epoch(0)`` has warmed up (compiles, autotuning, allocator).

    ``run_epoch(e)`` queues epoch ``e`` and returns its summed loss still on the device; reading it
    as a float synchronises once, at the end."""
    run_epoch(0)
    synchronize()
    t0 = time.perf_counter()
    total = float(run_epoch(1))
    return {"seconds": time.perf_counter() - t0, "summed_loss": total}


def torch_lenet_epoch(torch, images, labels, device: str = "cuda") -> Dict[str, float]:
    """A warm epoch of the seed's LeNet in plain PyTorch, the images (N, 1, 28, 28) already on ``device``."""
    nn = torch.nn
    X, Y = torch.as_tensor(images, device=device), torch.as_tensor(labels, device=device)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Flatten(), nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10),
    ).to(device)
    for m in model:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
    opt = torch.optim.SGD(model.parameters(), lr=LENET["lr"])
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    generator = torch.Generator(device=device).manual_seed(0)

    def epoch(_):
        perm = torch.randperm(len(Y), device=device, generator=generator)
        total = torch.zeros((), device=device)
        for i in range(0, len(Y), LENET["batch_size"]):
            idx = perm[i : i + LENET["batch_size"]]
            opt.zero_grad()
            loss = loss_fn(model(X[idx]), Y[idx])
            loss.mean().backward()
            opt.step()
            total += loss.detach().sum()
        return total

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    result = time_warm_epoch(epoch, sync)
    return {"seconds": result["seconds"], "mean_loss": result["summed_loss"] / len(Y)}


def engine_lenet_epoch(images, labels, device: str = "cuda") -> Dict[str, float]:
    """The same warm epoch with the engine: its LeNet, SGD and DataLoader (the batches built on ``device``,
    as train_lenet does), conv algorithm 'auto'."""
    import engine
    from engine import nn, optim
    from engine.data import DataLoader
    from engine.models import lenet

    engine.manual_seed(0)
    model = lenet().to(device)
    opt = optim.SGD(model.parameters(), lr=LENET["lr"])
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    loader = DataLoader((images, labels), batch_size=LENET["batch_size"], shuffle=True, seed=0, device=device)

    def epoch(e):
        total = engine.zeros((), device=device)
        for X, y in loader.batches(e):
            opt.zero_grad()
            loss = loss_fn(model(X), y)
            loss.mean().backward()
            opt.step()
            total = total + loss.detach().sum()
        return total.item()

    result = time_warm_epoch(epoch, engine.cuda.synchronize)
    return {"seconds": result["seconds"], "mean_loss": result["summed_loss"] / len(labels)}


def epoch_lines(engine_epoch: Dict[str, float], torch_epoch: Dict[str, float], n: int) -> List[str]:
    return [
        f"LeNet epoch, warm (the second of two; {n:,} images on the GPU, batch {LENET['batch_size']}, "
        f"SGD lr {LENET['lr']}): engine {engine_epoch['seconds']:.3f} s (mean loss {engine_epoch['mean_loss']:.4f}), "
        f"torch {torch_epoch['seconds']:.3f} s (mean loss {torch_epoch['mean_loss']:.4f}), "
        f"engine/torch {engine_epoch['seconds'] / torch_epoch['seconds']:.2f}",
    ]


# --- main ---------------------------------------------------------------------------------------


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="skip the 224x224 shape")
    parser.add_argument("--tf32", action="store_true", help="let torch use TF32 (not comparable)")
    parser.add_argument("--epoch", action="store_true", help="also time a warm LeNet epoch, engine and PyTorch")
    parser.add_argument("--data-dir", default=None, help="FashionMNIST directory for --epoch")
    parser.add_argument("--out", default=None, help="write the table (markdown) here, and JSON beside it")
    args = parser.parse_args(argv)

    cupy, torch, gpu = _require_gpu()
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    dtype = getattr(cupy, args.dtype)

    def cupy_ms(a, b):
        return cupy.cuda.get_elapsed_time(a, b)

    def torch_ms(a, b):
        return a.elapsed_time(b)

    def torch_event():
        return torch.cuda.Event(enable_timing=True)

    props = torch.cuda.get_device_properties(0)
    header = (
        f"GPU: {props.name}; driver {cupy.cuda.runtime.driverGetVersion()}, CUDA runtime "
        f"{cupy.cuda.runtime.runtimeGetVersion()}; CuPy {cupy.__version__}; torch {torch.__version__} "
        f"(cuDNN {torch.backends.cudnn.version()}); dtype {args.dtype}; TF32 {'on' if args.tf32 else 'off'}; "
        f"median of {args.repeat} after {args.warmup} warm-up calls"
    )
    print(header)
    rows = []
    cases = conv_cases(cupy, torch, gpu, dtype, args.quick) + list(other_cases(cupy, torch, gpu, dtype))
    for op, shape, direction, engine_fn, torch_fn in cases:
        e = time_op(engine_fn, cupy.cuda.Event, cupy_ms, args.warmup, args.repeat)
        t = time_op(torch_fn, torch_event, torch_ms, args.warmup, args.repeat)
        row = {
            "op": op,
            "shape": shape,
            "direction": direction,
            "engine_gpu_ms": e["gpu_ms"],
            "engine_host_ms": e["host_ms"],
            "torch_gpu_ms": t["gpu_ms"],
            "torch_host_ms": t["host_ms"],
            "ratio": e["gpu_ms"] / t["gpu_ms"] if t["gpu_ms"] > 0 else float("nan"),
        }
        rows.append(row)
        print(
            f"{op:24s} {shape:24s} {direction:12s} engine {e['gpu_ms']:8.3f} ms (host {e['host_ms']:.3f})"
            f"  torch {t['gpu_ms']:8.3f} ms (host {t['host_ms']:.3f})  ratio {row['ratio']:.2f}",
            flush=True,
        )

    lines = [
        header,
        "",
        "| op | shape | direction | engine GPU ms | engine host ms | torch GPU ms | torch host ms | engine/torch GPU |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['op']} | {r['shape']} | {r['direction']} | {r['engine_gpu_ms']:.3f} | {r['engine_host_ms']:.3f} "
        f"| {r['torch_gpu_ms']:.3f} | {r['torch_host_ms']:.3f} | {r['ratio']:.2f} |"
        for r in rows
    ]
    result = {"header": header, "rows": rows}
    if args.epoch:
        from engine.data import FashionMNIST

        train = FashionMNIST(args.data_dir, train=True)
        result["epoch"] = {"engine": engine_lenet_epoch(train.data, train.targets),
                           "torch": torch_lenet_epoch(torch, train.data, train.targets)}
        lines += [""] + epoch_lines(result["epoch"]["engine"], result["epoch"]["torch"], len(train.targets))
        print(lines[-1])
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(args.out.rsplit(".", 1)[0] + ".json", "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
