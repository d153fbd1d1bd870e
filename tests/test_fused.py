"""The fused conv + activation + 2x2 average pool path (engine.nn.fusion, kernels/numba_cpu/conv_fused.py).

The unfused kernels are the reference the fused ones must reproduce: y, the input and weight
gradients bit for bit, the bias gradient to rounding. Torch is the oracle of the whole block, and
gradcheck checks the fused Function's gradients on its own.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DTYPES, assert_close, assert_values_close, engine_tensor, to_numpy, torch_tensor

import engine
import kernels.numba_cpu as nb
import reference
from engine import nn
from engine.functions.fused import ConvActPool
from kernels.contract import provides
from kernels.numba_cpu import conv_direct, conv_fused

# (N, C, O, H, W, K, padding): LeNet's two blocks, odd channel counts, a non-square input, O > 4
SHAPES = [(256, 1, 6, 28, 28, 5, 2), (32, 6, 16, 14, 14, 5, 0), (3, 2, 5, 10, 12, 3, 1), (2, 3, 9, 6, 6, 1, 0)]
ACTS = ["sigmoid", "relu", "tanh"]


def _unfused(x, w, b, padding, act, gy, needs_gx=True):
    """The unfused numba kernels: (y, gx, gw, gb)."""
    one = (1, 1)
    z, saved = nb.conv2d_forward(x, w, b, one, padding, one, "direct")
    s = getattr(nb, act + "_forward")(z)
    y = nb.avg_pool2d_forward(s, (2, 2), (2, 2), (0, 0), False, True)
    gs = nb.avg_pool2d_backward(gy, s.shape[2:], (2, 2), (2, 2), (0, 0), False, True)
    gz = getattr(nb, act + "_backward")(gs, s)
    gx, saved = nb.conv2d_backward_input(gz, w, x.shape[2:], one, padding, one, "direct", saved=saved)
    gw = nb.conv2d_backward_weight(gz, x, w.shape[2:], one, padding, one, "direct", saved=saved)
    return y, gx, gw, gz.sum(axis=(0, 2, 3))


def _inputs(shape, dtype, seed=0):
    n, c, o, h, w_, k, p = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = (rng.standard_normal((o, c, k, k)) * 0.4).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    oh, ow = h + 2 * p - k + 1, w_ + 2 * p - k + 1
    gy = rng.standard_normal((n, o, oh // 2, ow // 2)).astype(dtype)
    return x, w, b, (p, p), gy


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_fused_kernels_reproduce_the_unfused_ones(shape, act, dtype):
    x, w, b, padding, gy = _inputs(shape, dtype)
    y, saved, _ = conv_fused.fused_conv_act_pool_forward(x, w, b, padding, act, True)
    gx, gw, gb = conv_fused.fused_conv_act_pool_backward(gy, w, saved, x.shape[2:], padding, act,
                                                         (True, True, True))
    ry, rgx, rgw, rgb = _unfused(x, w, b, padding, act, gy)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(gx, rgx)
    np.testing.assert_array_equal(gw, rgw)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    assert_values_close(gb, rgb, tol, tol, "bias gradient")
    # a first layer (no gradient of x): the weight gradient from rows made on the fly, same bits
    no_gx, first_gw, first_gb = conv_fused.fused_conv_act_pool_backward(gy, w, saved, x.shape[2:], padding, act,
                                                                         (False, True, True))
    assert no_gx is None
    np.testing.assert_array_equal(first_gw, rgw)
    np.testing.assert_array_equal(first_gb, gb)
    only_gb = conv_fused.fused_conv_act_pool_backward(gy, w, saved, x.shape[2:], padding, act, (False, False, True))
    assert only_gb[:2] == (None, None)
    np.testing.assert_array_equal(only_gb[2], gb)


def test_fused_kernels_without_bias_keep_or_needs():
    x, w, _, padding, gy = _inputs(SHAPES[2], np.float64)
    y, saved, _ = conv_fused.fused_conv_act_pool_forward(x, w, None, padding, "relu", False)
    assert saved is None
    ry = _unfused(x, w, np.zeros(w.shape[0]), padding, "relu", gy)[0]
    np.testing.assert_array_equal(y, ry)
    _, saved, _ = conv_fused.fused_conv_act_pool_forward(x, w, None, padding, "relu", True)
    gx, gw, gb = conv_fused.fused_conv_act_pool_backward(gy, w, saved, x.shape[2:], padding, "relu",
                                                         (False, True, False))
    assert gx is None and gb is None and gw.shape == w.shape


def _torch_block(act, padding):
    fn = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}[act]
    return lambda x, w, b: torch.nn.functional.avg_pool2d(
        fn(torch.nn.functional.conv2d(x, w, b, padding=padding)), 2)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fused_function_matches_torch(act, dtype):
    x, w, b, padding, gy = _inputs((4, 3, 5, 10, 12, 3, 1), dtype.np, seed=3)
    ex, ew, eb = (engine_tensor(a, True) for a in (x, w, b))
    tx, tw, tb = (torch_tensor(a, True) for a in (x, w, b))
    ey = ConvActPool.apply(ex, ew, eb, padding, act)
    ty = _torch_block(act, padding)(tx, tw, tb)
    assert_close(ey, ty, dtype, "forward")
    ey.backward(engine_tensor(gy))
    ty.backward(torch.from_numpy(gy))
    for e, t, name in ((ex, tx, "x"), (ew, tw, "w"), (eb, tb, "b")):
        assert_close(e.grad, t.grad, dtype, f"grad of {name}")


@pytest.mark.parametrize("act", ACTS)
def test_fused_function_gradcheck(act):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3)) * 0.5, rng.standard_normal(3)
    if act == "relu":  # every pre-activation away from the kink, where finite differences are wrong
        x, w, b = np.abs(x) + 0.1, np.abs(w) + 0.1, np.abs(b)
    x, w, b = (engine.tensor(a, requires_grad=True) for a in (x, w, b))
    assert engine.gradcheck(lambda x, w, b: ConvActPool.apply(x, w, b, (1, 1), act), [x, w, b])


def _lenet_pair():
    """The tutorial's LeNet twice (same weights): one for each path."""
    engine.manual_seed(0)
    net = engine.models.lenet()
    twin = engine.models.lenet()
    twin.load_state_dict(net.state_dict())
    return net, twin


