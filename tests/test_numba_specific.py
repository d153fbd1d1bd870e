"""Properties of the numba backend alone: its thread count, its stateless conv kernels, its workspace.

The kernels' values against torch and reference, for every backend, are in tests/test_kernels.py.
"""

from __future__ import annotations

import os
import platform
import sys
import weakref

import numpy as np
import pytest
from kernel_cases import (
    ACTIVATION_SIZES,
    ALGOS,
    CHUNK_CASE,
    CHUNK_SAMPLE_NUMBERS,
    FLOATS,
    Conv,
    assert_array_close,
    conv_oracle,
    load_backend,
    workspace_limit,
)

import reference

numba_cpu = pytest.importorskip("kernels.numba_cpu", reason="numba backend not importable")
from kernels.numba_cpu import memory  # noqa: E402


@pytest.fixture
def be():
    return load_backend("numba")


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


def test_activation_sizes_run_on_one_thread_and_on_all():
    """tests/test_kernels.py's long activation inputs fall on both sides of SERIAL_BELOW (tanh and
    float64 sigmoid forward); the parallel kernels of the higher thresholds are held to the serial
    ones' bits by test_the_serial_activation_kernels_give_the_parallel_ones_bits."""
    small, large = sorted(ACTIVATION_SIZES.values())
    assert small < numba_cpu.activation.SERIAL_BELOW <= large


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_the_serial_activation_kernels_give_the_parallel_ones_bits(dtype):
    act = numba_cpu.activation
    x = np.random.default_rng(0).standard_normal(4099).astype(dtype) * 30
    x[:4] = [np.nan, np.inf, -np.inf, 0.0]
    gy = np.random.default_rng(1).standard_normal(x.size).astype(dtype)
    pairs = [(act._forward, act._forward_serial, op) for op in (act.SIGMOID, act.RELU, act.TANH)]
    if dtype == np.float32:
        pairs.append((act._sigmoid_f32, act._sigmoid_f32_serial, None))
    for parallel, serial, op in pairs:
        extra = () if op is None else (op,)
        y, y_serial = np.empty_like(x), np.empty_like(x)
        parallel(x, y, *extra)
        serial(x, y_serial, *extra)
        np.testing.assert_array_equal(y_serial, y)
        if op is not None:
            g, g_serial = np.empty_like(x), np.empty_like(x)
            act._backward(gy, y, g, op)
            act._backward_serial(gy, y, g_serial, op)
            np.testing.assert_array_equal(g_serial, g)


CONV_MODULES = [numba_cpu.conv, numba_cpu.conv_direct, numba_cpu.conv_im2col, numba_cpu.conv_out_lanes]
FASTMATH_FLAGS = {"_FMA", "_DOT"}  # conv_direct's compile flags: numba's fastmath= takes only a set


def _mutable_globals(module):
    """Module-level containers or weak references: where a kernel could keep data between calls."""
    kinds = (list, dict, set, bytearray, np.ndarray, weakref.ref, weakref.WeakValueDictionary,
             weakref.WeakKeyDictionary)
    return sorted(name for name, value in vars(module).items()
                  if isinstance(value, kinds) and not name.startswith("__") and name not in FASTMATH_FLAGS)


@pytest.mark.parametrize("module", CONV_MODULES, ids=lambda m: m.__name__)
def test_conv_modules_keep_no_containers_between_calls(module):
    assert _mutable_globals(module) == []


# LeNet's conv2; a second, partly idle block of output channels and padding; one image, a
# 3-high kernel, and 21 output columns, whose last block overlaps the one before; a 3x3 kernel
LANE_CASES = [
    Conv(n=3, c=6, o=16, hw=(14, 14), k=(5, 5)),
    Conv(n=2, c=3, o=20, hw=(12, 12), k=(5, 5), p=1),
    Conv(n=1, c=2, o=33, hw=(9, 23), k=(3, 5), p=(2, 1)),
    Conv(n=2, c=5, o=16, hw=(11, 12), k=(3, 3), p=1),  # the 3-wide kernel
]


@pytest.mark.parametrize("case", LANE_CASES, ids=lambda c: f"o{c.o}-hw{c.hw[0]}x{c.hw[1]}")
def test_the_output_channel_kernel_gives_the_batch_inner_kernels_bits(be, case):
    """conv_out_lanes, which direct's forward uses where it applies, against conv_direct's own
    kernel bit for bit (the same taps in the same order), and against torch."""
    from kernels.numba_cpu import conv_direct, conv_out_lanes

    (x, w, b, _), (ty, _, _), (stride, padding, dilation) = conv_oracle(case, np.float32, seed=4)
    out_w = ty.shape[3]
    assert conv_out_lanes.applies(x.dtype, w.shape, stride, padding, dilation, out_w)
    y, saved = numba_cpu.conv2d_forward(x, w, b, stride, padding, dilation, "direct")
    assert saved.x is None  # no batch-innermost copy was made
    expected, _, _ = conv_direct.batch_inner_forward(x, w, b, stride, padding, dilation)
    np.testing.assert_array_equal(y, expected)
    assert_array_close(be, y, ty, np.float32)


