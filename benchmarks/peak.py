"""This machine's float32 multiply-add peak, measured: ``python -m benchmarks.peak``.

Each thread runs 8 independent fused multiply-add chains of 8 steps over its own row of 2048
floats (8 KiB: in L1), vectorised across the row, so nothing waits on memory or on one chain's
latency; the best of 30 runs (5 ms each) counts 2 FLOP per multiply-add (the 15 other operations per element
are not counted, so the figure errs low). On the project's 2-core AMD EPYC (Zen 4), 2 threads:
210-233 GFLOP/s, above the 166 that 32 FLOP/cycle at the nominal 2.6 GHz gives (it boosts).
"""
from __future__ import annotations

import argparse
import time

import numba
import numpy as np
from numba import njit, prange

STEPS, CHAINS, ROW = 8, 8, 2048


@njit(parallel=True, cache=True, fastmath={"contract"})
def _fma_chains(buf, reps, a, b):
    for t in prange(buf.shape[0]):
        row = buf[t]
        for _ in range(reps):
            for i in range(row.size):
                x = row[i]
                p0, p1, p2, p3 = x, x + a, x + b, x - a
                p4, p5, p6, p7 = x - b, x * a, x * b, -x
                for _step in range(STEPS):  # a constant trip count: LLVM unrolls it, then vectorises over i
                    p0, p1, p2, p3 = p0 * a + b, p1 * a + b, p2 * a + b, p3 * a + b
                    p4, p5, p6, p7 = p4 * a + b, p5 * a + b, p6 * a + b, p7 * a + b
                row[i] = ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))


def peak_gflops(threads: int, reps: int = 2000, runs: int = 30) -> float:
    """The float32 FMA throughput of ``threads`` Numba threads, in GFLOP/s."""
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        buf = np.random.default_rng(0).random((threads, ROW), np.float32)
        a, b = np.float32(0.999), np.float32(0.001)  # |p| stays bounded: no inf or denormals
        _fma_chains(buf, 1, a, b)  # compile / load from the cache
        best = float("inf")
        for _ in range(runs):
            start = time.perf_counter()
            _fma_chains(buf, reps, a, b)
            best = min(best, time.perf_counter() - start)
    finally:
        numba.set_num_threads(previous)
    return 2.0 * STEPS * CHAINS * buf.size * reps / best / 1e9


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=numba.config.NUMBA_NUM_THREADS)
    args = parser.parse_args(argv)
    for threads in range(1, args.threads + 1):
        print(f"{threads} thread(s): {peak_gflops(threads):.1f} GFLOP/s float32")


if __name__ == "__main__":
    main()
