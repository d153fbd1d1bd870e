"""Property tests (hypothesis) over random valid conv/pool configurations.

Output size is floor((n + 2p - d(k-1) - 1) / s) + 1 (torch's for ceil_mode), and forward values and
gradients agree with torch in float64. The formula is written here, independently of kernels/shapes.py.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF
from conftest import FLOAT64, run_side_by_side
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.nn import functional as F

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def expected_size(n, k, s, p, d=1):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def expected_pool_size(n, k, s, p, d, ceil_mode):
    """torch's pooling size: with ceil_mode the last window may overhang, but must start before n + p."""
    if not ceil_mode:
        return expected_size(n, k, s, p, d)
    out = -(-(n + 2 * p - d * (k - 1) - 1) // s) + 1
    return out - 1 if (out - 1) * s >= n + p else out


def every_window_touches_the_input(n, k, s, p, d, out):
    """False when some window lies wholly in the padding (torch gives -inf there; the engine refuses)."""
    return all(any(0 <= o * s - p + d * j < n for j in range(k)) for o in range(out))


pairs = lambda lo, hi: st.tuples(st.integers(lo, hi), st.integers(lo, hi))  # noqa: E731


@st.composite
def conv_configs(draw):
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(pairs(1, 9))
    kh, kw = draw(pairs(1, 4))
    stride, padding, dilation = draw(pairs(1, 3)), draw(pairs(0, 2)), draw(pairs(1, 2))
    assume(dilation[0] * (kh - 1) + 1 <= h + 2 * padding[0])
    assume(dilation[1] * (kw - 1) + 1 <= w + 2 * padding[1])
    algo = draw(st.sampled_from(["im2col", "direct", "auto"]))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return dict(
        x=(n, c, h, w),
        w=(o, c, kh, kw),
        stride=stride,
        padding=padding,
        dilation=dilation,
        algo=algo,
        bias=bias,
        seed=seed,
    )


@SETTINGS
@given(cfg=conv_configs())
def test_conv2d_random_configs(backend, cfg):
    rng = np.random.default_rng(cfg["seed"])
    arrays = [rng.standard_normal(cfg["x"]), rng.standard_normal(cfg["w"])]
    if cfg["bias"]:
        arrays.append(rng.standard_normal(cfg["w"][0]))
    kw = dict(stride=cfg["stride"], padding=cfg["padding"], dilation=cfg["dilation"])
    out, _ = run_side_by_side(
        lambda *t: F.conv2d(*t, **kw, algo=cfg["algo"]), lambda *t: TF.conv2d(*t, **kw), arrays, FLOAT64
    )
    expected = tuple(
        expected_size(cfg["x"][2 + i], cfg["w"][2 + i], cfg["stride"][i], cfg["padding"][i], cfg["dilation"][i])
        for i in range(2)
    )
    assert tuple(out.shape) == (cfg["x"][0], cfg["w"][0]) + expected


@st.composite
def pool_configs(draw, with_dilation):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    h, w = draw(pairs(1, 9))
    kh, kw = draw(pairs(1, 4))
    stride = draw(pairs(1, 3))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))  # torch: at most half the kernel
    dilation = draw(pairs(1, 2)) if with_dilation else (1, 1)
    assume(dilation[0] * (kh - 1) + 1 <= h + 2 * padding[0])
    assume(dilation[1] * (kw - 1) + 1 <= w + 2 * padding[1])
    ceil_mode = draw(st.booleans())
    for size, k, i in ((h, kh, 0), (w, kw, 1)):
        out = expected_pool_size(size, k, stride[i], padding[i], dilation[i], ceil_mode)
        assume(every_window_touches_the_input(size, k, stride[i], padding[i], dilation[i], out))
    seed = draw(st.integers(0, 2**16))
    return dict(
        x=(n, c, h, w),
        kernel_size=(kh, kw),
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        seed=seed,
    )


def check_pool_shape(out, cfg):
    expected = tuple(
        expected_pool_size(
            cfg["x"][2 + i],
            cfg["kernel_size"][i],
            cfg["stride"][i],
            cfg["padding"][i],
            cfg["dilation"][i],
            cfg["ceil_mode"],
        )
        for i in range(2)
    )
    assert tuple(out.shape) == cfg["x"][:2] + expected


@SETTINGS
@given(cfg=pool_configs(with_dilation=True))
def test_max_pool2d_random_configs(backend, cfg):
    x = np.random.default_rng(cfg["seed"]).standard_normal(cfg["x"])
    kw = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "dilation", "ceil_mode")}
    out, _ = run_side_by_side(lambda t: F.max_pool2d(t, **kw), lambda t: TF.max_pool2d(t, **kw), [x], FLOAT64)
    check_pool_shape(out, cfg)


@SETTINGS
@given(cfg=pool_configs(with_dilation=False), count_include_pad=st.booleans())
def test_avg_pool2d_random_configs(backend, cfg, count_include_pad):
    x = np.random.default_rng(cfg["seed"]).standard_normal(cfg["x"])
    kw = {k: cfg[k] for k in ("kernel_size", "stride", "padding", "ceil_mode")}
    out, _ = run_side_by_side(
        lambda t: F.avg_pool2d(t, **kw, count_include_pad=count_include_pad),
        lambda t: TF.avg_pool2d(t, **kw, count_include_pad=count_include_pad),
        [x],
        FLOAT64,
    )
    check_pool_shape(out, cfg)


def test_expected_size_formula_against_torch():
    """The test's own formula, checked once against torch so a wrong oracle cannot hide a bug."""
    for n, k, s, p, d in [(7, 3, 2, 1, 1), (8, 2, 3, 0, 2), (5, 5, 1, 2, 1), (9, 3, 3, 2, 2)]:
        got = TF.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k), stride=s, padding=p, dilation=d).shape[-1]
        assert got == expected_size(n, k, s, p, d)
    for n, k, s, p in [(7, 2, 2, 0), (5, 3, 2, 1), (6, 3, 3, 1), (4, 2, 3, 1), (9, 4, 3, 2)]:
        got = TF.max_pool2d(torch.zeros(1, 1, n, n), k, stride=s, padding=p, ceil_mode=True).shape[-1]
        assert got == expected_pool_size(n, k, s, p, 1, True), (n, k, s, p)
