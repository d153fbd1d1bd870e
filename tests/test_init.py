"""engine.nn.init: bounds and spreads as torch.nn.init computes them, in place, without building a graph."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import engine
from engine import nn
from engine.nn import init

SHAPES = {"linear": (256, 400), "conv": (64, 32, 3, 3), "conv_1x2": (200, 100, 1, 2)}


def fans(shape):
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def torch_std(name, shape, **kw):
    t = torch.empty(shape)
    getattr(torch.nn.init, name)(t, **kw)
    return float(t.std())


# (init name, kwargs, expected bound for uniform or None, expected std) -- from torch.nn.init's formulas
def expected(name, shape, kw):
    fan_in, fan_out = fans(shape)
    if name == "xavier_uniform_":
        bound = kw.get("gain", 1.0) * math.sqrt(6.0 / (fan_in + fan_out))
        return bound, bound / math.sqrt(3)
    if name == "xavier_normal_":
        return None, kw.get("gain", 1.0) * math.sqrt(2.0 / (fan_in + fan_out))
    fan = fan_in if kw.get("mode", "fan_in") == "fan_in" else fan_out
    if kw.get("nonlinearity", "leaky_relu") == "relu":
        gain = math.sqrt(2.0)
    else:
        gain = math.sqrt(2.0 / (1 + kw.get("a", 0) ** 2))
    std = gain / math.sqrt(fan)
    if name == "kaiming_uniform_":
        return math.sqrt(3.0) * std, std
    return None, std


CASES = [
    ("xavier_uniform_", {}),
    ("xavier_uniform_", {"gain": 2.0}),
    ("xavier_normal_", {}),
    ("xavier_normal_", {"gain": 0.5}),
    ("kaiming_uniform_", {}),
    ("kaiming_uniform_", {"a": math.sqrt(5)}),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("kaiming_normal_", {}),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}),
]


@pytest.mark.parametrize("shape_name", SHAPES)
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}{k}" for n, k in CASES])
def test_fan_based_init_like_torch(name, kw, shape_name):
    shape = SHAPES[shape_name]
    engine.manual_seed(0)
    t = engine.empty(*shape)
    out = getattr(init, name)(t, **kw)
    assert out is t, "init functions work in place and return their argument"
    assert tuple(t.shape) == shape and t.dtype == engine.float32
    values = t.numpy()
    bound, std = expected(name, shape, kw)
    torch.manual_seed(0)
    assert abs(std - torch_std(name, shape, **kw)) < 0.03 * std, "the test's formula disagrees with torch"
    assert abs(values.std() - std) < 0.03 * std, f"std {values.std()} != {std}"
    assert abs(values.mean()) < 0.03 * std
    if bound is not None:
        assert values.max() <= bound and values.min() >= -bound and values.max() > 0.98 * bound
    else:
        assert values.max() > 3 * std  # a normal, not a uniform, distribution


def test_uniform_normal_constant_inits():
    engine.manual_seed(0)
    t = engine.empty(100, 100)
    assert init.uniform_(t, -0.5, 2.0) is t
    v = t.numpy()
    assert v.min() >= -0.5 and v.max() < 2.0 and abs(v.mean() - 0.75) < 0.03
    assert init.uniform_(t) is t and 0.0 <= t.numpy().min() and t.numpy().max() < 1.0
    assert init.normal_(t, mean=3.0, std=0.5) is t
    v = t.numpy()
    assert abs(v.mean() - 3.0) < 0.02 and abs(v.std() - 0.5) < 0.02
    assert init.zeros_(t) is t and not np.any(t.numpy())
    assert init.ones_(t) is t and np.all(t.numpy() == 1.0)


def test_init_on_parameter_keeps_it_a_leaf_and_builds_no_graph():
    lin = nn.Linear(30, 20)
    before = lin.weight.detach().numpy().copy()
    init.xavier_uniform_(lin.weight)
    assert lin.weight.requires_grad and lin.weight.grad_fn is None and lin.weight.grad is None
    assert not np.array_equal(before, lin.weight.detach().numpy())
    lin(engine.randn(2, 30)).sum().backward()
    assert lin.weight.grad is not None


def test_init_keeps_float64():
    t = engine.zeros(50, 40, dtype=engine.float64)
    init.kaiming_normal_(t)
    assert t.dtype == engine.float64 and t.numpy().dtype == np.float64 and t.numpy().std() > 0


def test_init_is_reproducible_with_manual_seed():
    a, b = engine.empty(10, 10), engine.empty(10, 10)
    engine.manual_seed(5)
    init.xavier_uniform_(a)
    engine.manual_seed(5)
    init.xavier_uniform_(b)
    assert a.equal(b)


def test_fan_init_rejects_1d_tensor():
    with pytest.raises(ValueError, match="(?i)fan|dim"):
        init.xavier_uniform_(engine.empty(5))
