"""Every backend's kernels against torch.nn.functional (CPU) and against the reference backend.

One test per property, parametrized over backend ('reference', 'numba', and 'cupy' where it runs: see
tests/conftest.py) x configuration x dtype (x algorithm): each kernel is called directly on the backend's
arrays, its result copied back and compared with torch's forward values / autograd gradients, and (for numba
and cupy) with ``reference`` on the same numpy inputs.
tests/test_cuda_emulator.py runs the float64 cupy cases on the CPU through the CUDA emulator (tests/cuda_emulator/).
Properties of one backend only are in tests/test_<backend>_specific.py.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import BACKENDS, backend_params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_cases import (
    ACTIVATION_INPUTS,
    ACTIVATION_SIZES,
    ACTIVATIONS,
    ALGOS,
    CHUNK_CASE,
    CHUNK_SAMPLE_NUMBERS,
    CONV_CASES,
    FLOATS,
    LOGITS,
    MAX_POOL_CASES,
    POOL_CASES,
    POOL_INPUTS,
    Conv,
    Pool,
    assert_array_close,
    avg_pool_oracle,
    conv_oracle,
    grid,
    load_backend,
    max_pool_oracle,
    pool_geometry,
    randn,
    shared_conv_oracle,
    workspace_limit,
)

import reference
from kernels.contract import KERNELS, check_backend
from kernels.shapes import conv2d_out_hw, pair, pool2d_out_hw


@pytest.fixture(params=backend_params())
def be(request):
    """The backend under test (a kernel_cases.Backend); skipped with the reason when unavailable."""
    return load_backend(request.param)


def check(be, got, torch_value, reference_value, dtype, what):
    """``got`` against torch's value and, unless ``be`` is the reference, reference's (a callable)."""
    assert_array_close(be, got, torch_value, dtype, f"{what} vs torch")
    if be.name != "reference":
        assert_array_close(be, got, reference_value(), dtype, f"{what} vs reference")


def test_fills_the_contract(be):
    check_backend(be.module)
    assert be.module.NAME == be.name and be.module.xp is be.xp
    assert all(callable(getattr(be.module, name)) for name in KERNELS)
    if be.name == "cupy":
        be.module.synchronize()


# --- convolution ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def reference_conv(case, dtype):
    """reference's direct (forward, forward without bias, grad input, grad weight) for a conv case,
    the second oracle for both algorithms of the other backends (cached: do not modify)."""
    (x, w, b, gy), _, geometry = shared_conv_oracle(case, dtype)
    args = geometry + ("direct",)
    return (reference.conv2d_forward(x, w, b, *args)[0], reference.conv2d_forward(x, w, None, *args)[0],
            reference.conv2d_backward_input(gy, w, case.hw, *args)[0],
            reference.conv2d_backward_weight(gy, x, case.k, *args))


@pytest.mark.parametrize("case,algo,dtype", grid(CONV_CASES, ALGOS, FLOATS))
def test_conv2d_matches_torch_and_reference(be, case, algo, dtype):
    (x, w, b, gy), (ty, tgx, tgw), geometry = shared_conv_oracle(case, dtype)
    args = geometry + (algo,)
    x_d, w_d, b_d, gy_d = be.to_device(x, w, b, gy)
    m = be.module
    got = (m.conv2d_forward(x_d, w_d, b_d, *args)[0], m.conv2d_forward(x_d, w_d, None, *args)[0],
           m.conv2d_backward_input(gy_d, w_d, case.hw, *args)[0], m.conv2d_backward_weight(gy_d, x_d, case.k, *args))
    expected = (ty, ty - torch.from_numpy(b)[None, :, None, None], tgx, tgw)
    for i, what in enumerate(("forward", "forward without bias", "grad input", "grad weight")):
        check(be, got[i], expected[i], lambda i=i: reference_conv(case, dtype)[i], dtype, what)


FLIPPED_CASES = [case for case in CONV_CASES if pair(case.s, "s") == (1, 1)] + [
    Conv(n=2, c=2, o=3, hw=(6, 5), k=(1, 3), p=(1, 2)),  # padding past the kernel: gy is cropped
    Conv(n=1, c=3, o=2, hw=(5, 6), k=(2, 3), p=(2, 3), d=(1, 2)),
]


@pytest.mark.parametrize("case,dtype", grid(FLIPPED_CASES, FLOATS))
def test_conv2d_backward_input_flipped_matches_torch(be, case, dtype):
    """algo='flipped' (stride 1 only): the forward convolution of gy with the flipped kernel."""
    (x, w, b, gy), (ty, tgx, tgw), geometry = shared_conv_oracle(case, dtype)
    gy_d, w_d = be.to_device(gy, w)
    gx, _ = be.module.conv2d_backward_input(gy_d, w_d, case.hw, *geometry, "flipped")
    check(be, gx, tgx, lambda: reference_conv(case, dtype)[2], dtype, "grad input")


@pytest.mark.parametrize("algo", ALGOS)
def test_a_forward_sees_its_input_changed_in_place(be, algo):
    """gradcheck perturbs x in place between forwards: no kept copy may hide the change."""
    case = Conv(n=2, c=2, o=3, hw=(5, 6), k=(3, 3), p=1)
    (x, w, b, gy), _, geometry = conv_oracle(case, np.float64, seed=3)
    args = geometry + (algo,)
    x_d, w_d, b_d, gy_d = be.to_device(x.copy(), w, b, gy)
    before = be.to_host(be.module.conv2d_forward(x_d, w_d, b_d, *args)[0]).copy()
    x_d += 1.0
    x = x + 1.0
    after = be.module.conv2d_forward(x_d, w_d, b_d, *args)[0]
    assert_array_close(be, after, reference.conv2d_forward(x, w, b, *args)[0], np.float64)
    assert not np.allclose(before, be.to_host(after))
    assert_array_close(be, be.module.conv2d_backward_weight(gy_d, x_d, case.k, *args),
                 reference.conv2d_backward_weight(gy, x, case.k, *args), np.float64)


@pytest.mark.parametrize("algo", ALGOS)
def test_conv2d_backward_weight_is_deterministic(be, algo):
    rng = np.random.default_rng(6)
    x, w = be.to_device(randn(rng, (8, 6, 14, 14), np.float32), randn(rng, (16, 6, 5, 5), np.float32))
    (gy,) = be.to_device(randn(rng, (8, 16, 10, 10), np.float32))
    geometry = ((1, 1), (0, 0), (1, 1), algo)
    first = be.to_host(be.module.conv2d_backward_weight(gy, x, (5, 5), *geometry)).copy()
    for _ in range(3):
        np.testing.assert_array_equal(be.to_host(be.module.conv2d_backward_weight(gy, x, (5, 5), *geometry)), first)


# bytes of workspace -> chunks of CHUNK_CASE's 5 samples (720 numbers each)
WORKSPACE_LIMITS = {
    "6000-bytes": lambda itemsize: 6000,  # 2 samples a chunk in float32, 1 in float64
    "two-samples": lambda itemsize: 2 * CHUNK_SAMPLE_NUMBERS * itemsize,  # chunks of 2+2+1
    "under-one-sample": lambda itemsize: 1,  # one sample at a time
}


@pytest.mark.parametrize("limit", list(WORKSPACE_LIMITS))
@pytest.mark.parametrize("dtype", FLOATS)
def test_im2col_in_workspace_sized_chunks_gives_the_same_results(be, dtype, limit):
    (x, w, b, gy), (ty, tgx, tgw), geometry = shared_conv_oracle(CHUNK_CASE, dtype, seed=1)
    args = geometry + ("im2col",)
    x_d, w_d, b_d, gy_d = be.to_device(x, w, b, gy)
    m = be.module

    def run():
        return [m.conv2d_forward(x_d, w_d, b_d, *args)[0],
                m.conv2d_backward_input(gy_d, w_d, CHUNK_CASE.hw, *args)[0],
                m.conv2d_backward_weight(gy_d, x_d, CHUNK_CASE.k, *args)]

    whole = [be.to_host(a).copy() for a in run()]
    with workspace_limit(WORKSPACE_LIMITS[limit](np.dtype(dtype).itemsize)):
        chunked = run()
    for what, got, torch_value, whole_value in zip(("forward", "grad input", "grad weight"),
                                                   chunked, (ty, tgx, tgw), whole):
        assert_array_close(be, got, torch_value, dtype, f"{what} chunked vs torch")
        assert_array_close(be, got, whole_value, dtype, f"{what} chunked vs one chunk")
    assert_array_close(be, chunked[2], reference.conv2d_backward_weight(gy, x, CHUNK_CASE.k, *geometry, "direct"),
                 dtype, "grad weight chunked vs reference direct")


# --- pooling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case,count_include_pad,dtype", grid(POOL_CASES, [True, False], FLOATS))
def test_avg_pool2d_matches_torch_and_reference(be, case, count_include_pad, dtype):
    (x, gy), (ty, tgx) = avg_pool_oracle(case, count_include_pad, dtype)
    options = pool_geometry(case) + (case.ceil, count_include_pad)
    x_d, gy_d = be.to_device(x, gy)
    check(be, be.module.avg_pool2d_forward(x_d, *options), ty,
          lambda: reference.avg_pool2d_forward(x, *options), dtype, "forward")
    check(be, be.module.avg_pool2d_backward(gy_d, case.hw, *options), tgx,
          lambda: reference.avg_pool2d_backward(gy, case.hw, *options), dtype, "backward")


@pytest.mark.parametrize("case,values,dtype", grid(MAX_POOL_CASES, list(POOL_INPUTS), FLOATS))
def test_max_pool2d_matches_torch_and_reference(be, case, values, dtype):
    (x, gy), (ty, tindex, tgx) = max_pool_oracle(case, values, dtype)
    geometry = pool_geometry(case) + (pair(case.d, "d"), case.ceil)
    x_d, gy_d = be.to_device(x, gy)
    y, index = be.module.max_pool2d_forward(x_d, *geometry)
    ref_y, ref_index = (None, None) if be.name == "reference" else reference.max_pool2d_forward(x, *geometry)
    check(be, y, ty, lambda: ref_y, dtype, "forward")
    assert isinstance(index, be.xp.ndarray) and index.dtype == np.int64 and index.flags.c_contiguous
    np.testing.assert_array_equal(be.to_host(index), tindex)
    if ref_index is not None:
        np.testing.assert_array_equal(be.to_host(index), ref_index)
    check(be, be.module.max_pool2d_backward(gy_d, index, case.hw), tgx,
          lambda: reference.max_pool2d_backward(gy, ref_index, case.hw), dtype, "backward")


@pytest.mark.parametrize("dtype", FLOATS)
def test_max_pool2d_propagates_nan_like_torch(be, dtype):
    x = np.arange(2 * 6 * 6, dtype=dtype).reshape(1, 2, 6, 6)
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = x[0, 1, 5, 0] = np.nan
    geometry = ((3, 3), (2, 2), (1, 1), (1, 1), True)
    y, index = be.module.max_pool2d_forward(*be.to_device(x), *geometry)
    ty, tindex = F.max_pool2d(torch.from_numpy(x), *geometry[:4], ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(be.to_host(y), ty.numpy())  # NaNs compare equal here
    np.testing.assert_array_equal(be.to_host(index), tindex.numpy())


# --- activations ------------------------------------------------------------------------------


def activation_input(values, rng):
    if values == "moderate":
        x = np.concatenate([rng.standard_normal(40) * 4, [0.0, -1e4, 1e4, -50.0, 50.0, -700.0]])
        return x.reshape(2, 23)  # any shape is accepted
    special = [0.0, -1e4, 1e4, -50.0, 50.0, -87.5, 88.5, -700.0, np.inf, -np.inf, np.nan]
    return np.concatenate([rng.standard_normal(ACTIVATION_SIZES[values]) * 6, special])


@pytest.mark.parametrize("values", ACTIVATION_INPUTS)
@pytest.mark.parametrize("name,dtype", [pytest.param(n, d, id=f"{n}-{d.__name__}")
                                        for n in ACTIVATIONS for d in FLOATS])
def test_activation_matches_torch_and_reference(be, name, dtype, values):
    rng = np.random.default_rng(4)
    x = activation_input(values, rng).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty = ACTIVATIONS[name](tx)
    gy = randn(rng, x.shape, dtype)
    ty.backward(torch.from_numpy(gy))

    forward, backward = getattr(be.module, f"{name}_forward"), getattr(be.module, f"{name}_backward")
    ref_forward, ref_backward = getattr(reference, f"{name}_forward"), getattr(reference, f"{name}_backward")
    x_d, gy_d = be.to_device(x, gy)
    finite = np.isfinite(x)
    if values == "moderate":
        with np.errstate(over="raise", divide="raise", invalid="raise"):  # no overflow for large |x|
            y = forward(x_d)
            gx = backward(gy_d, y)
        check(be, y, ty, lambda: ref_forward(x), dtype, "forward")
        check(be, gx, tx.grad, lambda: ref_backward(gy, be.to_host(y)), dtype, "backward")
        return
    y = forward(x_d)
    gx = backward(gy_d, y)
    assert_array_close(be, y, ty, dtype, "forward vs torch")
    assert_array_close(be, gx, tx.grad, dtype, "backward vs torch")
    if be.name != "reference":
        y_host, (finite_d,) = be.to_host(y), be.to_device(finite)
        with np.errstate(all="ignore"):
            assert_array_close(be, y[finite_d], ref_forward(x[finite]), dtype, "forward vs reference")
        assert_array_close(be, gx[finite_d], ref_backward(gy[finite], y_host[finite]), dtype, "backward vs reference")


# --- softmax cross-entropy --------------------------------------------------------------------


@pytest.mark.parametrize("logits,dtype", [pytest.param(k, d, id=f"{k}-{d.__name__}") for k in LOGITS for d in FLOATS])
def test_softmax_cross_entropy_matches_torch_and_reference(be, logits, dtype):
    rng = np.random.default_rng(5)
    z = LOGITS[logits](rng).astype(dtype)
    target = rng.integers(0, z.shape[1], z.shape[0]).astype(np.int64)
    tz = torch.from_numpy(z).requires_grad_()
    tloss = F.cross_entropy(tz, torch.from_numpy(target), reduction="none")
    gloss = randn(rng, (z.shape[0],), dtype)
    tloss.backward(torch.from_numpy(gloss))

    z_d, target_d, gloss_d = be.to_device(z, target, gloss)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss, probs = be.module.softmax_cross_entropy_forward(z_d, target_d)
        glogits = be.module.softmax_cross_entropy_backward(gloss_d, probs, target_d)
    assert np.isfinite(be.to_host(loss)).all() and np.isfinite(be.to_host(glogits)).all()
    ref_loss, ref_probs = reference.softmax_cross_entropy_forward(z, target)
    check(be, loss, tloss, lambda: ref_loss, dtype, "loss")
    check(be, probs, torch.softmax(torch.from_numpy(z), dim=1), lambda: ref_probs, dtype, "probs")
    check(be, glogits, tz.grad, lambda: reference.softmax_cross_entropy_backward(gloss, ref_probs, target),
          dtype, "grad logits")


# --- random geometries ------------------------------------------------------------------------

# ``be`` only names the backend: nothing in it changes between hypothesis examples. The reference
# backend is left out (it is the second oracle here, and the slowest to draw examples for).
RANDOM = settings(max_examples=25, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
RANDOM_BACKENDS = pytest.mark.parametrize("be", backend_params([b for b in BACKENDS if b != "reference"]),
                                          indirect=True)


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


@RANDOM_BACKENDS
@RANDOM
@given(case=conv_cases(), algo=st.sampled_from(ALGOS), dtype=st.sampled_from(FLOATS))
def test_conv2d_random_geometry(be, case, algo, dtype):
    assert min(conv2d_out_hw(case.hw, case.k, pair(case.s, "s"), pair(case.p, "p"), pair(case.d, "d"))) >= 1
    (x, w, b, gy), (ty, tgx, tgw), geometry = conv_oracle(case, dtype, seed=7)
    args = geometry + (algo,)
    x_d, w_d, b_d, gy_d = be.to_device(x, w, b, gy)
    assert_array_close(be, be.module.conv2d_forward(x_d, w_d, b_d, *args)[0], ty, dtype, "forward")
    assert_array_close(be, be.module.conv2d_backward_input(gy_d, w_d, case.hw, *args)[0], tgx, dtype, "grad input")
    assert_array_close(be, be.module.conv2d_backward_weight(gy_d, x_d, case.k, *args), tgw, dtype, "grad weight")


@st.composite
def pool_cases(draw):
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    p = tuple(draw(st.integers(0, k[i] // 2)) for i in range(2))  # torch: padding <= kernel / 2
    hw = tuple(draw(st.integers(k[i], 9)) for i in range(2))
    return Pool(n=draw(st.integers(1, 3)), c=draw(st.integers(1, 3)), hw=hw, k=k, s=s, p=p,
                ceil=draw(st.booleans()))


@RANDOM_BACKENDS
@RANDOM
@given(case=pool_cases(), count_include_pad=st.booleans(), dtype=st.sampled_from(FLOATS))
def test_pool2d_random_geometry(be, case, count_include_pad, dtype):
    kernel, stride, padding = pool_geometry(case)
    assert min(pool2d_out_hw(case.hw, kernel, stride, padding, (1, 1), case.ceil)) >= 1
    rng = np.random.default_rng(8)
    x = rng.integers(-3, 4, (case.n, case.c) + case.hw).astype(dtype)  # ties for max pooling
    tx_avg, tx_max = torch.from_numpy(x).requires_grad_(), torch.from_numpy(x).requires_grad_()
    options = (kernel, stride, padding, case.ceil)
    ty = F.avg_pool2d(tx_avg, *options, count_include_pad=count_include_pad)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))
    ty_max, tindex = F.max_pool2d(tx_max, kernel, stride, padding, 1, ceil_mode=case.ceil, return_indices=True)
    ty_max.backward(torch.from_numpy(gy))

    x_d, gy_d = be.to_device(x, gy)
    assert_array_close(be, be.module.avg_pool2d_forward(x_d, *options, count_include_pad), ty, dtype, "avg forward")
    check(be, be.module.avg_pool2d_backward(gy_d, case.hw, *options, count_include_pad), tx_avg.grad,
          lambda: reference.avg_pool2d_backward(gy, case.hw, *options, count_include_pad), dtype, "avg backward")
    y, index = be.module.max_pool2d_forward(x_d, kernel, stride, padding, (1, 1), case.ceil)
    assert_array_close(be, y, ty_max, dtype, "max forward")
    np.testing.assert_array_equal(be.to_host(index), tindex.numpy())
    check(be, be.module.max_pool2d_backward(gy_d, index, case.hw), tx_max.grad,
          lambda: reference.max_pool2d_backward(gy, be.to_host(index), case.hw), dtype, "max backward")
