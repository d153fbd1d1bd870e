"""Properties of the cupy backend alone: the size checks its 32-bit indices and CUDA's grid need.

The check functions (kernels/shapes.py) are tested here on any machine, without launching; the
tests that call the backend run wherever ``kernels.cupy_gpu`` imports: on a GPU, or on the CPU
through the CUDA emulator (tests/test_cuda_emulator.py runs every test whose name says cupy).
The kernels' values against torch and reference, for every backend, are in tests/test_kernels.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import CHUNK_CASE, Conv, assert_array_close, conv_oracle, load_backend, workspace_limit

import reference
from kernels import im2col_driver
from kernels.shapes import CUDA_GRID_LIMITS, check_cuda_grid, check_index_range, column_chunk_bytes


def test_index_range_names_the_array_and_its_shape():
    check_index_range("conv", 1000, x=(10, 99), y=(999,))
    with pytest.raises(ValueError, match=r"conv: y of shape \(10, 100\) has 1000 elements.*< 1000"):
        check_index_range("conv", 1000, x=(10, 99), y=(10, 100))


def test_cuda_grid_limits_name_the_axis_and_the_shapes():
    check_cuda_grid("k", (2**31 - 1, 65535, 65535), x=(1,))
    with pytest.raises(ValueError, match=r"k: .* 65536 blocks along gridDim.y, more than CUDA's 65535 "
                                         r"\(gy \(1, 1, 1, 1\), x \(1, 65536, 1, 1\)\)"):
        check_cuda_grid("k", (1, 65536, 1), gy=(1, 1, 1, 1), x=(1, 65536, 1, 1))
    with pytest.raises(ValueError, match="gridDim.z"):
        check_cuda_grid("k", (1, 1, CUDA_GRID_LIMITS[2] + 1))


@pytest.mark.parametrize("limit", [10**9, 2**31 - 1024])
def test_column_chunks_stay_below_the_index_limit(limit):
    k, out_hw, itemsize = 150, (24, 24), 4  # one sample: 86,400 column entries
    per_sample = k * out_hw[0] * out_hw[1]
    with workspace_limit(2**40):  # the index limit, not the workspace budget, bounds the chunk
        step = im2col_driver.chunk_size(10**6, per_sample * itemsize,
                                        column_chunk_bytes("conv", limit, k, out_hw, itemsize))
    assert step * per_sample < limit <= (step + 1) * per_sample


def test_columns_of_one_sample_past_the_limit_are_refused():
    with pytest.raises(ValueError, match=r"conv: columns of one sample of shape \(150, 576\) has 86400 "):
        column_chunk_bytes("conv", 86400, 150, (24, 24), 4)


@pytest.fixture
def cupy_backend():
    return load_backend("cupy")


def test_cupy_direct_refuses_more_input_channels_than_a_grid_column(cupy_backend):
    """backward-weight (direct) launches one block row per input channel: gridDim.y = C."""
    channels = CUDA_GRID_LIMITS[1] + 1
    gy, x = cupy_backend.to_device(np.ones((1, 1, 1, 1)), np.ones((1, channels, 1, 1)))
    with pytest.raises(ValueError, match=r"backward-weight \(direct\).*65536 blocks along gridDim.y.*"
                                         r"x \(1, 65536, 1, 1\)"):
        cupy_backend.module.conv2d_backward_weight(gy, x, (1, 1), (1, 1), (0, 0), (1, 1), "direct")


def test_cupy_im2col_chunks_columns_below_the_index_limit(cupy_backend, monkeypatch):
    """With the index limit lowered to 2.5 samples' columns, every kernel runs in chunks of 2
    samples (backward-input's column buffer included) and still matches reference."""
    from kernels.cupy_gpu import conv_im2col

    case = CHUNK_CASE
    (x, w, b, gy), _, geometry = conv_oracle(case, np.float64, seed=4)
    per_sample = w[0].size * gy.shape[2] * gy.shape[3]
    monkeypatch.setattr(conv_im2col, "INT32_LIMIT", int(2.5 * per_sample))
    steps = []
    real_chunk_size = im2col_driver.chunk_size
    monkeypatch.setattr(im2col_driver, "chunk_size", lambda *a: steps.append(real_chunk_size(*a)) or steps[-1])
    x_d, w_d, b_d, gy_d = cupy_backend.to_device(x, w, b, gy)
    m, args = cupy_backend.module, geometry + ("im2col",)
    got = (m.conv2d_forward(x_d, w_d, b_d, *args)[0], m.conv2d_backward_input(gy_d, w_d, case.hw, *args)[0],
           m.conv2d_backward_weight(gy_d, x_d, case.k, *args))
    assert steps == [2, 2, 2]
    expected = (reference.conv2d_forward(x, w, b, *args)[0],
                reference.conv2d_backward_input(gy, w, case.hw, *args)[0],
                reference.conv2d_backward_weight(gy, x, case.k, *args))
    for g, e in zip(got, expected):
        assert_array_close(cupy_backend, g, e, np.float64)
    # one sample's columns (36, 16) reach the limit; gy (1, 1, 4, 4) and gx (1, 4, 4, 4) do not
    small = Conv(n=1, c=4, o=1, hw=(4, 4), k=(3, 3), p=1)
    (x, w, b, gy), _, geometry = conv_oracle(small, np.float64)
    monkeypatch.setattr(conv_im2col, "INT32_LIMIT", 36 * 16)
    gy_d, w_d = cupy_backend.to_device(gy, w)
    with pytest.raises(ValueError, match=r"backward-input \(im2col\): columns of one sample of shape \(36, 16\)"):
        m.conv2d_backward_input(gy_d, w_d, small.hw, *geometry, "im2col")


def test_cupy_flipped_backward_input_refuses_a_stride(cupy_backend):
    case = Conv(n=1, c=1, o=1, hw=(5, 5), k=(3, 3), s=2)
    (x, w, b, gy), _, geometry = conv_oracle(case, np.float64)
    gy_d, w_d = cupy_backend.to_device(gy, w)
    with pytest.raises(ValueError, match=r"algo 'flipped' needs stride \(1, 1\)"):
        cupy_backend.module.conv2d_backward_input(gy_d, w_d, case.hw, *geometry, "flipped")
