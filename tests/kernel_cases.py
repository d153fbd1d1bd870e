"""Shared cases and helpers for the kernel tests (tests/test_kernels.py and the backend-specific files).

Kernels are called directly on raw arrays; torch.nn.functional (CPU) is the oracle, ``reference/``
the second one for the other backends.

    BACKENDS, DTYPES (from conftest), FLOATS (DTYPES as numpy types, which kernels take)
    load_backend(name)            -- a backend under test; skips with the reason when it cannot run
    Conv, Pool, grid(...)         -- configurations and the pytest params crossing them with axes
    CONV_CASES, POOL_CASES, ...   -- the union of the configurations every backend is tested on
    conv_oracle(case, dtype)      -- inputs and torch's outputs / gradients for one conv case
    shared_conv_oracle(...)       -- the same, cached: its arrays are shared by the tests that ask
    avg_pool_oracle, max_pool_oracle -- the same for pooling (cached)
    workspace_limit(bytes)        -- a context with that im2col workspace budget, the old one restored
    assert_array_close(be, actual, expected, dtype, what) -- a backend's array against torch / numpy
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import itertools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DTYPES, assert_values_close

from kernels import workspace
from kernels.shapes import pair

FLOATS = [d.np for d in DTYPES]
ALGOS = ["direct", "im2col"]

# |actual - expected| <= atol * max(1, max|expected|) + rtol * |expected|: float32 sums of many
# terms (LeNet-sized convs) round in proportion to the terms.
CPU_TOLERANCE = {
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
    np.float32: {"rtol": 1e-5, "atol": 1e-5},
}
# GPU sums run in another order than torch's CPU loops; float32 convs over a few hundred terms.
GPU_TOLERANCE = {
    np.float64: {"rtol": 1e-10, "atol": 1e-11},
    np.float32: {"rtol": 1e-4, "atol": 1e-4},
}


# --- backends -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """One backend under test: its kernels module, how arrays go to and from it, its tolerances."""

    name: str
    module: object
    xp: object  # numpy or cupy: the array module the kernels take and return
    tolerance: dict  # {dtype: {"rtol": ..., "atol": ...}}

    def to_device(self, *arrays):
        return tuple(self.xp.asarray(a) for a in arrays)

    def to_host(self, array) -> np.ndarray:
        return self.xp.asnumpy(array) if self.xp is not np else array


def load_backend(name: str) -> Backend:
    """The backend ``name``; skips the calling test, with the reason, when it is unavailable here."""
    backend = _backend_or_reason(name)
    if isinstance(backend, str):
        pytest.skip(backend)
    return backend


@functools.lru_cache(maxsize=None)
def _backend_or_reason(name: str):
    """The Backend ``name``, or why it cannot run here (looked up once: a failed import is slow)."""
    if name == "reference":
        import reference

        return Backend(name, reference, np, CPU_TOLERANCE)
    if name == "numba":
        try:
            return Backend(name, importlib.import_module("kernels.numba_cpu"), np, CPU_TOLERANCE)
        except ImportError as exc:
            return f"numba backend not importable: {exc}"
    if name == "cupy":
        try:
            import cupy
        except ImportError:
            return "CuPy not installed"
        try:
            device_count = cupy.cuda.runtime.getDeviceCount()
        except Exception:  # no driver, or a driver too old for this CuPy
            device_count = 0
        if device_count == 0:
            return "no CUDA device usable by CuPy"
        return Backend(name, importlib.import_module("kernels.cupy_gpu"), cupy, GPU_TOLERANCE)
    raise ValueError(f"unknown backend {name!r}")


def assert_array_close(be: Backend, actual, expected, dtype, what: str = "") -> None:
    """``actual`` (an array of ``be``, C-contiguous ``dtype``) against expected (torch or numpy)."""
    assert isinstance(actual, be.xp.ndarray), f"{what}: expected a {be.xp.__name__} array, got {type(actual)}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype} != {np.dtype(dtype)}"
    assert actual.flags.c_contiguous, f"{what}: not C-contiguous"  # other kernels may take it as input
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    tolerance = be.tolerance[dtype]
    assert_values_close(be.to_host(actual), expected, tolerance["rtol"], tolerance["atol"], what)


# --- configurations -----------------------------------------------------------------------------


class Conv(NamedTuple):
    """A conv2d configuration; s, p, d are an int or an (h, w) pair."""

    n: int
    c: int
    o: int
    hw: tuple
    k: tuple
    s: object = 1
    p: object = 0
    d: object = 1


class Pool(NamedTuple):
    """A pooling configuration; k, s, p, d are an int or an (h, w) pair."""

    n: int
    c: int
    hw: tuple
    k: object
    s: object
    p: object
    ceil: bool
    d: object = 1


def grid(cases, *axes):
    """pytest params: every case (id'd by its fields) crossed with every axis value."""
    params = []
    for case, *rest in itertools.product(cases, *axes):
        case_id = ",".join(f"{k}={v}" for k, v in case._asdict().items()).replace(" ", "")
        rest_ids = [getattr(r, "__name__", str(r)) for r in rest]
        params.append(pytest.param(case, *rest, id="-".join([case_id] + rest_ids)))
    return params


def randn(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


CONV_CASES = [
    Conv(n=1, c=1, o=1, hw=(5, 5), k=(3, 3)),
    Conv(n=2, c=3, o=4, hw=(7, 6), k=(3, 3), s=2, p=1),
    Conv(n=2, c=2, o=3, hw=(6, 7), k=(1, 2)),
    Conv(n=3, c=2, o=2, hw=(8, 9), k=(2, 3), s=3, p=2),
    Conv(n=2, c=3, o=2, hw=(9, 7), k=(3, 2), s=(2, 1), p=(1, 2)),
    Conv(n=2, c=3, o=5, hw=(9, 7), k=(3, 2), s=(2, 1), p=(1, 2)),
    Conv(n=1, c=2, o=3, hw=(10, 9), k=(3, 3), s=1, p=2, d=2),
    Conv(n=2, c=1, o=2, hw=(11, 10), k=(2, 3), s=2, p=(1, 2), d=(2, 1)),
    Conv(n=2, c=2, o=2, hw=(5, 4), k=(5, 4)),  # kernel as large as the input: a 1x1 output
    Conv(n=1, c=2, o=2, hw=(9, 9), k=(2, 2), s=3),  # stride > kernel: input rows skipped
    Conv(n=5, c=1, o=6, hw=(12, 12), k=(5, 5), p=2),  # LeNet's conv1, small
    Conv(n=7, c=6, o=16, hw=(10, 10), k=(5, 5)),  # LeNet's conv2, small
    Conv(n=3, c=1, o=6, hw=(28, 28), k=(5, 5)),  # LeNet conv1
    Conv(n=2, c=6, o=16, hw=(12, 12), k=(5, 5)),  # LeNet conv2: two GPU output-channel tiles
    Conv(n=2, c=19, o=11, hw=(5, 6), k=(1, 1)),  # channel counts not multiples of the GPU tiles
    Conv(n=1, c=3, o=17, hw=(20, 41), k=(7, 7), s=2, p=3),  # several pixel tiles, 7x7 stride 2
    Conv(n=2, c=2, o=3, hw=(40, 70), k=(3, 3), s=1, p=1),  # output wider than one GPU tile
    Conv(n=1, c=2, o=2, hw=(210, 210), k=(3, 3), d=100),  # input tile too big for shared memory
    Conv(n=1, c=1, o=2, hw=(38, 38), k=(37, 37)),  # weights too big for shared memory
    Conv(n=1, c=1, o=2, hw=(3, 12010), k=(2, 3), d=(1, 6000)),  # grad-weight rows too wide
]

POOL_CASES = [
    Pool(n=1, c=1, hw=(4, 4), k=2, s=2, p=0, ceil=False),  # windows that don't overlap
    Pool(n=2, c=3, hw=(7, 6), k=3, s=2, p=1, ceil=False),  # windows that overlap
    Pool(n=2, c=2, hw=(7, 7), k=3, s=2, p=1, ceil=True),
    Pool(n=1, c=2, hw=(8, 9), k=(2, 3), s=(2, 1), p=(1, 1), ceil=True),
    Pool(n=2, c=1, hw=(5, 8), k=(1, 2), s=(1, 2), p=0, ceil=False),
    Pool(n=1, c=1, hw=(6, 5), k=4, s=3, p=2, ceil=True),
    Pool(n=2, c=2, hw=(10, 9), k=3, s=3, p=(0, 1), ceil=True),
    Pool(n=1, c=2, hw=(9, 8), k=2, s=3, p=1, ceil=False),  # stride > kernel: rows skipped
    Pool(n=3, c=6, hw=(28, 28), k=2, s=2, p=0, ceil=False),  # LeNet's pools (numba's 2x2 fast path)
    Pool(n=4, c=6, hw=(24, 24), k=2, s=2, p=0, ceil=False),  # LeNet
    Pool(n=2, c=3, hw=(7, 9), k=2, s=2, p=0, ceil=False),  # the 2x2 path with odd sizes
    Pool(n=2, c=1, hw=(7, 9), k=2, s=2, p=0, ceil=True),  # ceil: last windows overhang, general path
]
MAX_POOL_CASES = POOL_CASES + [
    Pool(n=1, c=2, hw=(9, 8), k=3, s=2, p=1, ceil=True, d=2),
    Pool(n=2, c=1, hw=(7, 9), k=(2, 3), s=(1, 2), p=(1, 1), ceil=False, d=(2, 1)),
    Pool(n=1, c=1, hw=(8, 8), k=2, s=1, p=1, ceil=True, d=3),
    Pool(n=2, c=2, hw=(9, 9), k=3, s=1, p=1, ceil=False),  # up to 9 windows share a maximum
]
POOL_INPUTS = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "ties": lambda rng, shape: rng.integers(-1, 2, shape).astype(float),  # many equal maxima
    "all_equal": lambda rng, shape: np.full(shape, -2.0),  # below zero: padding must act as -inf
    "minus_inf": lambda rng, shape: np.full(shape, -np.inf),  # torch picks the first real element
}

ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}
# "moderate": large but finite |x|, run with numpy's floating-point errors raised;
# "long-*": a long random part (the vectorised loop body, not only its remainder) with inf and NaN,
# below and above numba's SERIAL_BELOW (one thread / all threads).
ACTIVATION_SIZES = {"long-1000": 1000, "long-40000": 40000}
ACTIVATION_INPUTS = ["moderate"] + list(ACTIVATION_SIZES)

