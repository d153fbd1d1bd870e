"""pytest-benchmark cases: every op at LeNet's shapes and two larger convolutions, engine vs torch.

Run: ``pytest benchmarks/test_bench_ops.py --benchmark-group-by=param:case`` (add
``--benchmark-columns=median,min,max,rounds`` for a compact table). Each case runs twice: the raw
Numba kernel (``side=engine``, both conv algorithms) and the torch CPU op (``side=torch``), in the
same session and thread count (``BENCH_THREADS``, default 2). These are measurements, not tests:
nothing here asserts on time; ``python -m benchmarks.compare`` prints the ratios in one table.
"""
from __future__ import annotations

import os

import pytest
import torch

from benchmarks.cases import all_cases
from benchmarks.cases_modern import modern_cases
from kernels import numba_cpu

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
CASES = all_cases() + modern_cases()


def _case_id(case):
    return f"{case.op} | {case.shape}" + (f" | {case.algo}" if case.algo else "")


@pytest.fixture(scope="module", autouse=True)
def pinned_threads():
    before = numba_cpu.get_num_threads(), torch.get_num_threads()
    numba_cpu.set_num_threads(THREADS)
    torch.set_num_threads(THREADS)
    yield
    numba_cpu.set_num_threads(before[0])
    torch.set_num_threads(before[1])


@pytest.mark.parametrize("side", ["engine", "torch"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_op(benchmark, case, side):
    fn = case.engine if side == "engine" else case.torch
    fn()  # compile / warm up outside the timing
    benchmark.extra_info.update(op=case.op, shape=case.shape, algo=case.algo, side=side, threads=THREADS)
    if case.flops:
        benchmark.extra_info["flops"] = case.flops
    benchmark(fn)
