"""Properties of the reference backend alone: how its im2col splits the batch into chunks.

The kernels' values against torch, for every backend, are in tests/test_kernels.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from kernel_cases import CHUNK_CASE, CHUNK_SAMPLE_NUMBERS, CPU_TOLERANCE, FLOATS, conv_oracle, workspace_limit

import reference
from kernels import workspace


@pytest.mark.parametrize("dtype", FLOATS)
def test_im2col_chunks_are_workspace_sized_and_change_only_the_weight_sum(dtype, monkeypatch):
    (x, w, b, gy), _, geometry = conv_oracle(CHUNK_CASE, dtype, seed=1)
    args = geometry + ("im2col",)

    def run():
        return [reference.conv2d_forward(x, w, b, *args)[0],
                reference.conv2d_backward_input(gy, w, CHUNK_CASE.hw, *args)[0],
                reference.conv2d_backward_weight(gy, x, CHUNK_CASE.k, *args)]

    whole = run()
    chunk_sizes = []
    real_batch_chunk = workspace.batch_chunk

    def spy(n, bytes_per_sample):
        chunk_sizes.append(real_batch_chunk(n, bytes_per_sample))
        return chunk_sizes[-1]

    monkeypatch.setattr(workspace, "batch_chunk", spy)
    with workspace_limit(6000):  # chunks of 2 (2+2+1) in float32, 1 in float64
        chunked = run()

    assert chunk_sizes == [6000 // (CHUNK_SAMPLE_NUMBERS * np.dtype(dtype).itemsize)] * 3, chunk_sizes
    assert all(a.dtype == dtype for a in chunked)
    # Each output sample and input-gradient sample is computed alike in any chunk; only the
    # summation order of the weight gradient (summed over the batch) changes with chunking.
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])
    np.testing.assert_allclose(chunked[2], whole[2], **CPU_TOLERANCE[dtype])