def _step(net, x, y):
    loss = nn.CrossEntropyLoss()(net(x), y)
    loss.backward()
    return loss, [p.grad.numpy() for p in net.parameters()]


@pytest.fixture
def fusion_restored():
    yield
    engine.set_fusion(True)


def test_sequential_lenet_takes_the_fused_path_and_agrees_with_the_unfused_one(fusion_restored):
    import engine.models  # noqa: F401

    rng = np.random.default_rng(0)
    x = engine.tensor(rng.random((16, 1, 28, 28), np.float32))
    y = engine.tensor(rng.integers(0, 10, 16))
    fused, plain = _lenet_pair()
    features = fused[:6](x)  # conv, sigmoid, pool, conv, sigmoid, pool
    assert isinstance(features.grad_fn, ConvActPool)
    assert isinstance(features.grad_fn.edges[0][0], ConvActPool)
    loss, grads = _step(fused, x, y)
    engine.set_fusion(False)
    assert not isinstance(plain[:6](x).grad_fn, ConvActPool)
    plain_loss, plain_grads = _step(plain, x, y)
    assert loss.item() == plain_loss.item()  # the forward is bit for bit the same
    # 'auto' may time another algorithm (im2col, flipped) for an unfused kernel: rounding differs
    for (name, _), g, h in zip(fused.named_parameters(), grads, plain_grads):
        assert_values_close(g, h, 1e-5, 1e-6, name)


def _block(**conv):
    conv = {"kernel_size": 3, "padding": 1, **conv}
    return nn.Sequential(nn.Conv2d(2, 4, **conv), nn.Sigmoid(), nn.AvgPool2d(2))


class _LoudSigmoid(nn.Sigmoid):
    def forward(self, input):
        return super().forward(input) * 2


@pytest.mark.parametrize("make, shape", [
    (lambda: _block(stride=2), (2, 2, 8, 8)),
    (lambda: _block(dilation=2, padding=2), (2, 2, 8, 8)),
    (lambda: _block(algo="im2col"), (2, 2, 8, 8)),
    (lambda: _block(), (2, 2, 7, 8)),  # odd conv output height
    (lambda: _block(), (2, 8, 8)),  # unbatched
    (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), _LoudSigmoid(), nn.AvgPool2d(2)), (2, 2, 8, 8)),
    (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Sigmoid(), nn.AvgPool2d(2, 1)), (2, 2, 8, 8)),
    (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Sigmoid(), nn.MaxPool2d(2)), (2, 2, 8, 8)),
], ids=["stride", "dilation", "im2col", "odd", "unbatched", "subclass", "pool-stride", "max-pool"])
def test_runs_the_fused_kernels_cannot_serve_stay_unfused(make, shape):
    net = make()
    x = engine.tensor(np.random.default_rng(0).random(shape, np.float32))
    out = net(x)
    assert not isinstance(out.grad_fn, ConvActPool)
    engine.set_fusion(False)
    try:
        np.testing.assert_array_equal(to_numpy(out), to_numpy(net(x)))
    finally:
        engine.set_fusion(True)


