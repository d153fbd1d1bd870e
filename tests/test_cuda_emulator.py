"""The GPU backend and the engine's cuda path, run on the CPU through the CUDA emulator (tests/cuda_emulator/).

Each test runs pytest in a subprocess where ``import cupy`` is the emulator: device arrays are ``cupy.ndarray``
(a numpy subclass the engine sees on cuda; mixing it with host arrays raises TypeError as CuPy does) and the
cupy backend's CUDA C (kernels/cupy_gpu/sources.py) is compiled by g++ and run with one CPU thread per CUDA
thread. This checks kernel logic (indexing, tiling, shared-memory staging, reductions), the Python launch code
(argument types, grid and block sizes, shared-memory bytes) and the engine's device plumbing against torch and
the reference backend; not GPU speed, memory, streams or multi-GPU behaviour, which need a real GPU
(scripts/gpu_check.sh).
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
TESTS = ROOT / "tests"
EMULATOR_PATH = TESTS / "cuda_emulator" / "pythonpath"  # holds only the emulator's ``cupy`` package


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


pytestmark = pytest.mark.skipif(
    not _cxx20_threads_available(),
    reason="g++ with C++20 <barrier> not available (the CUDA emulator compiles the cupy backend's CUDA C with it)",
)


def test_collecting_the_cuda_checks_leaves_cupy_to_the_real_one():
    """Without the emulator on PYTHONPATH, collecting engine_cuda_checks.py (pytest's default import mode puts its
    folder on sys.path) exposes no ``cupy``: wherever real CuPy is installed, it is the one imported."""
    checks = str(TESTS / "cuda_emulator" / "engine_cuda_checks.py")
    probe = (
        "import importlib.util, pytest\n"
        f"pytest.main(['-q', '--collect-only', '-p', 'no:cacheprovider', {checks!r}])\n"
        "spec = importlib.util.find_spec('cupy')\n"
        "print('CUPY:', spec.origin if spec else None)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_BACKEND"}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    found = [line for line in result.stdout.splitlines() if line.startswith("CUPY:")]
    assert found, result.stdout[-3000:] + result.stderr[-2000:]
    assert "cuda_emulator" not in found[0], found[0]
    assert "engine_cuda_checks.py" in result.stdout  # it was collected (or skipped as a whole, with its reason)


def run_on_emulator(*pytest_args: str) -> tuple:
    """Run pytest with the emulator as ``cupy``; return (summary line, counts, output tail), asserting success."""
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(EMULATOR_PATH), str(ROOT)])
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist", *pytest_args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    tail = result.stdout[-8000:] + result.stderr[-2000:]
    assert result.returncode == 0, f"failed on the CUDA emulator:\n{tail}"
    summary = result.stdout.strip().splitlines()[-1]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error)", summary)}
    return summary, counts, tail


def test_cupy_kernels_on_the_emulator():
    """tests/test_kernels.py's cupy cases, float64 (float32 differs only by the ``T`` typedef, which
    tests/test_cupy_compile.py compiles; the hypothesis cases draw both dtypes and are left to the GPU)."""
    summary, counts, tail = run_on_emulator(str(TESTS / "test_kernels.py"), "-k",
                                            "cupy and not float32 and not random_geometry")
    assert counts.get("passed", 0) > 100 and not counts.get("skipped"), summary


def test_engine_cuda_path_on_the_emulator():
    """engine_cuda_checks.py: .to/.cpu, Module.to, mixed-device errors, ops on cuda equal to the CPU, LeNet steps,
    DataLoader(device='cuda'), checkpoints, and ``python -m engine.train_lenet --device cuda``."""
    summary, counts, tail = run_on_emulator(str(TESTS / "cuda_emulator" / "engine_cuda_checks.py"))
    assert counts.get("passed", 0) >= 40, summary
    if counts.get("skipped"):  # only the training-script check may skip, when the dataset is missing
        assert counts["skipped"] == 1 and "FashionMNIST files not found" in tail, tail
        pytest.skip("cuda checks passed, but the train_lenet run was skipped: no FashionMNIST files")


def test_engine_suite_cupy_cases_on_the_emulator():
    """Every op/module/autograd/gradcheck test parametrized over backends, with the ``cupy`` backend."""
    ignored = ["test_kernels.py", "test_cuda_emulator.py", "test_cupy_compile.py"]
    summary, counts, tail = run_on_emulator(str(TESTS), "-k", "cupy",
                                            *(f"--ignore={TESTS / name}" for name in ignored))
    assert counts.get("passed", 0) > 300 and not counts.get("skipped"), summary
