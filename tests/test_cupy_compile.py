"""The cupy backend without a GPU: its CUDA C compiles, and importing it fails with a clear reason.

Every CUDA source in ``kernels/cupy_gpu/sources.py`` (raw kernels and the activations'
ElementwiseKernel operations) is compiled for float and double with nvcc, and with NVRTC (the
compiler CuPy uses at run time, which sees no system headers) when CuPy can load it. Neither
needs a GPU, so a syntax or type error in a kernel fails CI even where no GPU runs the kernels.
"""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import re
import shutil
import subprocess

import pytest

from engine import backend

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_sources(name="sources"):
    # Loaded by path: importing kernels.cupy_gpu.sources would run the package's __init__, which
    # (by design) raises ImportError on a machine without CuPy or a GPU.
    spec = importlib.util.spec_from_file_location(f"cupy_gpu_{name}", ROOT / "kernels" / "cupy_gpu" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sources = _load_sources()
RAW_SOURCES = {**sources.RAW_SOURCES, **_load_sources("sources_modern").MODERN_SOURCES}


def _all_sources():
    """(id, full CUDA C text) for every source and both scalar types."""
    cases = []
    for ctype in sources.CTYPES.values():
        for name, code in RAW_SOURCES.items():
            cases.append(pytest.param(sources.prelude(ctype) + code, id=f"{name}-{ctype}"))
        activations = "".join(sources.elementwise_as_kernel(name) for name in sources.ELEMENTWISE)
        cases.append(pytest.param(sources.prelude(ctype) + activations, id=f"ELEMENTWISE-{ctype}"))
    return cases


def _kernel_names(code: str):
    return re.findall(r'extern "C" __global__ void (\w+)\(', code)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH (CUDA toolkit not installed)")
@pytest.mark.parametrize("code", _all_sources())
def test_compiles_with_nvcc(code, tmp_path):
    src = tmp_path / "kernel.cu"
    src.write_text(code)
    result = subprocess.run(
        ["nvcc", "-arch=sm_90", "--ptx", "-Werror", "all-warnings", "-o", str(tmp_path / "kernel.ptx"), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"nvcc failed:\n{result.stderr}"
    ptx = (tmp_path / "kernel.ptx").read_text()
    for name in _kernel_names(code):
        assert f".entry {name}(" in ptx, f"kernel {name} missing from the PTX"


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # CuPy missing, or its NVRTC library not found
        pytest.skip(f"NVRTC not loadable through CuPy ({type(exc).__name__}: {exc})")
    return nvrtc


@pytest.mark.parametrize("code", _all_sources())
def test_compiles_with_nvrtc(code):
    nvrtc = _nvrtc()
    program = nvrtc.createProgram(code, "kernel.cu", (), ())
    try:
        try:
            nvrtc.compileProgram(program, ("-arch=compute_90",))
        except Exception as exc:
            pytest.fail(f"NVRTC failed: {exc}\n{nvrtc.getProgramLog(program)}")
        ptx = nvrtc.getPTX(program)
        ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
        for name in _kernel_names(code):
            assert f".entry {name}(" in ptx, f"kernel {name} missing from the PTX"
    finally:
        nvrtc.destroyProgram(program)


def test_every_raw_kernel_the_backend_launches_is_in_the_sources():
    launched = set()
    for path in (ROOT / "kernels" / "cupy_gpu").glob("*.py"):
        launched |= set(re.findall(r'kernel\("(\w+)", "(\w+)"', path.read_text()))
    assert launched, "found no kernel(...) launches"
    for source, name in launched:
        assert name in _kernel_names(RAW_SOURCES[source]), f"{name} not defined in {source}"


def _cuda_usable() -> bool:
    try:
        import cupy
    except ImportError:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.skipif(_cuda_usable(), reason="a CUDA device is usable here: the backend imports")
def test_import_without_cupy_or_gpu_raises_a_clear_import_error():
    with pytest.raises(ImportError, match="CuPy not installed|no CUDA device"):
        importlib.import_module("kernels.cupy_gpu")
    assert not backend.is_available("cupy")
    with pytest.raises(backend.BackendUnavailable, match="CuPy not installed|no CUDA device"):
        backend.load("cupy")
