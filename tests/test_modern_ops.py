"""Batch norm, dropout, adaptive pooling, cat/stack and grouped convolution against torch, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close, engine_tensor, module_to, run_side_by_side
from torch import nn as tnn

import engine
from engine import nn
from engine.nn import functional as F


def randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --- batch norm ---------------------------------------------------------------------------------

BN_CASES = {
    "1d_NC": ("BatchNorm1d", (6, 3)),
    "1d_NCL": ("BatchNorm1d", (4, 3, 5)),
    "2d": ("BatchNorm2d", (3, 4, 5, 6)),
}


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_affine"])
@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum", "cumulative"])
@pytest.mark.parametrize("case", BN_CASES)
def test_batch_norm_module_train_then_eval_matches_torch(case, momentum, affine, dtype, backend):
    """Three training steps (outputs, input and parameter gradients, running statistics and
    num_batches_tracked after each), then eval mode (outputs and gradients with the running statistics)."""
    layer, shape = BN_CASES[case]
    t_mod = getattr(tnn, layer)(shape[1], momentum=momentum, affine=affine)
    e_mod = getattr(nn, layer)(shape[1], momentum=momentum, affine=affine)
    if affine:  # not the default 1 and 0, so that the gradients through weight and bias are exercised
        with torch.no_grad():
            t_mod.weight.copy_(torch.from_numpy(randn(shape[1], 7) + 1))
            t_mod.bias.copy_(torch.from_numpy(randn(shape[1], 8)))
    e_params, t_params = module_to(e_mod, t_mod, dtype)
    e_mod.to(dtype.engine)
    for step in range(3):
        for p in list(e_params.values()) + list(t_params.values()):
            p.grad = None
        x = randn(shape, step) * (step + 1) + step
        run_side_by_side(e_mod, t_mod, [x], dtype, seed=step, engine_params=e_params, torch_params=t_params)
        assert_close(e_mod.running_mean, t_mod.running_mean, dtype, what=f"running_mean after step {step}")
        assert_close(e_mod.running_var, t_mod.running_var, dtype, what=f"running_var after step {step}")
        assert int(e_mod.num_batches_tracked.item()) == int(t_mod.num_batches_tracked) == step + 1
    e_mod.eval()
    t_mod.eval()
    for p in list(e_params.values()) + list(t_params.values()):
        p.grad = None
    run_side_by_side(e_mod, t_mod, [randn(shape, 9)], dtype, engine_params=e_params, torch_params=t_params)
    assert int(e_mod.num_batches_tracked.item()) == 3, "eval mode must not count batches"


def test_batch_norm_without_running_stats_uses_batch_statistics_in_eval(dtype, backend):
    t_mod, e_mod = tnn.BatchNorm2d(3, track_running_stats=False), nn.BatchNorm2d(3, track_running_stats=False)
    e_params, t_params = module_to(e_mod, t_mod, dtype)
    e_mod.eval()
    t_mod.eval()
    assert e_mod.running_mean is None and "running_mean" not in e_mod.state_dict()
    run_side_by_side(e_mod, t_mod, [randn((2, 3, 4, 4), 1)], dtype, engine_params=e_params, torch_params=t_params)


@pytest.mark.parametrize("training", [True, False])
def test_functional_batch_norm_matches_torch(training, dtype, backend):
    x, w, b = randn((4, 3, 2, 5), 1), randn(3, 2) + 1, randn(3, 3)
    rm, rv = randn(3, 4), np.abs(randn(3, 5)) + 0.5
    e_rm, e_rv = engine_tensor(rm.astype(dtype.np)), engine_tensor(rv.astype(dtype.np))
    t_rm, t_rv = torch.from_numpy(rm.astype(dtype.np)), torch.from_numpy(rv.astype(dtype.np))
    run_side_by_side(lambda x, w, b: F.batch_norm(x, e_rm, e_rv, w, b, training, 0.3, 1e-3),
                     lambda x, w, b: TF.batch_norm(x, t_rm, t_rv, w, b, training, 0.3, 1e-3),
                     [x, w, b], dtype)
    assert_close(e_rm, t_rm, dtype, what="running_mean")
    assert_close(e_rv, t_rv, dtype, what="running_var")


def test_batch_norm_training_with_one_value_per_channel_raises():
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 4\)"):
        nn.BatchNorm1d(4)(engine.randn(1, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm2d(2)(engine.randn(1, 2, 1, 1))
    layer = nn.BatchNorm1d(4).eval()
    assert layer(engine.randn(1, 4)).shape == (1, 4)  # eval uses the running statistics: allowed


def test_batch_norm_argument_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"expected 4D input, got 3D input of shape \(2, 3, 4\)"):
        nn.BatchNorm2d(3)(engine.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\).*\(2, 3, 4\).*\(4,\)"):
        F.batch_norm(engine.randn(2, 3, 4), None, None, engine.ones(4), training=True)
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm2d(0)


def test_batch_norm_buffers_are_state_and_move_with_to():
    layer = nn.BatchNorm2d(3)
    layer(engine.randn(4, 3, 2, 2))
    state = layer.state_dict()
    assert sorted(state) == ["bias", "num_batches_tracked", "running_mean", "running_var", "weight"]
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    copy = nn.BatchNorm2d(3)
    copy.load_state_dict(state)
    assert copy.running_mean.equal(layer.running_mean) and int(copy.num_batches_tracked.item()) == 1
    layer.double()
    assert layer.running_var.dtype == np.float64 and layer.num_batches_tracked.dtype == np.int64


# --- dropout ------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_keeps_and_scales_like_torch(p, dtype, backend):
    """Torch's mask is not ours, so compare properties: kept elements are x / (1 - p), the others 0,
    the fraction dropped is near p, and the gradient is the same mask."""
    x = engine_tensor((np.abs(randn((200, 50), 1)) + 0.1).astype(dtype.np), requires_grad=True)
    engine.manual_seed(3)
    y = F.dropout(x, p, training=True)
    y_np = y.detach().cpu().numpy()
    kept_np = y_np != 0
    expected = x.detach().cpu().numpy() / (1 - p)
    np.testing.assert_allclose(y_np[kept_np], expected[kept_np], rtol=dtype.rtol)
    assert abs((1 - kept_np.mean()) - p) < 0.03, f"dropped fraction {1 - kept_np.mean():.3f} for p={p}"
    upstream = randn((200, 50), 2).astype(dtype.np)
    y.backward(engine_tensor(upstream))
    np.testing.assert_allclose(x.grad.cpu().numpy(), np.where(kept_np, upstream / (1 - p), 0), rtol=dtype.rtol)
    t = torch.from_numpy(x.detach().cpu().numpy())
    assert abs(float((TF.dropout(t, p) == 0).double().mean()) - (1 - kept_np.mean())) < 0.05


def test_dropout_is_reproducible_under_manual_seed_and_the_identity_in_eval(backend):
    x = engine.randn(30, 30)
    engine.manual_seed(7)
    a = nn.Dropout(0.5)(x)
    engine.manual_seed(7)
    b = nn.Dropout(0.5)(x)
    assert a.equal(b) and not a.equal(x)
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x
    assert F.dropout(x, 0.0).equal(x) and float(F.dropout(x, 1.0).abs().sum()) == 0.0


def test_dropout_probability_out_of_range_raises():
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)
    with pytest.raises(ValueError, match="between 0 and 1, but got -0.1"):
        F.dropout(engine.ones(2), -0.1)


# --- adaptive pooling ---------------------------------------------------------------------------

ADAPTIVE_CASES = [((2, 3, 6, 6), (1, 1)), ((2, 2, 7, 5), (3, 2)), ((1, 2, 5, 7), (5, 7)), ((1, 1, 4, 9), (6, 4)),
                  ((2, 3, 8, 6), (None, 3)), ((3, 5, 7), 2)]


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("shape,size", ADAPTIVE_CASES, ids=[f"{s}-{o}" for s, o in ADAPTIVE_CASES])
def test_adaptive_pool_matches_torch(kind, shape, size, dtype, backend):
    run_side_by_side(lambda x: getattr(F, f"adaptive_{kind}_pool2d")(x, size),
                     lambda x: getattr(TF, f"adaptive_{kind}_pool2d")(x, size), [randn(shape, 4)], dtype)


def test_adaptive_modules_and_indices_match_torch(dtype, backend):
    x = randn((2, 3, 7, 5), 5)
    run_side_by_side(nn.AdaptiveAvgPool2d((1, 1)), tnn.AdaptiveAvgPool2d((1, 1)), [x], dtype)
    run_side_by_side(nn.AdaptiveMaxPool2d(3), tnn.AdaptiveMaxPool2d(3), [x], dtype)
    _, e_idx = F.adaptive_max_pool2d(engine_tensor(x.astype(dtype.np)), (3, 2), return_indices=True)
    _, t_idx = TF.adaptive_max_pool2d(torch.from_numpy(x.astype(dtype.np)), (3, 2), return_indices=True)
    np.testing.assert_array_equal(e_idx.cpu().numpy(), t_idx.numpy())


def test_adaptive_pool_bad_output_size_raises():
    with pytest.raises(ValueError, match="output_size must be positive"):
        F.adaptive_avg_pool2d(engine.ones(1, 1, 4, 4), (0, 2))
    with pytest.raises(TypeError, match="output_size"):
        F.adaptive_max_pool2d(engine.ones(1, 1, 4, 4), (1, 2, 3))


# --- cat and stack ------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_and_stack_match_torch(dim, dtype, backend):
    a, b, c = randn((2, 3, 4), 1), randn((2, 3, 4), 2), randn((2, 3, 4), 3)
    run_side_by_side(lambda *t: engine.cat(t, dim), lambda *t: torch.cat(t, dim), [a, b, c], dtype)
    run_side_by_side(lambda *t: engine.stack(list(t), dim=dim), lambda *t: torch.stack(t, dim), [a, b, c], dtype)
    d = randn((2, 5, 4), 4)
    run_side_by_side(lambda x, y: engine.cat((x, y), axis=1), lambda x, y: torch.cat((x, y), axis=1), [a, d], dtype)


def test_cat_and_stack_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"except in dimension 1.*\(2, 3\).*\(3, 3\)"):
        engine.cat([engine.ones(2, 3), engine.ones(3, 3)], dim=1)
    with pytest.raises(ValueError, match=r"equal size.*\(2, 3\).*\(2, 4\) at entry 1"):
        engine.stack([engine.ones(2, 3), engine.ones(2, 4)])
    with pytest.raises(IndexError, match="dim 3 is out of range"):
        engine.cat([engine.ones(2, 3)], dim=3)
    with pytest.raises(TypeError, match="list or tuple"):
        engine.cat(engine.ones(2, 3))


# --- grouped and depthwise convolution ----------------------------------------------------------

GROUP_CASES = {"groups2": (4, 6, 2, {}), "depthwise": (3, 3, 3, {"padding": 1}),
               "depthwise_x2": (2, 4, 2, {"stride": 2}), "groups4_dil": (8, 4, 4, {"dilation": 2, "padding": 2})}


@pytest.mark.parametrize("algo", ["direct", "im2col", "auto"])
@pytest.mark.parametrize("case", GROUP_CASES)
def test_grouped_conv2d_matches_torch(case, algo, dtype, backend):
    cin, cout, groups, kw = GROUP_CASES[case]
    x, w, b = randn((2, cin, 7, 6), 1), randn((cout, cin // groups, 3, 3), 2), randn(cout, 3)
    run_side_by_side(lambda x, w, b: F.conv2d(x, w, b, groups=groups, algo=algo, **kw),
                     lambda x, w, b: TF.conv2d(x, w, b, groups=groups, **kw), [x, w, b], dtype)


def test_grouped_conv2d_module_matches_torch(dtype, backend):
    torch.manual_seed(0)
    t_mod, e_mod = tnn.Conv2d(4, 6, 3, padding=1, groups=2), nn.Conv2d(4, 6, 3, padding=1, groups=2)
    assert tuple(e_mod.weight.shape) == tuple(t_mod.weight.shape) == (6, 2, 3, 3)
    e_params, t_params = module_to(e_mod, t_mod, dtype)
    run_side_by_side(e_mod, t_mod, [randn((2, 4, 5, 5), 1)], dtype, engine_params=e_params, torch_params=t_params)


def test_groups_not_dividing_the_channels_raise_with_the_shapes():
    with pytest.raises(ValueError, match=r"input channels 3 \(input shape \(1, 3, 5, 5\)\).*groups=2"):
        F.conv2d(engine.ones(1, 3, 5, 5), engine.ones(4, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"weight dim 1 must be 2, got weight shape \(4, 1, 3, 3\)"):
        F.conv2d(engine.ones(1, 4, 5, 5), engine.ones(4, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match="in_channels=3 must be divisible by groups=2"):
        nn.Conv2d(3, 4, 3, groups=2)


# --- finite differences (float64), a second oracle for the new backward passes -------------------


@pytest.mark.parametrize("name", ["batch_norm_train", "batch_norm_eval", "adaptive_avg", "adaptive_max",
                                  "grouped_conv"])
def test_new_backward_passes_match_finite_differences(name, backend):
    rng = np.random.default_rng(0)

    def t(shape, scale=1.0, shift=0.0):
        return engine.tensor(rng.standard_normal(shape) * scale + shift, dtype=engine.float64, requires_grad=True)

    running = (engine.zeros(3, dtype=engine.float64), engine.ones(3, dtype=engine.float64))
    cases = {
        "batch_norm_train": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                             [t((3, 3, 2, 2)), t(3, shift=1.0), t(3)]),
        "batch_norm_eval": (lambda x, w, b: F.batch_norm(x, *running, w, b, training=False),
                            [t((3, 3, 2, 2)), t(3, shift=1.0), t(3)]),
        "adaptive_avg": (lambda x: F.adaptive_avg_pool2d(x, (2, 3)), [t((2, 2, 5, 7))]),
        "adaptive_max": (lambda x: F.adaptive_max_pool2d(x, (2, 3)), [t((2, 2, 5, 7))]),
        "grouped_conv": (lambda x, w: F.conv2d(x, w, groups=2, padding=1), [t((1, 4, 4, 4)), t((4, 2, 3, 3))]),
    }
    fn, inputs = cases[name]
    assert engine.gradcheck(fn, inputs)
