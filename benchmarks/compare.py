"""Engine (Numba backend) against PyTorch CPU on this machine: ``python -m benchmarks.compare``.

Prints one table: every op at LeNet's shapes (batch 256) and two larger convolutions, the raw
Numba kernel against the torch op (both algorithms for convolutions), then a whole LeNet training
step (batch 256, SGD lr 0.9) and inference over 10,000 FashionMNIST test images through the
engine's public API against torch's. Engine and torch runs alternate (A/B interleaved) so that
load from other processes hits both alike; the table quotes medians (and the engine's minimum).

Both OpenMP runtimes (torch's libgomp and the one Numba's pool loads) read their wait policy
when they start; unless the environment sets OMP_WAIT_POLICY or GOMP_SPINCOUNT, it is set here
to PASSIVE (as kernels/numba_cpu/threads.py does) before either starts, so both sides run alike.
BLAS: the engine's numpy matmuls run on one OpenBLAS thread (see kernels/numba_cpu/threads.py);
torch's MKL keeps its own setting.

GFLOP/s counts the multiply-adds of convolutions and linear layers only (2 FLOP each; a LeNet
training step at batch 256 is 0.58 GFLOP); "peak" is the fraction of this machine's float32 FMA
peak at --threads threads, measured first by ``benchmarks.peak``.

Options: --threads N (both sides; default 2), --repeat R (timed runs per side), --only TEXT
(keep rows whose op or shape contains TEXT), --no-ops, --no-train, --no-inference, --small
(skip the batch-64 convolutions), --no-fusion (the whole networks unfused).
"""
from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import time
from pathlib import Path

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # before torch loads its OpenMP runtime

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.blas import describe_blas  # noqa: E402
from kernels import numba_cpu as nb  # noqa: E402

ROW = "{:<30} {:<42} {:<6} {:>9} {:>9} {:>9} {:>6} {:>8} {:>5} {:>10}"
PEAK = {"gflops": 0.0}  # set by main() from benchmarks.peak


def interleaved(engine_fn, torch_fn, repeat: int, warmup: int = 2):
    """(engine times, torch times) in seconds, alternating which side runs first."""
    for _ in range(warmup):
        engine_fn()
        torch_fn()
    te, tt = [], []
    for i in range(repeat):
        pair = [(engine_fn, te), (torch_fn, tt)]
        for fn, times in (pair if i % 2 == 0 else pair[::-1]):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return te, tt


def _row(op, shape, algo, te, tt, flops=0.0, workspace=""):
    me, mt = statistics.median(te), statistics.median(tt)
    gflops = f"{flops / me / 1e9:.1f}" if flops else ""
    peak = f"{flops / me / 1e9 / PEAK['gflops']:.0%}" if flops and PEAK["gflops"] else ""
    print(ROW.format(op, shape[:42], algo, f"{me * 1e3:.3f}", f"{min(te) * 1e3:.3f}", f"{mt * 1e3:.3f}",
                     f"{me / mt:.2f}", gflops, peak, workspace))


def run_ops(args):
    from benchmarks.cases import all_cases
    from benchmarks.cases_modern import modern_cases

    for case in all_cases(large=not args.small) + modern_cases():
        if args.only and args.only not in case.op and args.only not in case.shape:
            continue
        nb.reset_peak_workspace()
        case.engine()
        workspace = str(nb.peak_workspace_bytes()) if case.op.startswith("conv") else ""
        te, tt = interleaved(case.engine, case.torch, args.repeat)
        _row(case.op, case.shape, case.algo, te, tt, case.flops, workspace)


# --- whole-network comparisons through the public APIs ------------------------------------------


def torch_lenet():
    from torch import nn

    net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10))
    for m in net:
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
    return net


def engine_lenet_like(tnet):
    """The same LeNet in the engine, with torch's initial parameter values."""
    import engine
    from engine.models import lenet

    net = lenet()
    tparams = dict(tnet.named_parameters())
    for name, p in net.named_parameters():
        p.data = engine.tensor(tparams[name].detach().numpy().copy())
    return net


def lenet_flops(batch: int, training: bool) -> float:
    """Multiply-add FLOPs of LeNet's convolutions and linear layers: the forward, and for training
    also every backward product (weights everywhere; inputs everywhere but the first conv)."""
    convs = [2.0 * batch * 6 * 1 * 25 * 28 * 28, 2.0 * batch * 16 * 6 * 25 * 10 * 10]
    linears = [2.0 * batch * i * o for i, o in ((400, 120), (120, 84), (84, 10))]
    forward = sum(convs) + sum(linears)
    if not training:
        return forward
    return forward + convs[0] + 2 * convs[1] + 2 * sum(linears)


