"""Properties of the numba backend alone: its thread count, its kept layout copies, its workspace.

The kernels' values against torch and reference, for every backend, are in tests/test_kernels.py.
"""

from __future__ import annotations

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
    """tests/test_kernels.py's long activation inputs fall on both sides of SERIAL_BELOW."""
    small, large = sorted(ACTIVATION_SIZES.values())
    assert small < numba_cpu.activation.SERIAL_BELOW <= large


@pytest.mark.parametrize("algo", ALGOS)
def test_kept_layout_copies_give_the_same_results_as_fresh_ones(be, algo):
    """direct keeps the forward's copy of x for backward-weight and backward-input's copy of gy
    for backward-weight (keyed on the very array): results must not depend on it."""
    case = Conv(n=3, c=2, o=5, hw=(6, 7), k=(3, 2), p=1)
    (x, w, b, gy), (ty, tgx, tgw), geometry = conv_oracle(case, np.float64, seed=2)
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
    assert_array_close(be, numba_cpu.conv2d_backward_weight(gy, other, case.k, *args),
                 reference.conv2d_backward_weight(gy, other, case.k, *args), np.float64)
    for got, expected in zip(kept, (ty, tgx, tgw)):
        assert_array_close(be, got, expected, np.float64)


@pytest.mark.parametrize("dtype", FLOATS)
def test_im2col_workspace_peak_stays_within_the_budget(be, dtype):
    (x, w, b, gy), (ty, tgx, tgw), geometry = conv_oracle(CHUNK_CASE, dtype, seed=1)
    args = geometry + ("im2col",)
    per_sample = CHUNK_SAMPLE_NUMBERS * np.dtype(dtype).itemsize
    with workspace_limit(2 * per_sample):  # chunks of 2+2+1 samples
        numba_cpu.reset_peak_workspace()
        chunked = [numba_cpu.conv2d_forward(x, w, b, *args),
                   numba_cpu.conv2d_backward_input(gy, w, CHUNK_CASE.hw, *args),
                   numba_cpu.conv2d_backward_weight(gy, x, CHUNK_CASE.k, *args)]
        peak = numba_cpu.peak_workspace_bytes()
    # the unfolded matrix of 2 samples, plus one chunk of the (O, n*OH*OW) gradient or output
    assert 2 * per_sample <= peak <= 2 * per_sample + 2 * 4 * 40 * np.dtype(dtype).itemsize, peak
    for got, expected, what in zip(chunked, (ty, tgx, tgw), ("forward", "grad input", "grad weight")):
        assert_array_close(be, got, expected, dtype, what=what)
