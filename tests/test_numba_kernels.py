"""The Numba backend's kernels against torch.nn.functional (CPU) and against the reference backend.

Every kernel is called directly on NumPy arrays, in float64 and float32, for both convolution
algorithms; torch's forward values and autograd gradients are the first oracle, ``reference/``
(plain NumPy) the second. A hypothesis test draws further conv and pool geometries.
The engine's own suite runs the same kernels through autograd with the ``backend`` fixture.
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference
from kernels import workspace
from kernels.contract import KERNELS, check_backend
from kernels.shapes import conv2d_out_hw, pair, pool2d_out_hw

numba_cpu = pytest.importorskip("kernels.numba_cpu", reason="numba is not installed")

DTYPES = [np.float64, np.float32]
TOLERANCE = {
    np.float64: {"rtol": 1e-10, "atol": 1e-12},
    np.float32: {"rtol": 1e-5, "atol": 1e-5},
}
ALGOS = ["direct", "im2col"]


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


def assert_close(actual, expected, dtype, what=""):
    """actual (numpy, must be C-contiguous ``dtype``) against expected (torch tensor or numpy)."""
    assert isinstance(actual, np.ndarray) and actual.dtype == dtype, (what, type(actual), actual.dtype)
    assert actual.flags.c_contiguous, what
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    # float32 sums of many terms round in proportion to the terms: scale atol with the values
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    tolerance = TOLERANCE[dtype]
    np.testing.assert_allclose(actual, expected, err_msg=what, rtol=tolerance["rtol"],
                               atol=tolerance["atol"] * scale)


def test_fills_the_contract():
    check_backend(numba_cpu)
    assert numba_cpu.NAME == "numba" and numba_cpu.xp is np
    assert all(callable(getattr(numba_cpu, name)) for name in KERNELS)


def test_set_num_threads_sets_numba_and_keeps_blas_on_one_thread():
    from threadpoolctl import threadpool_info

    def blas():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = numba_cpu.get_num_threads()
    try:
        for n in range(1, numba_cpu.threads.numba.config.NUMBA_NUM_THREADS + 1):
            numba_cpu.set_num_threads(n)
            assert numba_cpu.get_num_threads() == n
            assert blas() and all(t == 1 for t in blas()), blas()
        with pytest.raises(ValueError, match="positive int"):
            numba_cpu.set_num_threads(0)
        with pytest.raises(ValueError, match="NUMBA_NUM_THREADS"):
            numba_cpu.set_num_threads(10_000)
    finally:
        numba_cpu.set_num_threads(before)
    assert numba_cpu.get_num_threads() == before


# --- convolution ------------------------------------------------------------------------------

CONV_CASES = [
    Conv(n=1, c=1, o=1, hw=(5, 5), k=(3, 3)),
    Conv(n=2, c=3, o=4, hw=(7, 6), k=(3, 3), s=2, p=1),
    Conv(n=2, c=2, o=3, hw=(6, 7), k=(1, 2)),
    Conv(n=3, c=2, o=2, hw=(8, 9), k=(2, 3), s=3, p=2),
    Conv(n=2, c=3, o=5, hw=(9, 7), k=(3, 2), s=(2, 1), p=(1, 2)),
    Conv(n=1, c=2, o=3, hw=(10, 9), k=(3, 3), s=1, p=2, d=2),
    Conv(n=2, c=1, o=2, hw=(11, 10), k=(2, 3), s=2, p=(1, 2), d=(2, 1)),
    Conv(n=2, c=2, o=2, hw=(5, 4), k=(5, 4)),  # kernel as large as the input: a 1x1 output
    Conv(n=1, c=2, o=2, hw=(9, 9), k=(2, 2), s=3),  # stride > kernel: input rows skipped
    Conv(n=5, c=1, o=6, hw=(12, 12), k=(5, 5), p=2),  # LeNet's conv1, small
    Conv(n=7, c=6, o=16, hw=(10, 10), k=(5, 5)),  # LeNet's conv2, small
]


def conv_reference(case, dtype, seed=0):
    """Inputs, torch's outputs and gradients for one conv case."""
    rng = np.random.default_rng(seed)
    geometry = pair(case.s, "s"), pair(case.p, "p"), pair(case.d, "d")
    x = randn(rng, (case.n, case.c) + tuple(case.hw), dtype)
    w = randn(rng, (case.o, case.c) + tuple(case.k), dtype)
    b = randn(rng, (case.o,), dtype)
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    ty = F.conv2d(tx, tw, tb, *geometry)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))
    return (x, w, b, gy), (ty, tx.grad, tw.grad), geometry


