"""engine.nn modules against torch.nn: forward, input and parameter gradients, and the Module API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FLOAT32, assert_close, engine_tensor, module_to, run_side_by_side
from torch import nn as tnn

import engine
from engine import nn


def randn(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# (engine module factory, torch module factory, input shape); parameters are copied torch -> engine
MODULE_CASES = {
    "conv2d": (lambda m: m.Conv2d(3, 4, kernel_size=3), (2, 3, 7, 6)),
    "conv2d_1x2_nobias": (lambda m: m.Conv2d(1, 1, kernel_size=(1, 2), bias=False), (1, 1, 6, 8)),
    "conv2d_stride_pad_dil": (
        lambda m: m.Conv2d(2, 3, kernel_size=(3, 2), stride=(2, 1), padding=(1, 2), dilation=2),
        (2, 2, 9, 8),
    ),
    "conv2d_lenet1": (lambda m: m.Conv2d(1, 6, kernel_size=5, padding=2), (2, 1, 12, 12)),
    "linear": (lambda m: m.Linear(5, 3), (4, 5)),
    "linear_nobias": (lambda m: m.Linear(5, 3, bias=False), (1, 5)),
    "avgpool": (lambda m: m.AvgPool2d(kernel_size=2, stride=2), (2, 3, 6, 7)),
    "avgpool_pad": (lambda m: m.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (1, 2, 7, 7)),
    "avgpool_ceil": (lambda m: m.AvgPool2d(2, ceil_mode=True), (1, 2, 5, 7)),
    "maxpool": (lambda m: m.MaxPool2d(kernel_size=2), (2, 3, 6, 7)),
    "maxpool_full": (lambda m: m.MaxPool2d(3, stride=2, padding=1, dilation=1, ceil_mode=True), (1, 2, 8, 7)),
    "sigmoid": (lambda m: m.Sigmoid(), (3, 4)),
    "relu": (lambda m: m.ReLU(), (3, 4)),
    "tanh": (lambda m: m.Tanh(), (3, 4)),
    "flatten": (lambda m: m.Flatten(), (2, 3, 2, 2)),
    "sequential_lenet_like": (
        lambda m: m.Sequential(
            m.Conv2d(1, 2, kernel_size=5, padding=2),
            m.Sigmoid(),
            m.AvgPool2d(kernel_size=2, stride=2),
            m.Conv2d(2, 3, kernel_size=3),
            m.Tanh(),
            m.MaxPool2d(kernel_size=2, stride=2),
            m.Flatten(),
            m.Linear(3 * 2 * 2, 5),
            m.ReLU(),
            m.Linear(5, 4),
        ),
        (2, 1, 12, 12),
    ),
}


@pytest.mark.parametrize("name", MODULE_CASES)
def test_module_matches_torch(name, dtype, backend):
    factory, x_shape = MODULE_CASES[name]
    torch.manual_seed(0)
    t_mod = factory(tnn)
    e_mod = factory(nn)
    e_params, t_params = module_to(e_mod, t_mod, dtype)
    run_side_by_side(e_mod, t_mod, [randn(x_shape, 1)], dtype, engine_params=e_params, torch_params=t_params)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_loss_module(reduction, dtype, backend):
    logits, target = randn((5, 4), 1), np.array([0, 3, 1, 1, 2])
    run_side_by_side(
        nn.CrossEntropyLoss(reduction=reduction), tnn.CrossEntropyLoss(reduction=reduction), [logits, target], dtype
    )


def test_cross_entropy_loss_module_default_mean(dtype, backend):
    run_side_by_side(nn.CrossEntropyLoss(), tnn.CrossEntropyLoss(), [randn((3, 6), 1), np.array([5, 0, 2])], dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_module(reduction, dtype, backend):
    run_side_by_side(
        nn.MSELoss(reduction=reduction), tnn.MSELoss(reduction=reduction), [randn((2, 3), 1), randn((2, 3), 2)], dtype
    )


def test_mse_loss_module_default(dtype, backend):
    run_side_by_side(nn.MSELoss(), tnn.MSELoss(), [randn((2, 3), 1), randn((2, 3), 2)], dtype, grad=[True, False])


# --- default initialisation (kaiming-uniform a=sqrt(5): bound 1/sqrt(fan_in) for weight and bias) ---


@pytest.mark.parametrize(
    "make,fan_in",
    [
        (lambda: nn.Linear(400, 120), 400),
        (lambda: nn.Conv2d(6, 16, kernel_size=5), 150),
        (lambda: nn.Conv2d(1, 1, (1, 2)), 2),
    ],
    ids=["linear", "conv", "conv1x2"],
)
def test_default_init_like_torch(make, fan_in):
    engine.manual_seed(0)
    m = make()
    bound = 1.0 / np.sqrt(fan_in)
    w = m.weight.detach().numpy()
    assert m.weight.dtype == engine.float32 and m.weight.requires_grad
    assert np.all(np.abs(w) <= bound)
    if w.size > 1000:
        assert np.abs(w).max() > 0.95 * bound
        assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound / np.sqrt(3)
        assert abs(w.mean()) < 0.05 * bound
    b = m.bias.detach().numpy()
    assert np.all(np.abs(b) <= bound) and np.abs(b).max() > 0
    assert isinstance(m.weight, nn.Parameter) and isinstance(m.bias, nn.Parameter)


def test_default_init_depends_on_manual_seed():
    engine.manual_seed(1)
    a = nn.Linear(4, 3).weight.detach().numpy().copy()
    engine.manual_seed(1)
    b = nn.Linear(4, 3).weight.detach().numpy().copy()
    engine.manual_seed(2)
    c = nn.Linear(4, 3).weight.detach().numpy().copy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_layer_shapes_like_torch():
    conv = nn.Conv2d(3, 8, kernel_size=(3, 2))
    assert tuple(conv.weight.shape) == (8, 3, 3, 2) and tuple(conv.bias.shape) == (8,)
    lin = nn.Linear(400, 120)
    assert tuple(lin.weight.shape) == (120, 400) and tuple(lin.bias.shape) == (120,)
    assert nn.Conv2d(1, 1, 2, bias=False).bias is None and nn.Linear(2, 2, bias=False).bias is None


# --- the Module API ------------------------------------------------------------------------------


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Flatten(),
        nn.Linear(400, 120),
        nn.Sigmoid(),
        nn.Linear(120, 84),
        nn.Sigmoid(),
        nn.Linear(84, 10),
    )


def test_parameter_names_and_shapes_match_torch_lenet():
    e = lenet()
    t = tnn.Sequential(
        tnn.Conv2d(1, 6, kernel_size=5, padding=2),
        tnn.Sigmoid(),
        tnn.AvgPool2d(2, 2),
        tnn.Conv2d(6, 16, kernel_size=5),
        tnn.Sigmoid(),
        tnn.AvgPool2d(2, 2),
        tnn.Flatten(),
        tnn.Linear(400, 120),
        tnn.Sigmoid(),
        tnn.Linear(120, 84),
        tnn.Sigmoid(),
        tnn.Linear(84, 10),
    )
    e_named = [(n, tuple(p.shape)) for n, p in e.named_parameters()]
    t_named = [(n, tuple(p.shape)) for n, p in t.named_parameters()]
    assert e_named == t_named
    assert [tuple(p.shape) for p in e.parameters()] == [tuple(p.shape) for p in t.parameters()]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in e.parameters())
    assert list(e.state_dict().keys()) == list(t.state_dict().keys())


def test_sequential_indexing_and_children():
    net = lenet()
    assert isinstance(net[0], nn.Conv2d) and isinstance(net[-1], nn.Linear) and isinstance(net[6], nn.Flatten)
    assert len(net) == 12
    head = net[6:]
    assert isinstance(head, nn.Sequential) and len(head) == 6 and head[0] is net[6]
    kids = list(net.children())
    assert len(kids) == 12 and kids[0] is net[0]
    out = net(engine.randn(2, 1, 28, 28))
    assert tuple(out.shape) == (2, 10)


def test_apply_visits_every_module_like_the_seed():
    net = lenet()
    seen = []

    def init_weights(m):
        seen.append(type(m).__name__)
        if type(m) == nn.Linear or type(m) == nn.Conv2d:  # noqa: E721  (the seed's code)
            nn.init.zeros_(m.weight)

    result = net.apply(init_weights)
    assert result is net
    assert seen.count("Conv2d") == 2 and seen.count("Linear") == 3 and seen[-1] == "Sequential"
    assert all(not np.any(m.weight.detach().numpy()) for m in (net[0], net[3], net[7]))


def test_train_eval_flags():
    net = lenet()
    assert net.training and net[0].training
    assert net.eval() is net
    assert not net.training and not net[0].training and not net[11].training
    net.train()
    assert net.training and net[7].training


def test_zero_grad_clears_parameter_grads():
    net = nn.Sequential(nn.Linear(3, 2), nn.Sigmoid(), nn.Linear(2, 1))
    net(engine.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    for p in net.parameters():
        assert p.grad is None or not np.any(p.grad.numpy())
    net(engine.randn(4, 3)).sum().backward()  # and accumulation restarts cleanly
    assert all(p.grad is not None for p in net.parameters())


def test_state_dict_roundtrip():
    a, b = lenet(), lenet()
    state = a.state_dict()
    assert set(state) == {n for n, _ in a.named_parameters()}
    b.load_state_dict(state)
    x = engine.randn(2, 1, 28, 28)
    assert a(x).equal(b(x))
    # load_state_dict copies the values: changing a afterwards does not change b
    with engine.no_grad():
        a[0].weight -= 1.0
    assert not a(x).equal(b(x))


def test_load_state_dict_rejects_missing_and_misshaped():
    net = nn.Linear(3, 2)
    with pytest.raises((KeyError, RuntimeError, ValueError), match="bias"):
        net.load_state_dict({"weight": engine.zeros(2, 3)})
    with pytest.raises((RuntimeError, ValueError), match=r"weight"):
        net.load_state_dict({"weight": engine.zeros(3, 3), "bias": engine.zeros(2)})


def test_to_cpu_and_call():
    net = nn.Linear(3, 2)
    assert net.to(engine.device("cpu")) is net and net.to("cpu") is net
    out = net(engine.ones(1, 3))
    expected = engine.ones(1, 3) @ net.weight.T + net.bias
    assert_close(out, torch.from_numpy(expected.detach().numpy()), FLOAT32)


def test_custom_module_registers_parameters_and_submodules():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, kernel_size=3)
            self.scale = nn.Parameter(engine.ones(1))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 4))

        def forward(self, x):
            return self.head(self.conv(x) * self.scale)

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert sorted(names) == sorted(["conv.weight", "conv.bias", "scale", "head.1.weight", "head.1.bias"])
    assert len(list(net.children())) == 2
    out = net(engine.randn(2, 1, 5, 5))
    assert tuple(out.shape) == (2, 4)
    out.sum().backward()
    assert net.scale.grad is not None and net.head[1].weight.grad is not None


def test_parameter_is_a_tensor_requiring_grad():
    p = nn.Parameter(engine.zeros(2, 2))
    assert isinstance(p, engine.Tensor) and p.requires_grad and p.grad_fn is None
    assert engine_tensor(np.zeros(2)).requires_grad is False
