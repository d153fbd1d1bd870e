"""The smaller API the CNN chapters call: creation with size=, normal, axis=, containers, buffers, lazy layers."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch

import engine
from engine import nn


def test_creation_accepts_size_keyword_like_torch():
    for name in ("zeros", "ones", "empty", "rand", "randn"):
        e, t = getattr(engine, name)(size=(2, 3)), getattr(torch, name)(size=(2, 3))
        assert tuple(e.shape) == tuple(t.shape) and e.dtype == np.float32, name
    with pytest.raises(TypeError, match="both positionally"):
        engine.zeros(2, size=(2, 3))


def test_normal_draws_from_the_engine_generator_with_the_given_moments():
    engine.manual_seed(0)
    a = engine.normal(2.0, 0.5, (200, 200))
    engine.manual_seed(0)
    b = engine.normal(2.0, 0.5, size=(200, 200))
    assert a.equal(b) and a.dtype == np.float32
    assert abs(float(a.mean()) - 2.0) < 0.01 and abs(float(a.numpy().std()) - 0.5) < 0.01
    per_element = engine.normal(engine.tensor([0.0, 100.0]), 1e-6)
    np.testing.assert_allclose(per_element.numpy(), [0.0, 100.0], atol=1e-3)
    with pytest.raises(TypeError, match="pass size"):
        engine.normal(0.0, 1.0)
    with pytest.raises(ValueError, match="std must be >= 0"):
        engine.normal(0.0, -1.0, (2,))


def test_axis_is_an_alias_of_dim():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    e, t = engine.tensor(x), torch.from_numpy(x)
    for name in ("sum", "mean", "argmax", "argmin"):
        np.testing.assert_allclose(getattr(e, name)(axis=1).numpy(), getattr(t, name)(axis=1).numpy(), rtol=1e-6)
    values, indices = e.max(axis=0)
    np.testing.assert_array_equal(indices.numpy(), t.max(axis=0).indices.numpy())
    with pytest.raises(TypeError, match="both dim and axis"):
        e.sum(0, axis=1)
    accuracy = (e.argmax(axis=1).type(engine.int64) == engine.tensor([0, 1, 2])).type(engine.float32).mean()
    assert 0.0 <= float(accuracy) <= 1.0


def test_sequential_names_indexes_slices_and_grows():
    net = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), act=nn.ReLU()))
    net.add_module("flat", nn.Flatten())
    assert len(net) == 3 and isinstance(net[-1], nn.Flatten) and isinstance(net[1:], nn.Sequential)
    assert [n for n, _ in net.named_parameters()] == ["conv.weight", "conv.bias"]
    assert tuple(net(engine.ones(1, 1, 5, 5)).shape) == (1, 18)


def test_module_list_registers_its_modules():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3)])
    layers.append(nn.Linear(3, 1))
    assert len(layers) == 3 and len(list(layers.parameters())) == 6
    layers[0] = nn.Linear(2, 2, bias=False)
    assert len(list(layers.parameters())) == 5 and isinstance(layers[1:], nn.ModuleList)
    with pytest.raises(TypeError, match="only hold Modules"):
        layers.append(3)


def test_register_buffer_state_to_and_persistence():
    class WithBuffers(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("kept", engine.zeros(2))
            self.register_buffer("scratch", engine.ones(2), persistent=False)

    m = WithBuffers()
    assert list(m.state_dict()) == ["kept"] and [n for n, _ in m.named_buffers()] == ["kept", "scratch"]
    assert list(m.parameters()) == []
    m.double()
    assert m.kept.dtype == np.float64 and m.scratch.dtype == np.float64
    with pytest.raises(TypeError, match="buffer 'kept'"):
        m.kept = 3


def test_lazy_layers_infer_sizes_and_become_the_plain_layers():
    conv, lin, bn1, bn2 = nn.LazyConv2d(4, 3, padding=1), nn.LazyLinear(5), nn.LazyBatchNorm1d(), nn.LazyBatchNorm2d()
    x = engine.randn(2, 3, 6, 6, dtype=engine.float64)
    y = bn2(conv(x))
    z = bn1(lin(y.flatten(1)))
    assert (type(conv), type(lin), type(bn1), type(bn2)) == (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)
    assert tuple(conv.weight.shape) == (4, 3, 3, 3) and conv.weight.dtype == np.float64
    assert (lin.in_features, bn1.num_features, bn2.num_features) == (144, 5, 4)
    assert tuple(z.shape) == (2, 5)
    unbatched = nn.LazyConv2d(2, 1)
    assert tuple(unbatched(engine.ones(3, 4, 4)).shape) == (2, 4, 4) and unbatched.in_channels == 3


def test_lazy_layer_given_an_input_it_cannot_size_from_says_so():
    with pytest.raises(ValueError, match=r"LazyBatchNorm2d\(.*expected 4D input.*\(2, 3\)"):
        nn.LazyBatchNorm2d()(engine.ones(2, 3))
    layer = nn.LazyConv2d(2, 3, bias=False)
    assert layer.bias is None
    with pytest.raises(ValueError, match="uninitialized"):
        sum(p.numel() for p in layer.parameters())