@pytest.mark.parametrize("case,algo,dtype", grid(CONV_CASES, ALGOS, DTYPES))
def test_conv2d_matches_torch_and_reference(case, algo, dtype):
    (x, w, b, gy), (ty, tgx, tgw), geometry = conv_reference(case, dtype)
    args = geometry + (algo,)
    kernels = {
        "forward": lambda m: m.conv2d_forward(x, w, b, *args),
        "forward without bias": lambda m: m.conv2d_forward(x, w, None, *args),
        "grad input": lambda m: m.conv2d_backward_input(gy, w, tuple(case.hw), *args),
        "grad weight": lambda m: m.conv2d_backward_weight(gy, x, tuple(case.k), *args),
    }
    expected = [ty, ty - torch.from_numpy(b)[None, :, None, None], tgx, tgw]
    for (what, run), torch_value in zip(kernels.items(), expected):
        got = run(numba_cpu)
        assert_close(got, torch_value, dtype, what=f"{what} vs torch")
        assert_close(got, run(reference), dtype, what=f"{what} vs reference")


@pytest.mark.parametrize("algo", ALGOS)
def test_kept_layout_copies_give_the_same_results_as_fresh_ones(algo):
    """direct keeps the forward's copy of x for backward-weight and backward-input's copy of gy
    for backward-weight (keyed on the very array): results must not depend on it."""
    case = Conv(n=3, c=2, o=5, hw=(6, 7), k=(3, 2), p=1)
    (x, w, b, gy), (ty, tgx, tgw), geometry = conv_reference(case, np.float64, seed=2)
    args = geometry + (algo,)
    kept = [numba_cpu.conv2d_forward(x, w, b, *args),
            numba_cpu.conv2d_backward_input(gy, w, case.hw, *args),
            numba_cpu.conv2d_backward_weight(gy, x, case.k, *args)]
    numba_cpu.clear_caches()
    fresh = numba_cpu.conv2d_backward_weight(gy, x, case.k, *args)
    np.testing.assert_array_equal(kept[2], fresh)
    # a new array with other values at a recycled address must not hit a stale copy
    other = np.ascontiguousarray(x[::-1])
    del x
    assert_close(numba_cpu.conv2d_backward_weight(gy, other, case.k, *args),
                 reference.conv2d_backward_weight(gy, other, case.k, *args), np.float64)
    for got, expected in zip(kept, (ty, tgx, tgw)):
        assert_close(got, expected, np.float64)


def test_a_forward_sees_its_input_changed_in_place():
    """gradcheck perturbs x in place between forwards: no kept copy may hide the change."""
    case = Conv(n=2, c=2, o=3, hw=(5, 6), k=(3, 3), p=1)
    (x, w, b, gy), _, geometry = conv_reference(case, np.float64, seed=3)
    args = geometry + ("direct",)
    before = numba_cpu.conv2d_forward(x, w, b, *args)
    x += 1.0
    after = numba_cpu.conv2d_forward(x, w, b, *args)
    assert_close(after, reference.conv2d_forward(x, w, b, *args), np.float64)
    assert not np.allclose(before, after)
    assert_close(numba_cpu.conv2d_backward_weight(gy, x, case.k, *args),
                 reference.conv2d_backward_weight(gy, x, case.k, *args), np.float64)