def test_global_im2col_and_the_reference_backend_stay_unfused():
    net = _block()
    x = engine.tensor(np.random.default_rng(0).random((2, 2, 8, 8), np.float32))
    assert isinstance(net(x).grad_fn, ConvActPool)
    engine.set_conv_algo("im2col")
    try:
        assert not isinstance(net(x).grad_fn, ConvActPool)
    finally:
        engine.set_conv_algo("auto")
    assert not provides(reference, "fused_conv_act_pool_forward")
    engine.set_backend("reference")
    try:
        assert not isinstance(net(x).grad_fn, ConvActPool)
    finally:
        engine.set_backend("numba")


def test_bad_input_gets_the_unfused_error():
    net = _block()
    with pytest.raises(ValueError, match="input has 3 channels"):
        net(engine.zeros(2, 3, 8, 8))


def test_float16_stays_unfused_and_no_grad_saves_nothing():
    net = _block(dtype=engine.float16)
    out = net(engine.zeros(2, 2, 8, 8, dtype=engine.float16))
    assert out.dtype == engine.float16 and not isinstance(out.grad_fn, ConvActPool)
    net = _block()
    with engine.no_grad():
        out = net(engine.zeros(2, 2, 8, 8))
    assert out.grad_fn is None and out.shape == (2, 4, 4, 4)


def test_an_in_place_change_of_a_saved_input_raises_at_backward():
    net = _block()
    x = engine.tensor(np.random.default_rng(0).random((2, 2, 8, 8), np.float32), requires_grad=True)
    out = net(x).sum()
    with engine.no_grad():
        net[0].weight.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.backward()


def test_set_fusion_takes_only_a_bool():
    with pytest.raises(TypeError, match="enabled must be a bool"):
        engine.set_fusion("yes")
    assert engine.get_fusion() is True


def test_fused_output_matches_torch_sequential_in_float64():
    rng = np.random.default_rng(5)
    tnet = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, padding=1), torch.nn.Tanh(), torch.nn.AvgPool2d(2)).double()
    enet = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2)).to(engine.float64)
    enet.load_state_dict({k: engine.tensor(v.detach().numpy()) for k, v in tnet.state_dict().items()})
    x = rng.standard_normal((3, 3, 8, 8))
    ex, tx = engine_tensor(x, True), torch_tensor(x, True)
    ey, ty = enet(ex), tnet(tx)
    assert isinstance(ey.grad_fn, ConvActPool)
    assert_close(ey, ty, DTYPES[1])
    ey.sum().backward()
    ty.sum().backward()
    assert_close(ex.grad, tx.grad, DTYPES[1], "grad of x")
    for (name, p), (_, q) in zip(enet.named_parameters(), tnet.named_parameters()):
        assert_close(p.grad, q.grad, DTYPES[1], name)
    assert to_numpy(ey).shape == (3, 5, 4, 4)


@pytest.mark.parametrize("next_padding", [(0, 0), (1, 2)])
def test_the_next_layout_is_the_next_convs_own_padded_copy(next_padding):
    x, w, b, padding, _ = _inputs(SHAPES[1], np.float32)
    y, _, layout = conv_fused.fused_conv_act_pool_forward(x, w, b, padding, "sigmoid", False,
                                                          next_padding=next_padding)
    kernel = (3, 3)
    expected = conv_direct.padded_input(y, kernel, next_padding, (1, 1), (1, 1))
    np.testing.assert_array_equal(layout, expected)
    w2 = (np.random.default_rng(1).standard_normal((4, w.shape[0]) + kernel) * 0.3).astype(np.float32)
    handed = conv_fused.fused_conv_act_pool_forward(y, w2, None, next_padding, "relu", True, x_layout=layout)
    plain = conv_fused.fused_conv_act_pool_forward(y, w2, None, next_padding, "relu", True)
    np.testing.assert_array_equal(handed[0], plain[0])
    np.testing.assert_array_equal(handed[1].x, plain[1].x)


def test_a_second_fused_block_reads_the_first_ones_layout_instead_of_copying(monkeypatch, fusion_restored):
    copies = []
    real = conv_direct.padded_input
    monkeypatch.setattr(conv_direct, "padded_input", lambda *a: copies.append(a[0].shape) or real(*a))
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2),
                        nn.Conv2d(6, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten())
    x = engine.tensor(np.random.default_rng(0).random((4, 1, 12, 12), np.float32), requires_grad=True)
    out = net(x)
    assert copies == [(4, 1, 12, 12)]  # only the first block's input was copied into its layout
    out.sum().backward()
    grads = [x.grad.numpy()] + [p.grad.numpy() for p in net.parameters()]
    engine.set_fusion(False)
    x2 = engine.tensor(x.detach().numpy(), requires_grad=True)
    for p in net.parameters():
        p.grad = None
    plain = net(x2)
    assert_values_close(to_numpy(out), to_numpy(plain), 1e-6, 1e-6, "output")
    plain.sum().backward()
    for g, h in zip(grads, [x2.grad.numpy()] + [p.grad.numpy() for p in net.parameters()]):
        assert_values_close(g, h, 1e-5, 1e-6, "gradient")
