"""The cupy backend's kernels against torch.nn.functional (CPU) and the reference backend.

Every kernel is called directly on cupy arrays; its result is copied back and compared with
torch's forward values / autograd gradients and with ``reference`` on the same numpy inputs.
The whole module is skipped, with the reason, when CuPy is not installed or sees no CUDA device.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import pytest

cupy = pytest.importorskip("cupy", reason="CuPy not installed")


def _cuda_device_count() -> int:
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver, or a driver too old for this CuPy
        return 0


if _cuda_device_count() == 0:
    pytest.skip("no CUDA device usable by CuPy", allow_module_level=True)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import kernels.cupy_gpu as gpu  # noqa: E402
import reference  # noqa: E402
from kernels import workspace  # noqa: E402
from kernels.contract import KERNELS, check_backend  # noqa: E402
from kernels.shapes import pair  # noqa: E402

DTYPES = [np.float64, np.float32]
# GPU sums run in another order than torch's CPU loops; float32 convs over a few hundred terms.
TOLERANCE = {
    np.float64: {"rtol": 1e-10, "atol": 1e-11},
    np.float32: {"rtol": 1e-4, "atol": 1e-4},
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


def on_gpu(*arrays):
    return tuple(cupy.asarray(a) for a in arrays)


def assert_close(actual, expected, dtype, what=""):
    """actual (a cupy array of ``dtype``) against expected (torch tensor or numpy array)."""
    assert isinstance(actual, cupy.ndarray), f"{what}: expected a cupy array, got {type(actual)}"
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype} != {np.dtype(dtype)}"
    assert actual.flags.c_contiguous, f"{what}: not C-contiguous"
    if isinstance(expected, torch.Tensor):
        expected = expected.detach().numpy()
    actual = cupy.asnumpy(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    tol = TOLERANCE[dtype]
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale, err_msg=what)


def test_fills_the_contract():
    check_backend(gpu)
    assert gpu.NAME == "cupy" and gpu.xp is cupy
    assert all(callable(getattr(gpu, name)) for name in KERNELS)
    gpu.synchronize()


# --- convolution ------------------------------------------------------------------------------

CONV_CASES = [
    Conv(n=1, c=1, o=1, hw=(5, 5), k=(3, 3)),
    Conv(n=2, c=3, o=4, hw=(7, 6), k=(3, 3), s=2, p=1),
    Conv(n=2, c=2, o=3, hw=(6, 7), k=(1, 2)),
    Conv(n=3, c=2, o=2, hw=(8, 9), k=(2, 3), s=3, p=2),
    Conv(n=2, c=3, o=2, hw=(9, 7), k=(3, 2), s=(2, 1), p=(1, 2)),
    Conv(n=1, c=2, o=3, hw=(10, 9), k=(3, 3), s=1, p=2, d=2),
    Conv(n=2, c=1, o=2, hw=(11, 10), k=(2, 3), s=2, p=(1, 2), d=(2, 1)),
    Conv(n=2, c=2, o=2, hw=(5, 4), k=(5, 4)),
    Conv(n=3, c=1, o=6, hw=(28, 28), k=(5, 5)),  # LeNet conv1
    Conv(n=2, c=6, o=16, hw=(12, 12), k=(5, 5)),  # LeNet conv2: two output-channel tiles
    Conv(n=2, c=19, o=11, hw=(5, 6), k=(1, 1)),  # channel counts not multiples of the tiles
    Conv(n=1, c=3, o=17, hw=(20, 41), k=(7, 7), s=2, p=3),  # several pixel tiles, 7x7 stride 2
    Conv(n=2, c=2, o=3, hw=(40, 70), k=(3, 3), s=1, p=1),  # output wider than one tile
    Conv(n=1, c=2, o=2, hw=(210, 210), k=(3, 3), d=100),  # input tile too big for shared memory
    Conv(n=1, c=1, o=2, hw=(38, 38), k=(37, 37)),  # weights too big for shared memory
    Conv(n=1, c=1, o=2, hw=(3, 12010), k=(2, 3), d=(1, 6000)),  # grad-weight rows too wide
]


@pytest.mark.parametrize("case,algo,dtype", grid(CONV_CASES, ["direct", "im2col"], DTYPES))
def test_conv2d_matches_torch_and_reference(case, algo, dtype):
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
    x_d, w_d, b_d, gy_d = on_gpu(x, w, b, gy)
    y = gpu.conv2d_forward(x_d, w_d, b_d, *geometry)
    gx = gpu.conv2d_backward_input(gy_d, w_d, case.hw, *geometry)
    gw = gpu.conv2d_backward_weight(gy_d, x_d, case.k, *geometry)
    assert_close(y, ty, dtype, "forward")
    assert_close(gpu.conv2d_forward(x_d, w_d, None, *geometry), ty - tb[None, :, None, None], dtype, "no bias")
    assert_close(gx, tx.grad, dtype, "grad input")
    assert_close(gw, tw.grad, dtype, "grad weight")

    assert_close(y, reference.conv2d_forward(x, w, b, *geometry), dtype, "forward vs reference")
    assert_close(gx, reference.conv2d_backward_input(gy, w, case.hw, *geometry), dtype, "gx vs reference")
    assert_close(gw, reference.conv2d_backward_weight(gy, x, case.k, *geometry), dtype, "gw vs reference")


@pytest.fixture
def restore_workspace():
    """Give the test the workspace budget to change, and put the default back afterwards."""
    before = workspace.get_workspace_limit()
    yield
    workspace.set_workspace_limit(before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_in_workspace_sized_chunks_gives_the_same_results(dtype, restore_workspace):
    rng = np.random.default_rng(1)
    x, w, b = on_gpu(randn(rng, (5, 3, 9, 8), dtype), randn(rng, (4, 3, 3, 2), dtype), randn(rng, (4,), dtype))
    geometry = ((2, 1), (1, 1), (1, 2), "im2col")
    y = gpu.conv2d_forward(x, w, b, *geometry)
    gy = cupy.asarray(randn(rng, y.shape, dtype))
    whole = [
        y,
        gpu.conv2d_backward_input(gy, w, (9, 8), *geometry),
        gpu.conv2d_backward_weight(gy, x, (3, 2), *geometry),
    ]
    # One sample unfolds to (3*3*2, 5*8) = 720 numbers: chunks of 2 samples in float32, 1 in float64.
    workspace.set_workspace_limit(6000)
    chunked = [
        gpu.conv2d_forward(x, w, b, *geometry),
        gpu.conv2d_backward_input(gy, w, (9, 8), *geometry),
        gpu.conv2d_backward_weight(gy, x, (3, 2), *geometry),
    ]
    for what, a, e in zip(("forward", "grad input", "grad weight"), chunked, whole):
        assert_close(a, cupy.asnumpy(e), dtype, what)


@pytest.mark.parametrize("algo", ["direct", "im2col"])
def test_conv2d_is_deterministic(algo):
    rng = np.random.default_rng(6)
    x, w = on_gpu(randn(rng, (8, 6, 14, 14), np.float32), randn(rng, (16, 6, 5, 5), np.float32))
    gy = cupy.asarray(randn(rng, (8, 16, 10, 10), np.float32))
    geometry = ((1, 1), (0, 0), (1, 1), algo)
    first = cupy.asnumpy(gpu.conv2d_backward_weight(gy, x, (5, 5), *geometry))
    for _ in range(3):
        np.testing.assert_array_equal(cupy.asnumpy(gpu.conv2d_backward_weight(gy, x, (5, 5), *geometry)), first)


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
    Pool(n=4, c=6, hw=(24, 24), k=2, s=2, p=0, ceil=False),  # LeNet
]


def pool_geometry(case):
    return pair(case.k, "k"), pair(case.s, "s"), pair(case.p, "p")


@pytest.mark.parametrize("case,count_include_pad,dtype", grid(POOL_CASES, [True, False], DTYPES))
def test_avg_pool2d_matches_torch_and_reference(case, count_include_pad, dtype):
    rng = np.random.default_rng(2)
    kernel, stride, padding = pool_geometry(case)
    x = randn(rng, (case.n, case.c) + case.hw, dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty = F.avg_pool2d(tx, kernel, stride, padding, ceil_mode=case.ceil, count_include_pad=count_include_pad)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))

    options = (kernel, stride, padding, case.ceil, count_include_pad)
    x_d, gy_d = on_gpu(x, gy)
    y = gpu.avg_pool2d_forward(x_d, *options)
    gx = gpu.avg_pool2d_backward(gy_d, case.hw, *options)
    assert_close(y, ty, dtype, "forward")
    assert_close(gx, tx.grad, dtype, "backward")
    assert_close(y, reference.avg_pool2d_forward(x, *options), dtype, "forward vs reference")
    assert_close(gx, reference.avg_pool2d_backward(gy, case.hw, *options), dtype, "backward vs reference")


MAX_POOL_CASES = POOL_CASES + [
    Pool(n=1, c=2, hw=(9, 8), k=3, s=2, p=1, ceil=True, d=2),
    Pool(n=2, c=1, hw=(7, 9), k=(2, 3), s=(1, 2), p=(1, 1), ceil=False, d=(2, 1)),
    Pool(n=1, c=1, hw=(8, 8), k=2, s=1, p=1, ceil=True, d=3),
    Pool(n=2, c=2, hw=(9, 9), k=3, s=1, p=1, ceil=False),  # up to 9 windows share a maximum
]
INPUTS = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "ties": lambda rng, shape: rng.integers(-1, 2, shape).astype(float),  # many equal maxima
    "all_equal": lambda rng, shape: np.full(shape, -2.0),  # below zero: padding must act as -inf
    "minus_inf": lambda rng, shape: np.full(shape, -np.inf),  # torch picks the first real element
}


@pytest.mark.parametrize("case,values,dtype", grid(MAX_POOL_CASES, list(INPUTS), DTYPES))
def test_max_pool2d_matches_torch_and_reference(case, values, dtype):
    rng = np.random.default_rng(3)
    kernel, stride, padding = pool_geometry(case)
    dilation = pair(case.d, "d")
    x = INPUTS[values](rng, (case.n, case.c) + case.hw).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_()
    ty, tindex = F.max_pool2d(tx, kernel, stride, padding, dilation, ceil_mode=case.ceil, return_indices=True)
    gy = randn(rng, tuple(ty.shape), dtype)
    ty.backward(torch.from_numpy(gy))

    x_d, gy_d = on_gpu(x, gy)
    y, index = gpu.max_pool2d_forward(x_d, kernel, stride, padding, dilation, case.ceil)
    assert_close(y, ty, dtype, "forward")
    assert isinstance(index, cupy.ndarray) and index.dtype == np.int64
    np.testing.assert_array_equal(cupy.asnumpy(index), tindex.numpy())
    ref_y, ref_index = reference.max_pool2d_forward(x, kernel, stride, padding, dilation, case.ceil)
    np.testing.assert_array_equal(cupy.asnumpy(index), ref_index)
    gx = gpu.max_pool2d_backward(gy_d, index, case.hw)
    assert_close(gx, tx.grad, dtype, "backward")
    assert_close(gx, reference.max_pool2d_backward(gy, ref_index, case.hw), dtype, "backward vs reference")


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool2d_propagates_nan_like_torch(dtype):
    x = np.arange(2 * 6 * 6, dtype=dtype).reshape(1, 2, 6, 6)
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = x[0, 1, 5, 0] = np.nan
    geometry = ((3, 3), (2, 2), (1, 1), (1, 1), True)
    y, index = gpu.max_pool2d_forward(cupy.asarray(x), *geometry)
    ty, tindex = F.max_pool2d(torch.from_numpy(x), *geometry[:4], ceil_mode=True, return_indices=True)
    np.testing.assert_array_equal(cupy.asnumpy(y), ty.numpy())  # NaNs compare equal here
    np.testing.assert_array_equal(cupy.asnumpy(index), tindex.numpy())


# --- activations ------------------------------------------------------------------------------

ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


@pytest.mark.parametrize(
    "name,dtype", [pytest.param(n, d, id=f"{n}-{d.__name__}") for n in ACTIVATIONS for d in DTYPES]
)
def test_activation_matches_torch_and_reference(name, dtype):
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.standard_normal(40) * 4, [0.0, -1e4, 1e4, -50.0, 50.0, -700.0]])
    x = x.astype(dtype).reshape(2, 23)
    tx = torch.from_numpy(x).requires_grad_()
    ty = ACTIVATIONS[name](tx)
    gy = randn(rng, x.shape, dtype)
    ty.backward(torch.from_numpy(gy))

    x_d, gy_d = on_gpu(x, gy)
    y = getattr(gpu, f"{name}_forward")(x_d)
    gx = getattr(gpu, f"{name}_backward")(gy_d, y)
    assert_close(y, ty, dtype, "forward")
    assert_close(gx, tx.grad, dtype, "backward")
    assert_close(y, getattr(reference, f"{name}_forward")(x), dtype, "forward vs reference")


# --- softmax cross-entropy --------------------------------------------------------------------

LOGITS = {
    "normal": lambda rng: rng.standard_normal((6, 5)) * 3,
    "extreme": lambda rng: rng.choice([-1e4, 1e4, 0.0, 3.0], size=(6, 5)),
    "one_class": lambda rng: rng.standard_normal((3, 1)),
    "lenet": lambda rng: rng.standard_normal((256, 10)),
    "wide": lambda rng: rng.standard_normal((3, 3000)) * 5,  # several warps and loops per row
}


@pytest.mark.parametrize("logits,dtype", [pytest.param(k, d, id=f"{k}-{d.__name__}") for k in LOGITS for d in DTYPES])
def test_softmax_cross_entropy_matches_torch_and_reference(logits, dtype):
    rng = np.random.default_rng(5)
    z = LOGITS[logits](rng).astype(dtype)
    target = rng.integers(0, z.shape[1], z.shape[0]).astype(np.int64)
    tz = torch.from_numpy(z).requires_grad_()
    tloss = F.cross_entropy(tz, torch.from_numpy(target), reduction="none")
    gloss = randn(rng, (z.shape[0],), dtype)
    tloss.backward(torch.from_numpy(gloss))

    z_d, target_d, gloss_d = on_gpu(z, target, gloss)
    loss, probs = gpu.softmax_cross_entropy_forward(z_d, target_d)
    glogits = gpu.softmax_cross_entropy_backward(gloss_d, probs, target_d)
    assert np.isfinite(cupy.asnumpy(loss)).all() and np.isfinite(cupy.asnumpy(glogits)).all()
    assert_close(loss, tloss, dtype, "loss")
    assert_close(probs, torch.softmax(torch.from_numpy(z), dim=1), dtype, "probs")
    assert_close(glogits, tz.grad, dtype, "grad logits")
    ref_loss, ref_probs = reference.softmax_cross_entropy_forward(z, target)
    assert_close(loss, ref_loss, dtype, "loss vs reference")
    assert_close(probs, ref_probs, dtype, "probs vs reference")