@pytest.fixture
def restore_workspace():
    """Give the test the workspace budget to change, and put the default back afterwards."""
    before = workspace.get_workspace_limit()
    yield
    workspace.set_workspace_limit(before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_in_workspace_sized_chunks_gives_the_same_results(dtype, restore_workspace):
    case = Conv(n=5, c=3, o=4, hw=(9, 8), k=(3, 2), s=(2, 1), p=(1, 1), d=(1, 2))
    (x, w, b, gy), (ty, tgx, tgw), geometry = conv_reference(case, dtype, seed=1)
    args = geometry + ("im2col",)
    # One sample unfolds to (3*3*2, 5*8) = 720 numbers: a budget of 2 samples gives chunks 2+2+1.
    per_sample = 720 * np.dtype(dtype).itemsize
    workspace.set_workspace_limit(2 * per_sample)
    numba_cpu.reset_peak_workspace()
    chunked = [numba_cpu.conv2d_forward(x, w, b, *args),
               numba_cpu.conv2d_backward_input(gy, w, (9, 8), *args),
               numba_cpu.conv2d_backward_weight(gy, x, (3, 2), *args)]
    peak = numba_cpu.peak_workspace_bytes()
    # the unfolded matrix of 2 samples, plus one chunk of the (O, n*OH*OW) gradient or output
    assert 2 * per_sample <= peak <= 2 * per_sample + 2 * 4 * 40 * np.dtype(dtype).itemsize, peak
    for got, expected, what in zip(chunked, (ty, tgx, tgw), ("forward", "grad input", "grad weight")):
        assert_close(got, expected, dtype, what=what)

    workspace.set_workspace_limit(1)  # less than one sample: one sample at a time
    assert_close(numba_cpu.conv2d_forward(x, w, b, *args), ty, dtype, what="one sample per chunk")


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
    Pool(n=3, c=6, hw=(28, 28), k=2, s=2, p=0, ceil=False),  # LeNet's pools (a 2x2 fast path)
    Pool(n=2, c=3, hw=(7, 9), k=2, s=2, p=0, ceil=False),  # the 2x2 path with odd sizes
    Pool(n=2, c=1, hw=(7, 9), k=2, s=2, p=0, ceil=True),  # ceil: last windows overhang, general path
]


def pool_geometry(case):
    return pair(case.k, "k"), pair(case.s, "s"), pair(case.p, "p")


@pytest.mark.parametrize("case,count_include_pad,dtype", grid(POOL_CASES, [True, False], DTYPES))
def test_avg_pool2d_matches_torch_and_reference(case, count_include_pad, dtype):
    rng = np.random.default_rng(2)
    kernel, stride, padding = pool_geometry(case)
    x = randn(rng, (case.n, case.c) + case.hw, dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty = F.avg_pool2d(tx, kernel, stride, padding, ceil_mode=case.ceil,
                      count_include_pad=count_include_pad)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))

    options = (kernel, stride, padding, case.ceil, count_include_pad)
    y = numba_cpu.avg_pool2d_forward(x, *options)
    assert_close(y, ty, dtype, what="forward vs torch")
    assert_close(y, reference.avg_pool2d_forward(x, *options), dtype, what="forward vs reference")
    gx = numba_cpu.avg_pool2d_backward(gy, case.hw, *options)
    assert_close(gx, tx.grad, dtype, what="backward vs torch")
    assert_close(gx, reference.avg_pool2d_backward(gy, case.hw, *options), dtype,
                 what="backward vs reference")


MAX_POOL_CASES = POOL_CASES + [
    Pool(n=1, c=2, hw=(9, 8), k=3, s=2, p=1, ceil=True, d=2),
    Pool(n=2, c=1, hw=(7, 9), k=(2, 3), s=(1, 2), p=(1, 1), ceil=False, d=(2, 1)),
    Pool(n=1, c=1, hw=(8, 8), k=2, s=1, p=1, ceil=True, d=3),
]
INPUTS = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "ties": lambda rng, shape: rng.integers(-1, 2, shape).astype(float),  # many equal maxima
    "all_equal": lambda rng, shape: np.full(shape, -2.0),  # below zero: padding must act as -inf
    "minus_inf": lambda rng, shape: np.full(shape, -np.inf),  # the first real element is reported
}