LOGITS = {
    "normal": lambda rng: rng.standard_normal((6, 5)) * 3,
    "extreme": lambda rng: rng.choice([-1e4, 1e4, 0.0, 3.0], size=(6, 5)),
    "one_class": lambda rng: rng.standard_normal((3, 1)),
    "lenet": lambda rng: rng.standard_normal((256, 10)),
    "wide": lambda rng: rng.standard_normal((3, 3000)) * 5,  # several warps and loops per row
}


# --- torch oracles ------------------------------------------------------------------------------


def conv_geometry(case):
    return pair(case.s, "s"), pair(case.p, "p"), pair(case.d, "d")


def pool_geometry(case):
    return pair(case.k, "k"), pair(case.s, "s"), pair(case.p, "p")


def conv_oracle(case, dtype, seed=0):
    """((x, w, b, gy) numpy inputs, (y, gx, gw) torch's outputs, (stride, padding, dilation))."""
    rng = np.random.default_rng(seed)
    geometry = conv_geometry(case)
    x = randn(rng, (case.n, case.c) + tuple(case.hw), dtype)
    w = randn(rng, (case.o, case.c) + tuple(case.k), dtype)
    b = randn(rng, (case.o,), dtype)
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, *geometry)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))
    return (x, w, b, gy), (ty, tx.grad, tw.grad), geometry


