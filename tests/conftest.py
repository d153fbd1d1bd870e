"""Shared fixtures and helpers for the engine's tests: torch (CPU) is the oracle.

Fixtures
    dtype    -- a :class:`DType` (float32 / float64) with the tolerances used against torch.
    backend  -- runs the test on each backend of BACKENDS, restoring the previous one afterwards;
                numba cases are skipped (with the reason) when it is missing.

The one definition of what the tests run on (tests/kernel_cases.py imports them):
    DTYPES    -- FLOAT32, FLOAT64 (:class:`DType`)
    BACKENDS  -- 'reference', 'numba', and 'cupy' only where it runs (CuPy seeing a GPU, or the CUDA
                 emulator that tests/test_cuda_emulator.py puts first on PYTHONPATH): elsewhere no cupy
                 case is collected, rather than hundreds skipped. Cupy cases carry the ``gpu`` marker.

Helpers (import with ``from conftest import ...``)
    to_torch(t)                       -- an engine Tensor's values as a torch tensor (no grad).
    assert_close(actual, expected, dtype) -- engine tensor vs torch tensor, same shape and dtype.
    assert_values_close(...)          -- the numeric rule both assert_close and kernel_cases use.
    run_side_by_side(...)             -- one op on engine and torch from the same numpy inputs,
                                        forward values and every input gradient compared.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import pytest
import torch

# let test modules do `from conftest import ...` whatever pytest's import mode
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine  # noqa: E402
from engine import backend as engine_backend  # noqa: E402

torch.set_num_threads(1)  # the machine is shared; torch's result does not depend on threads here


# --- dtypes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DType:
    """One float dtype under test, its three spellings and the tolerances against torch."""

    name: str
    np: type
    rtol: float
    atol: float

    @property
    def engine(self):
        return getattr(engine, self.name)

    @property
    def torch(self):
        return getattr(torch, self.name)

    def __str__(self) -> str:
        return self.name


FLOAT32 = DType("float32", np.float32, rtol=1e-5, atol=1e-5)
FLOAT64 = DType("float64", np.float64, rtol=1e-10, atol=1e-10)
DTYPES = [FLOAT32, FLOAT64]


@pytest.fixture(params=DTYPES, ids=str)
def dtype(request) -> DType:
    return request.param


# --- backends ----------------------------------------------------------------------------------

CPU_BACKENDS = ["reference", "numba"]
BACKENDS = CPU_BACKENDS + (["cupy"] if engine_backend.is_available("cupy") else [])  # cupy: cuda by default


def backend_params(names=None):
    """pytest params for ``names`` (default: BACKENDS), cupy's marked ``gpu``."""
    names = BACKENDS if names is None else names
    return [pytest.param(n, marks=pytest.mark.gpu) if n == "cupy" else n for n in names]


@pytest.fixture(params=backend_params())
def backend(request):
    """Select a backend for the test and restore the previous selection afterwards."""
    name = request.param
    if not engine_backend.is_available(name):
        pytest.skip(f"backend {name!r} is not available on this machine (it does not import)")
    if name == "cupy":  # cuda tensors always run on cupy: make cuda the default device instead
        engine.set_default_device("cuda")
        yield name
        engine.set_default_device("cpu")
        return
    previous = engine_backend.cpu_backend().NAME
    engine.set_backend(name)
    yield name
    engine.set_backend(previous)


# --- conversions and comparisons ---------------------------------------------------------------


def to_numpy(t) -> np.ndarray:
    """An engine Tensor (or torch tensor, or array) as a numpy array, detached from any graph."""
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    if isinstance(t, engine.Tensor):
        return np.asarray(t.detach().cpu().numpy())
    return np.asarray(t)


def to_torch(t) -> torch.Tensor:
    """An engine Tensor's values as a new torch tensor (same dtype, no grad)."""
    return torch.from_numpy(np.array(to_numpy(t), copy=True))


def assert_values_close(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float, what: str) -> None:
    """Same shape, and |actual - expected| <= atol * max(1, max finite |expected|) + rtol * |expected|
    (the absolute part scales with the values: sums of many terms round in proportion to them)."""
    assert tuple(actual.shape) == tuple(expected.shape), f"{what}: shape {actual.shape} != {expected.shape}"
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def assert_close(actual, expected, dtype: DType, what: str = "value") -> None:
    """``actual`` (engine tensor) equals ``expected`` (torch tensor) in shape, dtype and value."""
    assert isinstance(actual, engine.Tensor), f"{what}: expected an engine.Tensor, got {type(actual)}"
    a = to_numpy(actual)
    assert a.dtype == np.dtype(dtype.np), f"{what}: dtype {a.dtype} != {np.dtype(dtype.np)}"
    assert_values_close(a, to_numpy(expected), dtype.rtol, dtype.atol, what)


