"""Where one LeNet training step spends its time: ``python -m benchmarks.profile_step``.

Runs the tutorial's LeNet (batch 256, SGD lr 0.9, random FashionMNIST-shaped data) for a few
warm-up steps, times ``--steps`` steps, then runs them again under cProfile and prints, per step,
the milliseconds of every function that took at least 1% (its own time, not its callees'), and
the median step time without the profiler. ``--no-fusion`` runs the unfused path (each layer its
own kernels), ``--threads N`` sets the kernels' threads (default 2), ``--inference`` profiles the
forward alone under no_grad (one batch of 256 and its argmax, as benchmarks.compare's inference).
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.blas import describe_blas


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-fusion", action="store_true")
    parser.add_argument("--inference", action="store_true")
    args = parser.parse_args(argv)

    import engine
    from engine.models import lenet

    engine.set_backend("numba")
    engine.set_num_threads(args.threads)
    if args.no_fusion:
        engine.set_fusion(False)
    engine.manual_seed(0)
    net = lenet()
    rng = np.random.default_rng(0)
    x = engine.tensor(rng.random((256, 1, 28, 28), np.float32))
    y = engine.tensor(rng.integers(0, 10, 256))
    criterion = engine.nn.CrossEntropyLoss()
    optimizer = engine.optim.SGD(net.parameters(), lr=0.9)

    def step():
        if args.inference:
            with engine.no_grad():
                net(x).argmax(1).numpy()
            return
        optimizer.zero_grad()
        criterion(net(x), y).backward()
        optimizer.step()

    for _ in range(5):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.steps):
        step()
    profile.disable()

    stats = pstats.Stats(profile).stats  # (file, line, name) -> (calls, _, tottime, cumtime, _)
    total = sum(entry[2] for entry in stats.values())
    print("\n".join(describe_blas()))
    print(f"{'inference, ' if args.inference else ''}{'fusion off' if args.no_fusion else 'fusion on'}, "
          f"{args.threads} threads: median step "
          f"{statistics.median(times) * 1e3:.2f} ms, min {min(times) * 1e3:.2f} ms (no profiler); "
          f"under cProfile {total / args.steps * 1e3:.2f} ms/step")
    print(f"{'ms/step':>8} {'calls/step':>10}  function")
    for (path, line, name), (_, calls, own, _, _) in sorted(stats.items(), key=lambda kv: -kv[1][2]):
        if own < 0.01 * total:
            break
        where = f"{Path(path).parent.name}/{Path(path).name}:{line}" if line else path
        print(f"{own / args.steps * 1e3:8.3f} {calls / args.steps:10.1f}  {name} ({where})")


if __name__ == "__main__":
    main()