@functools.lru_cache(maxsize=None)
def shared_conv_oracle(case, dtype, seed=0):
    """conv_oracle, computed once per process for all backends and algorithms: do not modify."""
    return conv_oracle(case, dtype, seed)


@functools.lru_cache(maxsize=None)
def avg_pool_oracle(case, count_include_pad, dtype):
    """(x, gy) numpy inputs and torch's (y, gx) for one avg_pool2d case; cached: do not modify."""
    rng = np.random.default_rng(2)
    kernel, stride, padding = pool_geometry(case)
    x = randn(rng, (case.n, case.c) + case.hw, dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty = F.avg_pool2d(tx, kernel, stride, padding, ceil_mode=case.ceil, count_include_pad=count_include_pad)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))
    return (x, gy), (ty.detach().numpy(), tx.grad.numpy())


@functools.lru_cache(maxsize=None)
def max_pool_oracle(case, values, dtype):
    """(x, gy) numpy inputs (x drawn by POOL_INPUTS[values]) and torch's (y, index, gx) for one
    max_pool2d case; cached: do not modify."""
    rng = np.random.default_rng(3)
    kernel, stride, padding = pool_geometry(case)
    x = POOL_INPUTS[values](rng, (case.n, case.c) + case.hw).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty, tindex = F.max_pool2d(tx, kernel, stride, padding, pair(case.d, "d"), ceil_mode=case.ceil,
                              return_indices=True)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))
    return (x, gy), (ty.detach().numpy(), tindex.numpy(), tx.grad.numpy())


CHUNK_CASE = Conv(n=5, c=3, o=4, hw=(9, 8), k=(3, 2), s=(2, 1), p=(1, 1), d=(1, 2))
CHUNK_SAMPLE_NUMBERS = 3 * 3 * 2 * 5 * 8  # one sample of CHUNK_CASE unfolds to (C*KH*KW, OH*OW)


@contextlib.contextmanager
def workspace_limit(limit_bytes):
    """Run the block with an im2col workspace budget of ``limit_bytes``; restore the old one after."""
    before = workspace.get_workspace_limit()
    workspace.set_workspace_limit(limit_bytes)
    try:
        yield
    finally:
        workspace.set_workspace_limit(before)
