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

import ast
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Dict
from xml.etree import ElementTree

import numpy as np
import pytest

from engine import backend
from kernels.contract import KERNELS

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


# Where real CuPy sees a GPU, the suite runs the cupy cases on it: the emulator stands in only where it is absent.
INSTEAD_OF_A_GPU = pytest.mark.skipif(backend.is_available("cupy"),
                                      reason="real CuPy sees a GPU here: the suite's cupy cases run on it")


def test_collecting_the_cuda_checks_leaves_cupy_to_the_real_one():
    """Without the emulator on PYTHONPATH, collecting engine_cuda_checks.py (pytest's default import mode puts its
    folder on sys.path) exposes no ``cupy``: wherever real CuPy is installed, it is the one imported."""
    checks = str(TESTS / "cuda_emulator" / "engine_cuda_checks.py")
    probe = (
        "import importlib.util, pytest\n"
        f"pytest.main(['-q', '--collect-only', '--noconftest', '-p', 'no:cacheprovider', {checks!r}])\n"
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


def run_on_emulator(report: pathlib.Path, *pytest_args: str) -> Dict[str, str]:
    """Run pytest with the emulator as ``cupy``, asserting success; {"file::test[id]": outcome} from its JUnit
    ``report``, outcome "passed", "failed" or "skipped: <reason>"."""
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(EMULATOR_PATH), str(ROOT)])
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
               f"--junitxml={report}", *pytest_args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"failed on the CUDA emulator:\n{result.stdout[-8000:]}{result.stderr[-2000:]}"
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            outcome = "failed"
        else:
            outcome = "passed" if skipped is None else f"skipped: {skipped.get('message', '')}"
        outcomes[f"{case.get('classname').rsplit('.', 1)[-1]}.py::{case.get('name')}"] = outcome
    return outcomes


def defined_tests(path: pathlib.Path, taking: str = None) -> set:
    """Names of the test functions defined in ``path`` (those with a parameter ``taking``, when given)."""
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
            and (taking is None or taking in [a.arg for a in node.args.args])}


def missing_cupy_runs(outcomes: Dict[str, str], path: pathlib.Path, functions: set) -> list:
    """The ``functions`` of ``path`` without a passed cupy case in ``outcomes``."""
    passed = {key.split("::")[1].split("[")[0] for key, outcome in outcomes.items()
              if key.startswith(path.name + "::") and "cupy" in key and outcome == "passed"}
    return sorted(f"{path.name}::{name}" for name in functions - passed)


@pytest.mark.slow
@INSTEAD_OF_A_GPU
def test_cupy_kernels_on_the_emulator(tmp_path):
    """tests/test_kernels.py's cupy cases, float64 (float32 differs only by the ``T`` typedef, which
    tests/test_cupy_compile.py compiles; the hypothesis cases draw both dtypes and are left to the GPU):
    every kernel test ran with cupy and passed."""
    path = TESTS / "test_kernels.py"
    outcomes = run_on_emulator(tmp_path / "report.xml", str(path), "-k", "cupy and not float32 and not random_geometry")
    assert set(outcomes.values()) == {"passed"}, {k: v for k, v in outcomes.items() if v != "passed"}
    functions = {name for name in defined_tests(path, taking="be") if "random_geometry" not in name}
    assert len(functions) >= 10 and not missing_cupy_runs(outcomes, path, functions), missing_cupy_runs(
        outcomes, path, functions)


@pytest.mark.slow
@INSTEAD_OF_A_GPU
def test_engine_cuda_path_on_the_emulator(tmp_path):
    """engine_cuda_checks.py: .to/.cpu, Module.to, mixed-device errors, ops on cuda equal to the CPU, LeNet steps,
    DataLoader(device='cuda'), checkpoints, and ``python -m engine.train_lenet --device cuda``: every check passed
    (the training-script check may skip only for want of the dataset)."""
    path = TESTS / "cuda_emulator" / "engine_cuda_checks.py"
    outcomes = run_on_emulator(tmp_path / "report.xml", str(path))
    ran = {key.split("::")[1].split("[")[0]: outcome for key, outcome in outcomes.items()}
    assert set(ran) == defined_tests(path), set(ran) ^ defined_tests(path)
    not_passed = {k: v for k, v in outcomes.items() if v != "passed"}
    train = [k for k in not_passed if "test_train_lenet_on_cuda_matches_cpu" in k]
    assert set(not_passed) <= set(train), not_passed
    if train:
        assert "FashionMNIST files not found" in not_passed[train[0]], not_passed
        pytest.skip("cuda checks passed, but the train_lenet run was skipped: no FashionMNIST files")