@pytest.mark.parametrize("case,values,dtype", grid(MAX_POOL_CASES, list(INPUTS), DTYPES))
def test_max_pool2d_matches_torch_and_reference(case, values, dtype):
    rng = np.random.default_rng(3)
    kernel, stride, padding = pool_geometry(case)
    dilation = pair(case.d, "d")
    x = INPUTS[values](rng, (case.n, case.c) + case.hw).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty, tindex = F.max_pool2d(tx, kernel, stride, padding, dilation, ceil_mode=case.ceil,
                              return_indices=True)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))

    geometry = (kernel, stride, padding, dilation, case.ceil)
    y, index = numba_cpu.max_pool2d_forward(x, *geometry)
    ref_y, ref_index = reference.max_pool2d_forward(x, *geometry)
    assert_close(y, ty, dtype, what="forward vs torch")
    assert_close(y, ref_y, dtype, what="forward vs reference")
    assert index.dtype == np.int64 and index.flags.c_contiguous
    np.testing.assert_array_equal(index, tindex.numpy())
    np.testing.assert_array_equal(index, ref_index)
    gx = numba_cpu.max_pool2d_backward(gy, index, case.hw)
    assert_close(gx, tx.grad, dtype, what="backward vs torch")
    assert_close(gx, reference.max_pool2d_backward(gy, index, case.hw), dtype, what="backward vs reference")


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_propagates_nan_like_torch(dtype):
    x = np.arange(2 * 6 * 6, dtype=dtype).reshape(1, 2, 6, 6)
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = x[0, 1, 5, 0] = np.nan
    geometry = ((3, 3), (2, 2), (1, 1), (1, 1), True)
    y, index = numba_cpu.max_pool2d_forward(x, *geometry)
    ty, tindex = F.max_pool2d(torch.from_numpy(x), *geometry[:4], ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(y, ty.numpy())  # NaNs compare equal here
    np.testing.assert_array_equal(index, tindex.numpy())


# --- activations ------------------------------------------------------------------------------

ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


@pytest.mark.parametrize("size", [1000, 40000], ids=["small-one-thread", "large-all-threads"])
@pytest.mark.parametrize("name,dtype", [pytest.param(n, d, id=f"{n}-{d.__name__}")
                                        for n in ACTIVATIONS for d in DTYPES])
def test_activation_matches_torch_and_reference(name, dtype, size):
    rng = np.random.default_rng(4)
    special = [0.0, -1e4, 1e4, -50.0, 50.0, -87.5, 88.5, -700.0, np.inf, -np.inf, np.nan]
    # a long random part so the vectorised loop body (not only its remainder) is tested; arrays
    # below SERIAL_BELOW elements run on one thread
    assert (size < numba_cpu.activation.SERIAL_BELOW) == (size == 1000)
    x = np.concatenate([rng.standard_normal(size) * 6, special]).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty = ACTIVATIONS[name](tx)
    gy = randn(rng, x.shape, dtype)
    ty.backward(torch.from_numpy(gy))

    forward, backward = getattr(numba_cpu, f"{name}_forward"), getattr(numba_cpu, f"{name}_backward")
    y = forward(x.reshape(1, -1)).reshape(-1)  # any shape is accepted
    assert_close(y, ty, dtype, what="forward vs torch")
    finite = np.isfinite(x)
    with np.errstate(all="ignore"):
        assert_close(y[finite], getattr(reference, f"{name}_forward")(x[finite]), dtype,
                     what="forward vs reference")
    gx = backward(gy, y)
    assert_close(gx, tx.grad, dtype, what="backward vs torch")
    # reference's relu passes no gradient where y is NaN (torch does): compare where y is a number
    ref_gx = getattr(reference, f"{name}_backward")(gy[finite], y[finite])
    assert_close(gx[finite], ref_gx, dtype, what="backward vs reference")


# --- softmax cross-entropy --------------------------------------------------------------------

LOGITS = {
    "normal": lambda rng: rng.standard_normal((6, 5)) * 3,
    "extreme": lambda rng: rng.choice([-1e4, 1e4, 0.0, 3.0], size=(6, 5)),
    "one_class": lambda rng: rng.standard_normal((3, 1)),
    "lenet": lambda rng: rng.standard_normal((256, 10)),
}


@pytest.mark.parametrize("logits,dtype", [pytest.param(k, d, id=f"{k}-{d.__name__}")
                                          for k in LOGITS for d in DTYPES])
def test_softmax_cross_entropy_matches_torch_and_reference(logits, dtype):
    rng = np.random.default_rng(5)
    z = LOGITS[logits](rng).astype(dtype)
    target = rng.integers(0, z.shape[1], z.shape[0]).astype(np.int64)
    tz = torch.from_numpy(z).requires_grad_()
    tloss = F.cross_entropy(tz, torch.from_numpy(target), reduction="none")
    gloss = randn(rng, (z.shape[0],), dtype)
    tloss.backward(torch.from_numpy(gloss))

    loss, probs = numba_cpu.softmax_cross_entropy_forward(z, target)
    glogits = numba_cpu.softmax_cross_entropy_backward(gloss, probs, target)
    assert np.isfinite(loss).all() and np.isfinite(glogits).all()
    assert_close(loss, tloss, dtype, what="loss vs torch")
    assert_close(probs, torch.softmax(torch.from_numpy(z), dim=1), dtype, what="probs vs torch")
    assert_close(glogits, tz.grad, dtype, what="grad vs torch")
    ref_loss, ref_probs = reference.softmax_cross_entropy_forward(z, target)
    assert_close(loss, ref_loss, dtype, what="loss vs reference")
    assert_close(glogits, reference.softmax_cross_entropy_backward(gloss, ref_probs, target), dtype,
                 what="grad vs reference")


# --- random geometries ------------------------------------------------------------------------


@st.composite
def conv_cases(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    d = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    p = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    # an input at least as large as the dilated kernel minus the padding: one output at least
    hw = tuple(draw(st.integers(max(1, d[i] * (k[i] - 1) + 1 - 2 * p[i]), 9)) for i in range(2))
    return Conv(n=draw(st.integers(1, 5)), c=draw(st.integers(1, 5)), o=draw(st.integers(1, 6)),
                hw=hw, k=k, s=s, p=p, d=d)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=conv_cases(), algo=st.sampled_from(ALGOS), dtype=st.sampled_from(DTYPES))
def test_conv2d_random_geometry(case, algo, dtype):
    assert min(conv2d_out_hw(case.hw, case.k, pair(case.s, "s"), pair(case.p, "p"), pair(case.d, "d"))) >= 1
    (x, w, b, gy), (ty, tgx, tgw), geometry = conv_reference(case, dtype, seed=7)
    args = geometry + (algo,)
    assert_close(numba_cpu.conv2d_forward(x, w, b, *args), ty, dtype, what="forward")
    assert_close(numba_cpu.conv2d_backward_input(gy, w, case.hw, *args), tgx, dtype, what="grad input")
    assert_close(numba_cpu.conv2d_backward_weight(gy, x, case.k, *args), tgw, dtype, what="grad weight")


@st.composite
def pool_cases(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = tuple(draw(st.integers(0, k[i] // 2)) for i in range(2))  # torch: padding <= kernel / 2
    hw = tuple(draw(st.integers(k[i], 9)) for i in range(2))
    return Pool(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 3)), hw=hw, k=k, s=s, p=p,
                ceil=draw(st.booleans()))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=pool_cases(), count_include_pad=st.booleans(), dtype=st.sampled_from(DTYPES))
def test_pool2d_random_geometry(case, count_include_pad, dtype):
    kernel, stride, padding = pool_geometry(case)
    assert min(pool2d_out_hw(case.hw, kernel, stride, padding, (1, 1), case.ceil)) >= 1
    rng = np.random.default_rng(8)
    x = rng.integers(-3, 4, (case.n, case.c) + case.hw).astype(dtype)  # ties for max pooling
    tx = torch.from_numpy(x)
    options = (kernel, stride, padding, case.ceil)
    ty = F.avg_pool2d(tx, *options, count_include_pad=count_include_pad)
    y = numba_cpu.avg_pool2d_forward(x, *options, count_include_pad)
    assert_close(y, ty, dtype, what="avg forward")
    gy = randn(rng, y.shape, dtype)
    assert_close(numba_cpu.avg_pool2d_backward(gy, case.hw, *options, count_include_pad),
                 reference.avg_pool2d_backward(gy, case.hw, *options, count_include_pad), dtype,
                 what="avg backward vs reference")
    ty, tindex = F.max_pool2d(tx, kernel, stride, padding, 1, ceil_mode=case.ceil, return_indices=True)
    y, index = numba_cpu.max_pool2d_forward(x, kernel, stride, padding, (1, 1), case.ceil)
    assert_close(y, ty, dtype, what="max forward")
    np.testing.assert_array_equal(index, tindex.numpy())
    assert_close(numba_cpu.max_pool2d_backward(gy, index, case.hw),
                 reference.max_pool2d_backward(gy, index, case.hw), dtype, what="max backward vs reference")
