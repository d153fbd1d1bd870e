"""The cupy backend's kernel tests, run on the CPU through the CUDA emulator in tests/cuda_emulator/.

tests/test_kernels.py's cupy cases need a GPU; on machines without one this runs their float64 half in
a subprocess where ``import cupy`` is the emulator (numpy arrays, CUDA C compiled by g++ and run with
one CPU thread per CUDA thread). It checks the kernels' logic (indexing, tiling, shared-memory
staging, reductions) and the Python launch code (argument types, grid and block sizes, shared-memory
bytes) against torch and the reference backend; not GPU speed or memory behaviour. float32 differs
only by the ``T`` typedef (tests/test_cupy_compile.py compiles both), so it is left to the GPU run,
as are the hypothesis tests (``random_geometry``), which draw both dtypes.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _cxx20_threads_available() -> bool:
    if shutil.which("g++") is None:
        return False
    probe = subprocess.run(
        ["g++", "-std=c++20", "-fsyntax-only", "-x", "c++", "-"],
        input="#include <barrier>\nint main() { std::barrier<> b(1); b.arrive_and_wait(); }\n",
        capture_output=True,
        text=True,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _cxx20_threads_available(), reason="g++ with C++20 <barrier> not available")
def test_cupy_kernels_pass_on_the_cuda_emulator():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "cuda_emulator"), str(ROOT)])
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    command += [str(ROOT / "tests" / "test_kernels.py"), "-k", "cupy and not float32 and not random_geometry"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"emulated cupy kernel tests failed:\n{tail}"
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 100, f"expected the kernel tests to run, got: {summary}"
    assert "skipped" not in summary and "failed" not in summary, summary