@pytest.mark.slow
@INSTEAD_OF_A_GPU
def test_engine_suite_cupy_cases_on_the_emulator(tmp_path):
    """Every op/module/autograd/gradcheck test parametrized over backends ran with the ``cupy`` backend and passed."""
    ignored = ["test_kernels.py", "test_cuda_emulator.py", "test_cupy_compile.py", "test_gpu_check.py"]
    outcomes = run_on_emulator(tmp_path / "report.xml", str(TESTS), "-k", "cupy",
                               *(f"--ignore={TESTS / name}" for name in ignored))
    assert set(outcomes.values()) == {"passed"}, {k: v for k, v in outcomes.items() if v != "passed"}
    missing, functions = [], 0
    for path in sorted(TESTS.glob("test_*.py")):
        if path.name not in ignored:
            wanted = defined_tests(path, taking="backend")
            functions += len(wanted)
            missing += missing_cupy_runs(outcomes, path, wanted)
    assert functions >= 40 and not missing, missing


@INSTEAD_OF_A_GPU
def test_the_sanitizer_script_calls_every_kernel_on_the_emulator():
    """scripts/gpu_sanitize.py, which the GPU check runs under compute-sanitizer, runs through on cupy."""
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(EMULATOR_PATH), str(ROOT)])
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_sanitize.py"), "--batch", "1"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"gpu_sanitize: called all {len(KERNELS)} kernels of the contract, batch 1" in result.stdout


# --- mutations of the CUDA C that the emulator must catch ------------------------------------------------------

MUTATION_PROBE = """
import sys
from typing import Dict
from xml.etree import ElementTree

import numpy as np
import numpy as np
import cupy
import reference
import kernels.cupy_gpu as gpu
from kernels.cupy_gpu import _compile, sources

source, old, new, case = sys.argv[1:5]
rng = np.random.default_rng(0)
if case == "padded_conv":  # conv1-like, padding 2: the direct kernel stages a tile with a zero halo
    x, w = rng.standard_normal((2, 1, 12, 12)), rng.standard_normal((6, 1, 5, 5))
    geometry = ((1, 1), (2, 2), (1, 1))
    run = lambda xp, m: m.conv2d_forward(xp.asarray(x), xp.asarray(w), None, *geometry, "direct")[0]
else:  # overlapping max-pool windows over equal values: many windows pick the same input
    x, gy = np.full((2, 3, 7, 7), -1.0), rng.standard_normal((2, 3, 7, 7))
    _, index = reference.max_pool2d_forward(x, (3, 3), (1, 1), (1, 1), (1, 1), False)
    run = lambda xp, m: m.max_pool2d_backward(xp.asarray(gy), xp.asarray(index), (7, 7))
expected = run(np, reference)
for label in ("unmutated", "mutated"):
    if label == "mutated":
        assert sources.RAW_SOURCES[source].count(old) == 1, "the mutation does not apply"
        sources.RAW_SOURCES[source] = sources.RAW_SOURCES[source].replace(old, new)
        _compile._module.cache_clear()
        _compile._function.cache_clear()
    try:
        got = cupy.asnumpy(run(cupy, gpu))
        print(label, "max error", float(np.max(np.abs(got - expected))))
    except AssertionError as exc:
        print(label, "emulator error", exc)
"""


