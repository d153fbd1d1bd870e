"""engine.nn.functional against torch.nn.functional (CPU): forward values and every gradient.

Each case runs the same numpy input through both libraries (``run_side_by_side``), back-propagates
the same random upstream gradient, and compares outputs and input/weight/bias gradients in float64
(~1e-10) and float32 (~1e-5 relative), on every available CPU backend.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close, engine_tensor, run_side_by_side, to_numpy, to_torch, torch_tensor

import engine
from engine.nn import functional as F


def case_id(case: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in case.items()).replace(" ", "")


def randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --- conv2d ------------------------------------------------------------------------------------

CONV_CASES = [
    # batch 1, one channel, the seed's 1x2 kernel
    dict(x=(1, 1, 6, 8), w=(1, 1, 1, 2), stride=1, padding=0, dilation=1, bias=False),
    # batch >1, several channels, square kernel, padding 1
    dict(x=(2, 3, 7, 7), w=(4, 3, 3, 3), stride=1, padding=1, dilation=1, bias=True),
    # stride 2 with a size not divisible by it, padding 2
    dict(x=(2, 2, 9, 8), w=(3, 2, 3, 3), stride=2, padding=2, dilation=1, bias=True),
    # stride 3, non-square kernel, non-square input
    dict(x=(3, 2, 10, 7), w=(2, 2, 2, 3), stride=3, padding=0, dilation=1, bias=True),
    # stride (2, 1), padding (1, 2)
    dict(x=(2, 3, 9, 7), w=(2, 3, 3, 2), stride=(2, 1), padding=(1, 2), dilation=1, bias=True),
    # dilation 2
    dict(x=(2, 2, 9, 9), w=(3, 2, 3, 3), stride=1, padding=1, dilation=2, bias=True),
    # dilation (2, 1) with stride 2 and padding (1, 2)
    dict(x=(1, 3, 8, 9), w=(2, 3, 2, 3), stride=2, padding=(2, 1), dilation=(2, 1), bias=False),
    # LeNet's first layer, small batch
    dict(x=(2, 1, 12, 12), w=(6, 1, 5, 5), stride=1, padding=2, dilation=1, bias=True),
    # 1x1 kernel, several output channels
    dict(x=(2, 4, 5, 3), w=(5, 4, 1, 1), stride=1, padding=0, dilation=1, bias=True),
    # kernel exactly as large as the padded input
    dict(x=(2, 2, 3, 4), w=(2, 2, 5, 4), stride=1, padding=(1, 0), dilation=1, bias=True),
]


@pytest.mark.parametrize("algo", ["im2col", "direct", "auto"])
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_conv2d_matches_torch(case, algo, dtype, backend):
    kw = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    arrays = [randn(case["x"], 1), randn(case["w"], 2)]
    if case["bias"]:
        arrays.append(randn(case["w"][:1], 3))
    run_side_by_side(
        lambda *t: F.conv2d(*t, **kw, algo=algo),
        lambda *t: TF.conv2d(*t, **kw),
        arrays,
        dtype,
    )


@pytest.mark.parametrize("algo", ["im2col", "direct"])
def test_conv2d_bias_passed_by_keyword_and_input_without_grad(algo, dtype, backend):
    """The input image of a network needs no gradient: only the weight and bias get one."""
    x, w, b = randn((2, 2, 6, 5), 1), randn((3, 2, 3, 2), 2), randn((3,), 3)
    run_side_by_side(
        lambda x, w, b: F.conv2d(x, w, bias=b, stride=(1, 2), padding=1, algo=algo),
        lambda x, w, b: TF.conv2d(x, w, bias=b, stride=(1, 2), padding=1),
        [x, w, b],
        dtype,
        grad=[False, True, True],
    )


def test_conv2d_algos_agree(dtype, backend):
    x, w = randn((2, 3, 11, 10), 4), randn((4, 3, 3, 4), 5)
    outs = [
        F.conv2d(engine_tensor(x.astype(dtype.np)), engine_tensor(w.astype(dtype.np)), stride=2, padding=1, algo=a)
        for a in ("im2col", "direct", "auto")
    ]
    for out in outs[1:]:
        assert_close(out, to_torch(outs[0]), dtype)


def test_conv2d_weight_only_grad_matches(dtype, backend):
    run_side_by_side(
        lambda x, w: F.conv2d(x, w, padding=1),
        lambda x, w: TF.conv2d(x, w, padding=1),
        [randn((2, 2, 5, 5), 1), randn((3, 2, 3, 3), 2)],
        dtype,
        grad=[True, False],
    )


# --- pooling -----------------------------------------------------------------------------------

AVG_CASES = [
    dict(x=(1, 1, 4, 4), kernel_size=2, stride=None, padding=0, ceil_mode=False),  # non-overlapping
    dict(x=(2, 3, 7, 7), kernel_size=3, stride=2, padding=1, ceil_mode=False),  # overlapping
    dict(x=(2, 2, 7, 9), kernel_size=2, stride=2, padding=0, ceil_mode=True),  # 7, 9 not divisible
    dict(x=(2, 2, 8, 7), kernel_size=(1, 2), stride=(2, 1), padding=0, ceil_mode=False),
    dict(x=(1, 3, 9, 8), kernel_size=(3, 2), stride=3, padding=(1, 1), ceil_mode=True),
    dict(x=(2, 1, 10, 6), kernel_size=(4, 3), stride=(3, 2), padding=(2, 1), ceil_mode=False),
    dict(x=(2, 6, 12, 12), kernel_size=2, stride=2, padding=0, ceil_mode=False),  # LeNet's pools
]


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("case", AVG_CASES, ids=case_id)
def test_avg_pool2d_matches_torch(case, count_include_pad, dtype, backend):
    kw = {k: v for k, v in case.items() if k != "x"}
    run_side_by_side(
        lambda x: F.avg_pool2d(x, **kw, count_include_pad=count_include_pad),
        lambda x: TF.avg_pool2d(x, **kw, count_include_pad=count_include_pad),
        [randn(case["x"], 1)],
        dtype,
    )


MAX_CASES = [
    dict(x=(1, 1, 4, 4), kernel_size=2, stride=None, padding=0, dilation=1, ceil_mode=False),
    dict(x=(2, 3, 7, 7), kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=False),
    dict(x=(2, 2, 7, 9), kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=True),
    dict(x=(2, 2, 8, 7), kernel_size=(1, 2), stride=(2, 1), padding=0, dilation=1, ceil_mode=False),
    dict(x=(1, 3, 9, 8), kernel_size=(3, 2), stride=3, padding=(1, 1), dilation=1, ceil_mode=True),
    dict(x=(2, 2, 9, 9), kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=False),
    dict(x=(1, 2, 10, 7), kernel_size=(2, 3), stride=(3, 2), padding=(1, 1), dilation=(2, 1), ceil_mode=True),
    dict(x=(2, 1, 5, 5), kernel_size=3, stride=1, padding=0, dilation=1, ceil_mode=False),  # overlapping
]


@pytest.mark.parametrize("case", MAX_CASES, ids=case_id)
def test_max_pool2d_matches_torch(case, dtype, backend):
    kw = {k: v for k, v in case.items() if k != "x"}
    run_side_by_side(lambda x: F.max_pool2d(x, **kw), lambda x: TF.max_pool2d(x, **kw), [randn(case["x"], 1)], dtype)


@pytest.mark.parametrize(
    "values",
    ["zeros", "small_ints", "negative_with_padding"],
)
@pytest.mark.parametrize("case", MAX_CASES[1:3] + MAX_CASES[7:], ids=case_id)
def test_max_pool2d_ties_route_the_gradient_like_torch(case, values, dtype, backend):
    """With ties the whole gradient goes to the first maximum of each window, as in torch (CPU)."""
    shape = case["x"]
    if values == "zeros":
        x = np.zeros(shape)
    elif values == "small_ints":
        x = np.random.default_rng(7).integers(0, 3, size=shape).astype(np.float64)
    else:  # all negative: padding (-inf) must never win
        x = -np.ones(shape)
    kw = {k: v for k, v in case.items() if k != "x"}
    run_side_by_side(lambda x: F.max_pool2d(x, **kw), lambda x: TF.max_pool2d(x, **kw), [x], dtype)


def test_max_pool2d_int_kernel_defaults_stride_to_kernel(dtype, backend):
    x = randn((1, 2, 6, 6), 3).astype(dtype.np)
    out = F.max_pool2d(engine_tensor(x), 3)
    assert tuple(out.shape) == (1, 2, 2, 2)
    assert_close(out, TF.max_pool2d(torch.from_numpy(x), 3), dtype)


# --- activations, linear, flatten ------------------------------------------------------------


@pytest.mark.parametrize("name", ["sigmoid", "relu", "tanh"])
def test_activation_matches_torch(name, dtype, backend):
    x = randn((3, 4, 5), 1) * 4
    x[0, 0, :3] = [0.0, 40.0, -40.0]  # relu at 0 and saturation
    run_side_by_side(getattr(F, name), getattr(torch, name), [x], dtype)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_activation_extreme_inputs_stay_finite(name, dtype, backend):
    x = np.array([[-1e4, -100.0, 0.0, 100.0, 1e4]])
    e_out, _ = run_side_by_side(getattr(F, name), getattr(torch, name), [x], dtype)
    assert np.all(np.isfinite(to_numpy(e_out)))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shapes", [((1, 3), (2, 3)), ((5, 4), (3, 4)), ((4, 400), (120, 400))], ids=str)
def test_linear_matches_torch(shapes, bias, dtype, backend):
    (x_shape, w_shape) = shapes
    arrays = [randn(x_shape, 1), randn(w_shape, 2)]
    if bias:
        arrays.append(randn(w_shape[:1], 3))
    run_side_by_side(F.linear, TF.linear, arrays, dtype)


@pytest.mark.parametrize("start_dim", [0, 1, 2])
def test_flatten_matches_torch(start_dim, dtype, backend):
    run_side_by_side(
        lambda x: F.flatten(x, start_dim=start_dim),
        lambda x: torch.flatten(x, start_dim=start_dim),
        [randn((2, 3, 4, 5), 1)],
        dtype,
    )


# --- softmax, log_softmax, losses -----------------------------------------------------------


@pytest.mark.parametrize("dim", [1, -1, 0])
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_matches_torch(name, dim, dtype, backend):
    run_side_by_side(
        lambda x: getattr(F, name)(x, dim=dim),
        lambda x: getattr(TF, name)(x, dim=dim),
        [randn((4, 6), 1) * 3],
        dtype,
    )


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_family_extreme_logits_finite(name, dtype, backend):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 0.0]])
    e_out, _ = run_side_by_side(lambda x: getattr(F, name)(x, dim=1), lambda x: getattr(TF, name)(x, dim=1), [x], dtype)
    if name == "softmax":
        assert np.all(np.isfinite(to_numpy(e_out)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("n,k", [(1, 2), (5, 10), (16, 3)])
def test_cross_entropy_matches_torch(n, k, reduction, dtype, backend):
    logits = randn((n, k), 1) * 2
    target = np.random.default_rng(2).integers(0, k, size=n)
    run_side_by_side(
        lambda x, t: F.cross_entropy(x, t, reduction=reduction),
        lambda x, t: TF.cross_entropy(x, t, reduction=reduction),
        [logits, target],
        dtype,
    )


def test_cross_entropy_default_reduction_is_mean(dtype, backend):
    logits, target = randn((4, 3), 1), np.array([0, 2, 1, 2])
    run_side_by_side(F.cross_entropy, TF.cross_entropy, [logits, target], dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_extreme_logits_stay_finite(reduction, dtype, backend):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, -1e4], [1e4, 1e4, -1e4], [-1e4, -1e4, -1e4]])
    target = np.array([1, 1, 0, 2])  # includes a target whose logit is 2e4 below the max: loss 2e4
    e_out, t_out = run_side_by_side(
        lambda x, t: F.cross_entropy(x, t, reduction=reduction),
        lambda x, t: TF.cross_entropy(x, t, reduction=reduction),
        [logits, target],
        dtype,
    )
    assert np.all(np.isfinite(to_numpy(e_out)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(reduction, dtype, backend):
    run_side_by_side(
        lambda a, b: F.mse_loss(a, b, reduction=reduction),
        lambda a, b: TF.mse_loss(a, b, reduction=reduction),
        [randn((3, 4), 1), randn((3, 4), 2)],
        dtype,
    )


def test_mse_loss_default_and_target_without_grad(dtype, backend):
    run_side_by_side(
        F.mse_loss, TF.mse_loss, [randn((2, 1, 3, 3), 1), randn((2, 1, 3, 3), 2)], dtype, grad=[True, False]
    )


# --- a small network end to end ------------------------------------------------------------


def test_lenet_like_composition_matches_torch(dtype, backend):
    """conv -> sigmoid -> avg_pool -> conv -> relu -> max_pool -> flatten -> linear -> cross_entropy."""
    rng = np.random.default_rng(0)
    arrays = [
        rng.standard_normal((3, 1, 12, 12)),
        rng.standard_normal((4, 1, 5, 5)) * 0.3,
        rng.standard_normal(4) * 0.1,
        rng.standard_normal((6, 4, 3, 3)) * 0.3,
        rng.standard_normal((10, 6 * 2 * 2)) * 0.3,
        np.array([3, 0, 9]),
    ]

    def net(F_, flatten):
        def run(x, w1, b1, w2, w3, y):
            h = F_.avg_pool2d(F_.sigmoid(F_.conv2d(x, w1, b1, padding=2)), 2)
            h = F_.max_pool2d(F_.relu(F_.conv2d(h, w2)), 2)
            return F_.cross_entropy(F_.linear(flatten(h, 1), w3), y)

        return run

    run_side_by_side(net(F, F.flatten), net(TF, torch.flatten), arrays, dtype)


def test_functional_ops_keep_float32(backend):
    x = engine.randn(2, 1, 6, 6, requires_grad=True)
    w = engine.randn(2, 1, 3, 3, requires_grad=True)
    y = F.max_pool2d(F.sigmoid(F.conv2d(x, w)), 2)
    assert y.dtype == engine.float32
    y.sum().backward()
    assert x.grad.dtype == engine.float32 and w.grad.dtype == engine.float32


def test_torch_tensor_helper_roundtrip():
    """The helpers themselves: a torch tensor built from an array keeps values and dtype."""
    a = np.arange(6.0).reshape(2, 3)
    assert torch_tensor(a).dtype == torch.float64
    assert engine_tensor(a).numpy().tolist() == a.tolist()


# --- non-contiguous and unbatched inputs ------------------------------------------------------

NON_CONTIGUOUS = {
    "conv2d_transposed_input": (
        lambda x, w: F.conv2d(x.transpose(2, 3), w, padding=1),
        lambda x, w: TF.conv2d(x.transpose(2, 3), w, padding=1),
        [(2, 2, 7, 5), (3, 2, 3, 2)],
    ),
    "conv2d_sliced_input_and_weight": (
        lambda x, w: F.conv2d(x[:, 1:, ::2, 1:], w[:, 1:], stride=2),
        lambda x, w: TF.conv2d(x[:, 1:, ::2, 1:], w[:, 1:], stride=2),
        [(2, 3, 12, 9), (2, 3, 3, 3)],
    ),
    "avg_pool2d_transposed": (
        lambda x: F.avg_pool2d(x.transpose(2, 3), 2),
        lambda x: TF.avg_pool2d(x.transpose(2, 3), 2),
        [(2, 2, 6, 4)],
    ),
    "max_pool2d_sliced": (
        lambda x: F.max_pool2d(x[:, ::2], 3, stride=2, padding=1),
        lambda x: TF.max_pool2d(x[:, ::2], 3, stride=2, padding=1),
        [(2, 4, 7, 7)],
    ),
    "sigmoid_transposed": (lambda x: F.sigmoid(x.T), lambda x: torch.sigmoid(x.T), [(3, 5)]),
    # the backward kernels receive a non-contiguous upstream gradient (from the transpose's backward)
    "sigmoid_then_transposed": (lambda x: F.sigmoid(x).T, lambda x: torch.sigmoid(x).T, [(3, 5)]),
    "relu_tanh_sliced": (lambda x: F.relu(F.tanh(x[:, ::2])), lambda x: torch.relu(torch.tanh(x[:, ::2])), [(3, 6)]),
    "conv2d_then_transposed": (
        lambda x, w: F.conv2d(x, w).transpose(2, 3),
        lambda x, w: TF.conv2d(x, w).transpose(2, 3),
        [(2, 2, 6, 5), (3, 2, 3, 2)],
    ),
    "pools_then_transposed": (
        lambda x: F.max_pool2d(F.avg_pool2d(x, 2, stride=1).transpose(2, 3), 2),
        lambda x: TF.max_pool2d(TF.avg_pool2d(x, 2, stride=1).transpose(2, 3), 2),
        [(2, 2, 7, 6)],
    ),
    "cross_entropy_none_then_sliced": (
        lambda x: F.cross_entropy(x, engine.tensor([0, 2, 1, 1]), reduction="none")[::2],
        lambda x: TF.cross_entropy(x, torch.tensor([0, 2, 1, 1]), reduction="none")[::2],
        [(4, 3)],
    ),
    "linear_transposed_weight": (
        lambda x, w: F.linear(x, w.T),
        lambda x, w: TF.linear(x, w.T),
        [(4, 3), (3, 5)],
    ),
    "cross_entropy_sliced_logits": (
        lambda x: F.cross_entropy(x[:, 1:], engine.tensor([0, 2, 1])),
        lambda x: TF.cross_entropy(x[:, 1:], torch.tensor([0, 2, 1])),
        [(3, 4)],
    ),
}


@pytest.mark.parametrize("name", NON_CONTIGUOUS)
def test_non_contiguous_inputs(name, dtype, backend):
    e_fn, t_fn, shapes = NON_CONTIGUOUS[name]
    run_side_by_side(e_fn, t_fn, [randn(s, i) for i, s in enumerate(shapes)], dtype)


UNBATCHED = {
    "conv2d": (
        lambda x, w: F.conv2d(x, w, padding=1),
        lambda x, w: TF.conv2d(x, w, padding=1),
        [(2, 5, 6), (3, 2, 3, 3)],
    ),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), lambda x: TF.avg_pool2d(x, 2), [(3, 6, 4)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2), [(3, 6, 4)]),
    "linear_3d": (F.linear, TF.linear, [(2, 4, 5), (3, 5)]),
}


@pytest.mark.parametrize("name", UNBATCHED)
def test_unbatched_and_extra_leading_dims_like_torch(name, dtype, backend):
    """torch accepts (C, H, W) for conv/pool and (*, in_features) for linear."""
    e_fn, t_fn, shapes = UNBATCHED[name]
    run_side_by_side(e_fn, t_fn, [randn(s, i) for i, s in enumerate(shapes)], dtype)
