"""Data-parallel LeNet training on 1 and 2 MPI ranks: ``python -m benchmarks.distributed``.

Runs ``mpiexec -n K`` (K = 1, 2; one thread per rank) on its own worker mode, alternating K over
``--rounds`` rounds so that load from other processes hits both alike, and prints per K: the
global batch and each rank's share, the medians of a step and of its parts (forward, backward,
gradient allreduce, SGD update), images per second, the fastest step (what the machine does when
other processes leave it alone), and the cost of the gradient allreduce alone
(61,706 float32 parameters, after a barrier, so without waiting for a slower rank).

Options: --batch-size B (global, default 256), --steps S (timed steps, default 20), --rounds R
(default 3), --ranks 1,2.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 3
PARTS = ("forward", "backward", "allreduce", "update", "step")


def worker(batch_size: int, steps: int) -> None:
    """One rank: time ``steps`` training steps, then the bare allreduce; rank 0 prints a JSON line."""
    import engine
    from engine import nn
    from engine.distributed import DistributedContext
    from engine.models import lenet

    engine.set_num_threads(1)
    dist = DistributedContext()
    engine.manual_seed(0)
    model = lenet()
    dist.broadcast_module(model)
    rng = np.random.default_rng(0)
    n = batch_size * (steps + WARMUP)
    data = rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)
    loader = dist.data_loader(data, batch_size, shuffle=True, seed=0)
    optimizer = engine.optim.SGD(model.parameters(), lr=0.1)
    criterion = nn.CrossEntropyLoss()
    times = {part: [] for part in PARTS}
    dist.barrier()
    for i, (X, y) in enumerate(loader.batches(0)):
        t0 = time.perf_counter()
        optimizer.zero_grad()
        loss = criterion(model(X), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        dist.average_gradients(model, samples=len(y))
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        if i >= WARMUP:
            for part, seconds in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                times[part].append(seconds)
    bare = []
    for _ in range(50):
        dist.barrier()
        t0 = time.perf_counter()
        dist.average_gradients(model)
        bare.append(time.perf_counter() - t0)
    medians = {part: statistics.median(v) for part, v in times.items()}
    medians["bare_allreduce"] = statistics.median(bare)
    medians["fastest_step"] = min(times["step"])
    if dist.is_main:  # rank 0's times: its step time includes waiting for the others in the allreduce
        print("RESULT " + json.dumps(dict(medians, ranks=dist.size, local_batch=len(y))), flush=True)


def run_ranks(ranks: int, batch_size: int, steps: int) -> dict:
    mpiexec = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    if mpiexec is None:
        raise SystemExit("mpiexec not found: run `bash scripts/install_mpi.sh`")
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    command = [mpiexec, "-n", str(ranks), sys.executable, "-m", "benchmarks.distributed", "--worker",
               "--batch-size", str(batch_size), "--steps", str(steps)]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"{ranks}-rank run failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(lines[0][len("RESULT "):])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ranks", default="1,2")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.batch_size, args.steps)
        return
    ranks = [int(k) for k in args.ranks.split(",")]
    runs = {k: [] for k in ranks}
    for _ in range(args.rounds):
        for k in ranks:
            runs[k].append(run_ranks(k, args.batch_size, args.steps))
    print(f"LeNet-5 training, global batch {args.batch_size}, {args.steps} timed steps x {args.rounds} rounds, "
          f"one thread per rank; {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("medians over rounds of each round's median (ms); images/s = global batch / step; "
          "fastest: the fastest step of all rounds")
    row = "{:>5} {:>6} {:>8} {:>8} {:>9} {:>7} {:>7} {:>8} {:>7} {:>8} {:>11} {:>14}"
    print(row.format("ranks", "batch", "forward", "backward", "allreduce", "update", "step", "images/s", "speedup",
                     "fastest", "(images/s)", "bare allreduce"))
    base = None
    for k in ranks:
        med = {part: statistics.median(r[part] for r in runs[k]) for part in PARTS + ("bare_allreduce",)}
        images = args.batch_size / med["step"]
        base = base or images
        fastest = min(r["fastest_step"] for r in runs[k])
        print(row.format(k, f"{k}x{runs[k][0]['local_batch']}", *(f"{med[p] * 1e3:.2f}" for p in PARTS),
                         f"{images:.0f}", f"{images / base:.2f}", f"{fastest * 1e3:.2f}",
                         f"{args.batch_size / fastest:.0f}", f"{med['bare_allreduce'] * 1e3:.3f}"))
    per_image = statistics.median(r["backward"] for r in runs[ranks[0]]) / runs[ranks[0]][0]["local_batch"]
    print(f"backward per image ({ranks[0]} rank{'s' if ranks[0] > 1 else ''}): {per_image * 1e6:.1f} us")


if __name__ == "__main__":
    main()