def fashion_mnist_test():
    """(images (10000, 1, 28, 28) float32 in [0, 1], labels int64), or random data if absent."""
    root = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    try:
        with gzip.open(root / "t10k-images-idx3-ubyte.gz") as f:
            images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
        with gzip.open(root / "t10k-labels-idx1-ubyte.gz") as f:
            labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
        return (images / np.float32(255)).astype(np.float32), labels, "FashionMNIST test set"
    except OSError:
        rng = np.random.default_rng(0)
        return rng.random((10000, 1, 28, 28), np.float32), rng.integers(0, 10, 10000), "random images"


def run_train(args):
    import engine

    torch.manual_seed(0)
    tnet = torch_lenet()
    enet = engine_lenet_like(tnet)
    images, labels, _ = fashion_mnist_test()
    x, y = images[:256], labels[:256]
    ex, ey = engine.tensor(x), engine.tensor(y)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    ecrit, tcrit = engine.nn.CrossEntropyLoss(reduction="none"), torch.nn.CrossEntropyLoss(reduction="none")
    eopt, topt = engine.optim.SGD(enet.parameters(), lr=0.9), torch.optim.SGD(tnet.parameters(), lr=0.9)

    def engine_step():
        eopt.zero_grad()
        ecrit(enet(ex), ey).mean().backward()
        eopt.step()

    def torch_step():
        topt.zero_grad()
        tcrit(tnet(tx), ty).mean().backward()
        topt.step()

    start = time.perf_counter()
    engine_step()  # the first step also picks conv algorithms (algo='auto')
    first = time.perf_counter() - start
    te, tt = interleaved(engine_step, torch_step, args.repeat, warmup=3)
    _row("LeNet training step", "batch 256, SGD lr 0.9", args.algo, te, tt, lenet_flops(256, training=True))
    print(f"  engine first step (algo selection, warm JIT cache): {first * 1e3:.0f} ms; "
          f"torch min {min(tt) * 1e3:.3f} ms")
    _print_choices()


def _print_choices():
    import engine

    chosen = engine.autotune.chosen_algos()
    if chosen:
        picks = [f"{key[1].replace('conv2d_', '')} {key[2][0][0]}: {algo}" for key, algo in chosen.items()]
        print("  algo='auto' picked: " + "; ".join(picks))


def run_inference(args):
    import engine

    torch.manual_seed(0)
    tnet = torch_lenet().eval()
    enet = engine_lenet_like(tnet)
    images, labels, source = fashion_mnist_test()
    batches = [(images[i:i + 256], labels[i:i + 256]) for i in range(0, len(images), 256)]
    e_batches = [engine.tensor(b) for b, _ in batches]
    t_batches = [torch.from_numpy(b) for b, _ in batches]

    def engine_pass():
        with engine.no_grad():
            return sum(int((enet(b).argmax(1).numpy() == lab).sum()) for b, (_, lab) in zip(e_batches, batches))

    def torch_pass():
        with torch.no_grad():
            return sum(int((tnet(b).argmax(1).numpy() == lab).sum()) for b, (_, lab) in zip(t_batches, batches))

    assert engine_pass() == torch_pass(), "engine and torch disagree on the predictions"
    te, tt = interleaved(engine_pass, torch_pass, max(3, args.repeat // 4), warmup=1)
    _row("LeNet inference", f"10,000 images ({source[:12]}), batch 256", args.algo, te, tt,
         lenet_flops(len(images), training=False))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--only", default="")
    parser.add_argument("--no-ops", action="store_true")
    parser.add_argument("--no-train", action="store_true")
    parser.add_argument("--no-inference", action="store_true")
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--no-fusion", action="store_true",
                        help="run the whole networks unfused (engine.set_fusion(False)): each layer its own kernels")
    parser.add_argument("--algo", default="auto", choices=["auto", "direct", "im2col"],
                        help="conv algorithm of the whole-network runs (engine.set_conv_algo)")
    args = parser.parse_args(argv)

    nb.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    try:
        import engine

        engine.set_backend("numba")
        engine.set_num_threads(args.threads)
        engine.set_conv_algo(args.algo)
        engine.set_fusion(not args.no_fusion)
    except ImportError:
        engine = None
    print("\n".join(describe_blas()))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load:.1f}; "
          f"threads: numba {nb.get_num_threads()}, torch {torch.get_num_threads()} "
          f"(torch {torch.__version__}); OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')} "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', '-')}; float32; "
          f"{args.repeat} interleaved runs per side")
    from benchmarks.peak import peak_gflops

    PEAK["gflops"] = peak_gflops(args.threads)
    print(f"measured float32 FMA peak at {args.threads} threads: {PEAK['gflops']:.1f} GFLOP/s "
          f"(benchmarks.peak); engine conv fusion: {engine.get_fusion() if engine else '-'}")
    print(ROW.format("op", "shape", "algo", "engine ms", "eng min", "torch ms", "ratio", "GFLOP/s", "peak",
                     "workspace"))
    if not args.no_ops:
        run_ops(args)
    if engine is not None and not args.no_train:
        run_train(args)
    if engine is not None and not args.no_inference:
        run_inference(args)


if __name__ == "__main__":
    main()