def run_mutation(source, old, new, case):
    """{'unmutated': line, 'mutated': line}: the kernel's result against reference before and after the mutation."""
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(EMULATOR_PATH), str(ROOT)])
    result = subprocess.run([sys.executable, "-c", MUTATION_PROBE, source, old, new, case], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {line.split()[0]: line for line in result.stdout.splitlines() if line.split()[:1] in (["unmutated"],
                                                                                                  ["mutated"])}


def test_an_unwritten_padding_halo_in_shared_memory_is_caught():
    """Shared memory starts as NaN: a tile whose halo is left unwritten gives NaN, not a tiny error."""
    lines = run_mutation(
        "CONV_DIRECT",
        "x_s[i] = (h >= 0 && h < H && ww >= 0 && ww < W) ? xs[((c0 + cc) * H + h) * W + ww] : (T)0;",
        "if (h >= 0 && h < H && ww >= 0 && ww < W) x_s[i] = xs[((c0 + cc) * H + h) * W + ww];",
        "padded_conv")
    assert float(lines["unmutated"].split()[-1]) < 1e-12, lines
    assert lines["mutated"].endswith("max error nan"), lines


def test_atomic_add_replaced_by_a_plain_add_is_caught():
    """Two CUDA threads storing to one element without atomicAdd fail the launch (run in order, they would
    add up right: the store-ownership check, not the shuffled order, is what catches this)."""
    lines = run_mutation(
        "POOL",
        "atomicAdd(gx + (size_t)(i / OHW) * HW + idx[i], gy[i]);",
        "gx[(size_t)(i / OHW) * HW + idx[i]] += gy[i];",
        "overlapping_pool")
    assert float(lines["unmutated"].split()[-1]) < 1e-12, lines
    assert "emulator error max_pool2d_backward: gx[" in lines["mutated"], lines
    assert "without atomicAdd (a race on a GPU)" in lines["mutated"], lines


def _load_emulator(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blocks_and_threads_run_in_a_shuffled_order(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_EMULATOR_BUILD", str(tmp_path / "build"))
    emulator = _load_emulator(EMULATOR_PATH / "cupy" / "__init__.py", "cuda_emulator_shuffle")
    code = ('typedef double T;\nextern "C" __global__ void order(long long* __restrict__ seen, '
            "long long* __restrict__ counter) {\n"
            "    seen[blockIdx.x * blockDim.x + threadIdx.x] = atomicAdd(counter, 1LL);\n}\n")
    kernel = emulator.RawModule(code).get_function("order")
    seen, counter = emulator.asarray(np.zeros(64, np.int64)), emulator.asarray(np.zeros(1, np.int64))
    kernel((8,), (8,), (seen, counter))
    order = emulator.asnumpy(seen)
    assert sorted(order) == list(range(64))  # every thread ran once
    block_order = np.argsort(order.reshape(8, 8).min(axis=1))
    assert list(block_order) != list(range(8)), "blocks ran in order"
    first_block = int(block_order[0])
    assert list(np.argsort(order[first_block * 8 : first_block * 8 + 8])) != list(range(8)), "threads ran in order"


def test_the_build_cache_follows_changes_to_emu_h(tmp_path, monkeypatch):
    """A kernel compiled before emu.h changes is rebuilt after (the .so name hashes emu.h too)."""
    copy = tmp_path / "cuda_emulator"
    (copy / "pythonpath" / "cupy").mkdir(parents=True)
    shutil.copy(EMULATOR_PATH / "cupy" / "__init__.py", copy / "pythonpath" / "cupy" / "__init__.py")
    header = (TESTS / "cuda_emulator" / "emu.h").read_text()
    monkeypatch.setenv("CUDA_EMULATOR_BUILD", str(tmp_path / "build"))
    emulator = _load_emulator(copy / "pythonpath" / "cupy" / "__init__.py", "cuda_emulator_copy")
    code = 'typedef double T;\nextern "C" __global__ void probe(T* __restrict__ y) { y[0] = EMU_PROBE; }\n'
    values = []
    for probe in (1, 2):
        (copy / "emu.h").write_text(header + f"\n#define EMU_PROBE {probe}\n")
        y = emulator.asarray(np.zeros(1))
        emulator.RawModule(code).get_function("probe")((1,), (1,), (y,))
        values.append(float(emulator.asnumpy(y)[0]))
    assert values == [1.0, 2.0]
    assert len(list((tmp_path / "build").glob("kernels_*.so"))) == 2