def test_the_output_channel_kernel_applies_only_where_it_is_written_for():
    from kernels.numba_cpu.conv_out_lanes import applies

    lenet2 = dict(x_dtype=np.dtype(np.float32), w_shape=(16, 6, 5, 5), stride=(1, 1), padding=(0, 0),
                  dilation=(1, 1), out_w=10)
    assert applies(**lenet2)
    for change in (dict(x_dtype=np.dtype(np.float64)), dict(w_shape=(6, 1, 5, 5)), dict(w_shape=(16, 6, 3, 7)),
                   dict(w_shape=(16, 6, 1, 1)),
                   dict(stride=(1, 2)), dict(dilation=(2, 1)), dict(padding=(-1, 0)), dict(out_w=9)):
        assert not applies(**{**lenet2, **change}), change


@pytest.mark.parametrize("case", [Conv(n=5, c=1, o=6, hw=(12, 12), k=(5, 5), p=2),
                                  Conv(n=3, c=2, o=9, hw=(9, 11), k=(3, 2), s=(1, 2), p=1, d=(2, 1))],
                         ids=["lenet-conv1-like", "strided-dilated"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_backward_weight_without_a_copy_of_gy_gives_the_same_sums(be, case, dtype):
    """Without backward-input's batch-innermost copy of gy (a first layer), each task lays out its
    own rows of gy: the weight gradient equals the one from the copy bit for bit, and torch's."""
    from kernels.numba_cpu import conv_direct

    (x, w, b, gy), (_, _, tgw), (stride, padding, dilation) = conv_oracle(case, dtype, seed=6)
    alone, _ = conv_direct.backward_weight(gy, x, case.k, stride, padding, dilation, conv_direct.Layouts())
    copied = conv_direct.Layouts(gy=conv_direct._batch_inner_gradient(gy))
    from_copy, _ = conv_direct.backward_weight(gy, x, case.k, stride, padding, dilation, copied)
    np.testing.assert_array_equal(alone, from_copy)
    assert_array_close(be, alone, tgw, dtype)


@pytest.mark.parametrize("algo", ALGOS)
def test_two_forwards_on_recycled_arrays_each_see_their_own_values(algo):
    """Same shapes, new values, possibly at a freed array's address: nothing from the first call
    may leak into the second (the direct algorithm once kept copies keyed by array identity)."""
    case = Conv(n=3, c=2, o=5, hw=(6, 7), k=(3, 2), p=1)
    (x, w, b, gy), _, geometry = conv_oracle(case, np.float64, seed=2)
    args = geometry + (algo,)
    for trial in range(3):
        x_t, w_t = x * (trial + 1), w[::-1].copy() * (trial + 1)  # the last ones are freed each time
        y, saved = numba_cpu.conv2d_forward(x_t, w_t, b, *args)
        np.testing.assert_allclose(y, reference.conv2d_forward(x_t, w_t, b, *args)[0], rtol=1e-12, atol=1e-12)
        gx, saved = numba_cpu.conv2d_backward_input(gy, w_t, case.hw, *args, saved=saved)
        np.testing.assert_allclose(gx, reference.conv2d_backward_input(gy, w_t, case.hw, *args)[0],
                                   rtol=1e-12, atol=1e-12)
        gw = numba_cpu.conv2d_backward_weight(gy, x_t, case.k, *args, saved=saved)
        np.testing.assert_allclose(gw, reference.conv2d_backward_weight(gy, x_t, case.k, *args),
                                   rtol=1e-10, atol=1e-12)
        del x_t, w_t, y, gx, gw, saved
    for module in CONV_MODULES:
        assert _mutable_globals(module) == []


@pytest.mark.parametrize("algo", ALGOS)
def test_reused_layouts_give_the_same_results_as_fresh_ones(be, algo):
    """backward-weight given forward's and backward-input's ``saved`` equals backward-weight alone;
    a ``saved`` that the other algorithm made is ignored."""
    case = Conv(n=3, c=2, o=5, hw=(6, 7), k=(3, 2), p=1)
    (x, w, b, gy), (ty, tgx, tgw), geometry = conv_oracle(case, np.float64, seed=2)
    args = geometry + (algo,)
    y, saved = numba_cpu.conv2d_forward(x, w, b, *args)
    assert (saved is not None) == (algo == "direct")
    gx, saved = numba_cpu.conv2d_backward_input(gy, w, case.hw, *args, saved=saved)
    reused = numba_cpu.conv2d_backward_weight(gy, x, case.k, *args, saved=saved)
    np.testing.assert_array_equal(reused, numba_cpu.conv2d_backward_weight(gy, x, case.k, *args))
    other = "im2col" if algo == "direct" else "direct"
    _, saved_by_other = numba_cpu.conv2d_forward(x, w, b, *geometry, other)
    _, saved_by_other = numba_cpu.conv2d_backward_input(gy, w, case.hw, *geometry, other, saved=saved_by_other)
    np.testing.assert_array_equal(
        numba_cpu.conv2d_backward_weight(gy, x, case.k, *args, saved=saved_by_other), reused)
    for got, expected in zip((y, gx, reused), (ty, tgx, tgw)):
        assert_array_close(be, got, expected, np.float64)


def test_flipped_needs_stride_one():
    case = Conv(n=1, c=1, o=1, hw=(5, 5), k=(3, 3), s=2)
    (x, w, b, gy), _, geometry = conv_oracle(case, np.float64)
    with pytest.raises(ValueError, match=r"algo 'flipped' needs stride \(1, 1\), got stride=\(2, 2\)"):
        numba_cpu.conv2d_backward_input(gy, w, case.hw, *geometry, "flipped")
    with pytest.raises(ValueError, match="algo must be one of"):
        numba_cpu.conv2d_backward_weight(gy, x, case.k, *geometry, "flipped")


@pytest.mark.parametrize("dtype", FLOATS)
def test_im2col_workspace_peak_stays_within_the_budget(be, dtype):
    (x, w, b, gy), (ty, tgx, tgw), geometry = conv_oracle(CHUNK_CASE, dtype, seed=1)
    args = geometry + ("im2col",)
    per_sample = CHUNK_SAMPLE_NUMBERS * np.dtype(dtype).itemsize
    with workspace_limit(2 * per_sample):  # chunks of 2+2+1 samples
        numba_cpu.reset_peak_workspace()
        chunked = [numba_cpu.conv2d_forward(x, w, b, *args)[0],
                   numba_cpu.conv2d_backward_input(gy, w, CHUNK_CASE.hw, *args)[0],
                   numba_cpu.conv2d_backward_weight(gy, x, CHUNK_CASE.k, *args)]
        peak = numba_cpu.peak_workspace_bytes()
    # the unfolded matrix of 2 samples, plus one chunk of the (O, n*OH*OW) gradient or output
    assert 2 * per_sample <= peak <= 2 * per_sample + 2 * 4 * 40 * np.dtype(dtype).itemsize, peak
    for got, expected, what in zip(chunked, (ty, tgx, tgw), ("forward", "grad input", "grad weight")):
        assert_array_close(be, got, expected, dtype, what=what)


def test_conv2d_function_hands_the_forward_layouts_to_backward_weight(monkeypatch):
    """F.conv2d on the numba backend: backward-weight gets the very copy of x its forward made,
    and backward-input's copy of gy; the gradients equal torch's."""
    import torch

    import engine
    from engine import backend as engine_backend

    module = engine_backend.load("numba")
    forward, backward_weight = module.conv2d_forward, module.conv2d_backward_weight
    made, received = [], []

    def recording_forward(*args):
        y, saved = forward(*args)
        made.append(saved)
        return y, saved

    def recording_backward_weight(*args, saved=None):
        received.append(saved)
        return backward_weight(*args, saved=saved)

    monkeypatch.setattr(module, "conv2d_forward", recording_forward)
    monkeypatch.setattr(module, "conv2d_backward_weight", recording_backward_weight)
    previous = engine_backend.get_backend()
    engine.set_backend("numba")
    try:
        rng = np.random.default_rng(5)
        x_np, w_np = rng.standard_normal((3, 2, 7, 6)), rng.standard_normal((4, 2, 3, 3))
        x, w = engine.tensor(x_np, requires_grad=True), engine.tensor(w_np, requires_grad=True)
        # stride 2: backward-input gathers (and lays gy out for backward-weight)
        engine.nn.functional.conv2d(x, w, stride=2, padding=1, algo="direct").sum().backward()
    finally:
        engine.set_backend(previous)
    tx, tw = torch.tensor(x_np, requires_grad=True), torch.tensor(w_np, requires_grad=True)
    torch.nn.functional.conv2d(tx, tw, stride=2, padding=1).sum().backward()
    assert len(made) == len(received) == 1
    assert received[0].x is made[0].x and received[0].gy is not None
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_malloc_keeps_freed_blocks_unless_the_environment_says_otherwise():
    import subprocess

    code = "import kernels.numba_cpu.memory as m; print(m.APPLIED)"
    env = {k: v for k, v in os.environ.items() if k not in memory.ENVIRONMENT}
    run = [sys.executable, "-c", code]
    expected = "True" if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc" else "False"
    assert subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout.strip() == expected
    env["MALLOC_TRIM_THRESHOLD_"] = "131072"
    assert subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout.strip() == "False"
