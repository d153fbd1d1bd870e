"""The reference backend's kernels against torch.nn.functional (CPU), forward and backward.

Each kernel is called directly on NumPy arrays; torch's forward values are the oracle for the
forward kernels and torch's autograd gradients for the backward kernels.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reference
from kernels import workspace
from kernels.contract import KERNELS, check_backend
from kernels.shapes import pair

DTYPES = [np.float64, np.float32]
TOLERANCE = {
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
    np.float32: {"rtol": 1e-5, "atol": 1e-5},
}


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


def assert_close(actual, expected, dtype):
    """actual (numpy, must be of ``dtype``) against expected (torch tensor or numpy array)."""
    assert isinstance(actual, np.ndarray) and actual.dtype == dtype, (type(actual), actual.dtype)
    assert actual.flags.c_contiguous  # other backends' kernels may receive it as input
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, **TOLERANCE[dtype])


def test_fills_the_contract():
    check_backend(reference)
    assert reference.NAME == "reference" and reference.xp is np
    assert all(callable(getattr(reference, name)) for name in KERNELS)


# --- convolution ------------------------------------------------------------------------------

CONV_CASES = [
    Conv(n=1, c=1, o=1, hw=(5, 5), k=(3, 3), s=1, p=0, d=1),
    Conv(n=2, c=3, o=4, hw=(7, 6), k=(3, 3), s=2, p=1, d=1),
    Conv(n=2, c=2, o=3, hw=(6, 7), k=(1, 2), s=1, p=0, d=1),
    Conv(n=3, c=2, o=2, hw=(8, 9), k=(2, 3), s=3, p=2, d=1),
    Conv(n=2, c=3, o=2, hw=(9, 7), k=(3, 2), s=(2, 1), p=(1, 2), d=1),
    Conv(n=1, c=2, o=3, hw=(10, 9), k=(3, 3), s=1, p=2, d=2),
    Conv(n=2, c=1, o=2, hw=(11, 10), k=(2, 3), s=2, p=(1, 2), d=(2, 1)),
    Conv(n=2, c=2, o=2, hw=(5, 4), k=(5, 4), s=1, p=0, d=1),
    Conv(n=1, c=2, o=2, hw=(9, 9), k=(2, 2), s=3, p=0, d=1),
]


@pytest.mark.parametrize("case,algo,dtype", grid(CONV_CASES, ["direct", "im2col"], DTYPES))
def test_conv2d_matches_torch(case, algo, dtype):
    rng = np.random.default_rng(0)
    stride, padding, dilation = pair(case.s, "s"), pair(case.p, "p"), pair(case.d, "d")
    x = randn(rng, (case.n, case.c) + case.hw, dtype)
    w = randn(rng, (case.o, case.c) + case.k, dtype)
    b = randn(rng, (case.o,), dtype)

    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, stride=stride, padding=padding, dilation=dilation)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))

    geometry = (stride, padding, dilation, algo)
    assert_close(reference.conv2d_forward(x, w, b, *geometry), ty, dtype)
    assert_close(reference.conv2d_forward(x, w, None, *geometry), ty - tb[None, :, None, None], dtype)
    assert_close(reference.conv2d_backward_input(gy, w, case.hw, *geometry), tx.grad, dtype)
    assert_close(reference.conv2d_backward_weight(gy, x, case.k, *geometry), tw.grad, dtype)


@pytest.fixture
def restore_workspace():
    """Give the test the workspace budget to change, and put the default back afterwards."""
    before = workspace.get_workspace_limit()
    yield
    workspace.set_workspace_limit(before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_in_workspace_sized_chunks_gives_the_same_results(dtype, restore_workspace, monkeypatch):
    rng = np.random.default_rng(1)
    x, w = randn(rng, (5, 3, 9, 8), dtype), randn(rng, (4, 3, 3, 2), dtype)
    b = randn(rng, (4,), dtype)
    geometry = ((2, 1), (1, 1), (1, 2), "im2col")
    y = reference.conv2d_forward(x, w, b, *geometry)
    gy = randn(rng, y.shape, dtype)
    whole = [y, reference.conv2d_backward_input(gy, w, (9, 8), *geometry),
             reference.conv2d_backward_weight(gy, x, (3, 2), *geometry)]

    chunk_sizes = []
    real_batch_chunk = workspace.batch_chunk

    def spy(n, bytes_per_sample):
        chunk_sizes.append(real_batch_chunk(n, bytes_per_sample))
        return chunk_sizes[-1]

    monkeypatch.setattr(workspace, "batch_chunk", spy)
    # One sample unfolds to (3*3*2, 5*8) = 720 numbers: chunks of 2 (2+2+1) in float32, 1 in float64.
    workspace.set_workspace_limit(6000)
    chunked = [reference.conv2d_forward(x, w, b, *geometry),
               reference.conv2d_backward_input(gy, w, (9, 8), *geometry),
               reference.conv2d_backward_weight(gy, x, (3, 2), *geometry)]

    assert chunk_sizes == [6000 // (720 * np.dtype(dtype).itemsize)] * 3, chunk_sizes
    assert all(a.dtype == dtype for a in chunked)
    # Each output sample and input-gradient sample is computed alike in any chunk; only the
    # summation order of the weight gradient (summed over the batch) changes with chunking.
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])
    np.testing.assert_allclose(chunked[2], whole[2], **TOLERANCE[dtype])
    np.testing.assert_allclose(chunked[2], reference.conv2d_backward_weight(
        gy, x, (3, 2), *geometry[:3], "direct"), **TOLERANCE[dtype])


# --- pooling ----------------------------------------------------------------------------------

POOL_CASES = [
    Pool(n=1, c=1, hw=(4, 4), k=2, s=2, p=0, ceil=False),  # windows that don't overlap
    Pool(n=2, c=3, hw=(7, 6), k=3, s=2, p=1, ceil=False),  # windows that overlap
    Pool(n=2, c=2, hw=(7, 7), k=3, s=2, p=1, ceil=True),
    Pool(n=1, c=2, hw=(8, 9), k=(2, 3), s=(2, 1), p=(1, 1), ceil=True),
    Pool(n=2, c=1, hw=(5, 8), k=(1, 2), s=(1, 2), p=0, ceil=False),
    Pool(n=1, c=1, hw=(6, 5), k=4, s=3, p=2, ceil=True),
    Pool(n=2, c=2, hw=(10, 9), k=3, s=3, p=(0, 1), ceil=True),
    Pool(n=1, c=2, hw=(9, 8), k=2, s=3, p=1, ceil=False),  # stride > kernel: rows skipped
]


def pool_geometry(case):
    return pair(case.k, "k"), pair(case.s, "s"), pair(case.p, "p")


@pytest.mark.parametrize("case,count_include_pad,dtype", grid(POOL_CASES, [True, False], DTYPES))
def test_avg_pool2d_matches_torch(case, count_include_pad, dtype):
    rng = np.random.default_rng(2)
    kernel, stride, padding = pool_geometry(case)
    x = randn(rng, (case.n, case.c) + case.hw, dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty = F.avg_pool2d(tx, kernel, stride, padding, ceil_mode=case.ceil,
                      count_include_pad=count_include_pad)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))

    options = (kernel, stride, padding, case.ceil, count_include_pad)
    assert_close(reference.avg_pool2d_forward(x, *options), ty, dtype)
    assert_close(reference.avg_pool2d_backward(gy, case.hw, *options), tx.grad, dtype)


MAX_POOL_CASES = POOL_CASES + [
    Pool(n=1, c=2, hw=(9, 8), k=3, s=2, p=1, ceil=True, d=2),
    Pool(n=2, c=1, hw=(7, 9), k=(2, 3), s=(1, 2), p=(1, 1), ceil=False, d=(2, 1)),
    Pool(n=1, c=1, hw=(8, 8), k=2, s=1, p=1, ceil=True, d=3),
]
INPUTS = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "ties": lambda rng, shape: rng.integers(-1, 2, shape).astype(float),  # many equal maxima
    "all_equal": lambda rng, shape: np.full(shape, -2.0),  # below zero: padding must act as -inf
    "minus_inf": lambda rng, shape: np.full(shape, -np.inf),  # torch picks the first real element
}


@pytest.mark.parametrize("case,values,dtype", grid(MAX_POOL_CASES, list(INPUTS), DTYPES))
def test_max_pool2d_matches_torch(case, values, dtype):
    rng = np.random.default_rng(3)
    kernel, stride, padding = pool_geometry(case)
    dilation = pair(case.d, "d")
    x = INPUTS[values](rng, (case.n, case.c) + case.hw).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty, tindex = F.max_pool2d(tx, kernel, stride, padding, dilation, ceil_mode=case.ceil,
                              return_indices=True)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))

    y, index = reference.max_pool2d_forward(x, kernel, stride, padding, dilation, case.ceil)
    assert_close(y, ty, dtype)
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index, tindex.numpy())
    assert_close(reference.max_pool2d_backward(gy, index, case.hw), tx.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_propagates_nan_like_torch(dtype):
    x = np.arange(2 * 6 * 6, dtype=dtype).reshape(1, 2, 6, 6)
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = x[0, 1, 5, 0] = np.nan
    geometry = ((3, 3), (2, 2), (1, 1), (1, 1), True)
    y, index = reference.max_pool2d_forward(x, *geometry)
    ty, tindex = F.max_pool2d(torch.from_numpy(x), *geometry[:4], ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())  # NaNs compare equal here
    np.testing.assert_array_equal(index, tindex.numpy())


# --- activations ------------------------------------------------------------------------------

ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


@pytest.mark.parametrize(
    "name,dtype", [pytest.param(n, d, id=f"{n}-{d.__name__}") for n in ACTIVATIONS for d in DTYPES]
)
def test_activation_matches_torch(name, dtype):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.standard_normal(40) * 4, [0.0, -1e4, 1e4, -50.0, 50.0, -700.0]])
    x = x.astype(dtype).reshape(2, 23)
    tx = torch.from_numpy(x).requires_grad_()
    ty = ACTIVATIONS[name](tx)
    gy = randn(rng, x.shape, dtype)
    ty.backward(torch.from_numpy(gy))

    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no overflow for large |x|
        y = getattr(reference, f"{name}_forward")(x)
        gx = getattr(reference, f"{name}_backward")(gy, y)
    assert_close(y, ty, dtype)
    assert_close(gx, tx.grad, dtype)


# --- softmax cross-entropy --------------------------------------------------------------------

LOGITS = {
    "normal": lambda rng: rng.standard_normal((6, 5)) * 3,
    "extreme": lambda rng: rng.choice([-1e4, 1e4, 0.0, 3.0], size=(6, 5)),
    "one_class": lambda rng: rng.standard_normal((3, 1)),
}


@pytest.mark.parametrize("logits,dtype", [pytest.param(k, d, id=f"{k}-{d.__name__}") for k in LOGITS for d in DTYPES])
def test_softmax_cross_entropy_matches_torch(logits, dtype):
    rng = np.random.default_rng(5)
    z = LOGITS[logits](rng).astype(dtype)
    target = rng.integers(0, z.shape[1], z.shape[0]).astype(np.int64)
    tz = torch.from_numpy(z).requires_grad_()
    tloss = F.cross_entropy(tz, torch.from_numpy(target), reduction="none")
    gloss = randn(rng, (z.shape[0],), dtype)
    tloss.backward(torch.from_numpy(gloss))

    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss, probs = reference.softmax_cross_entropy_forward(z, target)
        glogits = reference.softmax_cross_entropy_backward(gloss, probs, target)
    assert np.isfinite(loss).all() and np.isfinite(glogits).all()
    assert_close(loss, tloss, dtype)
    assert_close(probs, torch.softmax(torch.from_numpy(z), dim=1), dtype)
    assert_close(glogits, tz.grad, dtype)