def engine_tensor(array: np.ndarray, requires_grad: bool = False):
    """An engine tensor holding a copy of ``array`` (its dtype kept)."""
    dtype = {np.dtype(np.float32): engine.float32, np.dtype(np.float64): engine.float64}.get(array.dtype)
    if dtype is None:  # integer targets and the like
        return engine.tensor(array.copy())
    return engine.tensor(array.copy(), dtype=dtype, requires_grad=requires_grad)


def torch_tensor(array: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
    t = torch.from_numpy(array.copy())
    return t.requires_grad_(requires_grad) if t.is_floating_point() else t


def run_side_by_side(
    engine_fn: Callable,
    torch_fn: Callable,
    arrays: Sequence[np.ndarray],
    dtype: DType,
    grad: Optional[Sequence[bool]] = None,
    seed: int = 0,
    engine_params: Optional[Dict[str, object]] = None,
    torch_params: Optional[Dict[str, torch.Tensor]] = None,
):
    """Run ``engine_fn(*tensors)`` and ``torch_fn(*tensors)`` on the same inputs and compare.

    ``arrays``: numpy inputs; float ones are cast to ``dtype`` and require grad (unless ``grad``
    says otherwise), integer ones (targets) are passed as int64 tensors. Both outputs are compared,
    then both are back-propagated with the same random upstream gradient (``backward()`` for a
    scalar output) and every input gradient is compared, as are the gradients of the tensors in
    ``engine_params`` / ``torch_params`` (same keys; module parameters). Returns (engine_out, torch_out).
    """
    rng = np.random.default_rng(seed + 12345)
    arrays = [np.asarray(a) for a in arrays]
    prepared = [a.astype(dtype.np) if np.issubdtype(a.dtype, np.floating) else a.astype(np.int64) for a in arrays]
    floating = [np.issubdtype(a.dtype, np.floating) for a in prepared]
    grad = list(grad) if grad is not None else floating
    e_in = [engine_tensor(a, g and f) for a, g, f in zip(prepared, grad, floating)]
    t_in = [torch_tensor(a, g and f) for a, g, f in zip(prepared, grad, floating)]

    e_out = engine_fn(*e_in)
    t_out = torch_fn(*t_in)
    assert_close(e_out, t_out, dtype, what="forward")

    if not t_out.requires_grad:
        return e_out, t_out
    assert e_out.requires_grad, "the engine's output does not require grad, torch's does"
    if t_out.dim() == 0:
        e_out.backward()
        t_out.backward()
    else:
        upstream = rng.standard_normal(tuple(t_out.shape)).astype(dtype.np)
        e_out.backward(engine_tensor(upstream))
        t_out.backward(torch.from_numpy(upstream))
    for i, (e, t) in enumerate(zip(e_in, t_in)):
        if t.requires_grad:
            assert e.grad is not None, f"input {i}: the engine left .grad None"
            assert_close(e.grad, t.grad, dtype, what=f"grad of input {i}")
        else:
            assert e.grad is None, f"input {i} does not require grad but got a .grad"
    for name, t_param in (torch_params or {}).items():
        e_param = engine_params[name]
        assert e_param.grad is not None, f"parameter {name}: the engine left .grad None"
        assert_close(e_param.grad, t_param.grad, dtype, what=f"grad of parameter {name}")
    return e_out, t_out


def module_to(engine_module, torch_module, dtype: DType):
    """Give ``engine_module`` torch_module's parameter values in ``dtype`` (torch's cast too).

    Returns the two {name: parameter} dicts, for :func:`run_side_by_side`.
    """
    torch_module.to(dtype.torch)
    e_params = dict(engine_module.named_parameters())
    t_params = dict(torch_module.named_parameters())
    assert sorted(e_params) == sorted(t_params), f"parameter names {sorted(e_params)} != {sorted(t_params)}"
    for name, p in e_params.items():
        p.data = engine_tensor(t_params[name].detach().numpy())
    return e_params, t_params


# --- the textbook's own programs, shared by the tests that run them on both libraries -------------


def corr2d(lib, X, K):
    """The textbook's hand-written cross-correlation (d2l 7.2): one assignment per output element.

    ``lib`` is ``engine`` or ``torch``: the same program runs on both."""
    h, w = K.shape
    Y = lib.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1))
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i:i + h, j:j + w] * K).sum()
    return Y
