"""Small behaviours that must match torch (issue 9 item 5), each against torch itself."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import engine
from engine import backend, nn, optim
from engine.nn import functional as F


def test_python_ints_beyond_int64_overflow_like_torch():
    for data in ([2**63], [-2**63 - 1], [[1, 2**64]]):
        with pytest.raises(ValueError, match="Overflow"):
            torch.tensor(data)
        with pytest.raises(ValueError, match="overflows int64"):
            engine.tensor(data)
    assert engine.tensor([2**63 - 1, -2**63]).tolist() == [2**63 - 1, -2**63]


def test_mse_loss_warns_when_the_target_broadcasts_like_torch():
    for lib, fn in ((torch, torch.nn.functional.mse_loss), (engine, F.mse_loss)):
        with pytest.warns(UserWarning, match="target size"):
            fn(lib.ones(4, 1), lib.zeros(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(engine.ones(4), engine.zeros(4))


@pytest.mark.parametrize("base, exponent", [
    ([0.0, 1.0, -2.0], [0.0, 0.0, 0.0]), ([0.0, 2.0], [0.0, 3.0]), ([-2.0, -2.0, 0.0], [0.5, 2.0, 1.0]),
    ([0.0, 0.0], [-1.0, 2.0])], ids=["x**0", "pairs", "negative base", "zero base"])
def test_pow_gradients_at_the_edges_match_torch(base, exponent):
    def grads(lib):
        a = lib.tensor(base, dtype=lib.float64, requires_grad=True)
        b = lib.tensor(exponent, dtype=lib.float64, requires_grad=True)
        (a ** b).sum().backward()
        return a.grad.numpy(), b.grad.numpy()

    with np.errstate(all="ignore"):
        for mine, theirs in zip(grads(engine), grads(torch)):
            np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=float("nan")), lambda p: optim.Adam(p, lr=float("nan")),
                                  lambda p: optim.Adam(p, eps=float("nan")),
                                  lambda p: optim.SGD(p, lr=0.1, momentum=float("nan"))],
                         ids=["sgd lr", "adam lr", "adam eps", "sgd momentum"])
def test_optimizers_refuse_nan_hyperparameters(make):
    with pytest.raises(ValueError, match="nan"):
        make([nn.Parameter(engine.ones(2))])


def test_negative_seeds_are_accepted_and_reproducible_like_torch():
    torch.manual_seed(-1)
    engine.manual_seed(-1)
    first = engine.rand(3).tolist()
    engine.manual_seed(-1)
    assert engine.rand(3).tolist() == first
    engine.manual_seed(1)
    assert engine.rand(3).tolist() != first


@pytest.mark.parametrize("name", ["reference", "numba"])
def test_max_pool_backward_of_an_empty_batch(name):
    previous = backend.cpu_backend().NAME
    engine.set_backend(name)
    try:
        x = engine.zeros(0, 2, 4, 4, requires_grad=True)
        F.max_pool2d(x, 2).sum().backward()
        assert tuple(x.grad.shape) == (0, 2, 4, 4)
    finally:
        engine.set_backend(previous)


@pytest.mark.parametrize("op", ["conv2d", "avg_pool2d", "max_pool2d", "sigmoid", "relu", "tanh", "cross_entropy"])
def test_float16_on_the_numba_backend_is_computed_in_float32_and_rounded_back(op):
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((2, 1, 6, 6)).astype(np.float16)
    w0 = rng.standard_normal((2, 1, 3, 3)).astype(np.float16)
    ops = {"conv2d": lambda x, w: F.conv2d(x, w), "avg_pool2d": lambda x, w: F.avg_pool2d(x, 2),
           "max_pool2d": lambda x, w: F.max_pool2d(x, 2), "sigmoid": lambda x, w: x.sigmoid(),
           "relu": lambda x, w: x.relu(), "tanh": lambda x, w: x.tanh(),
           "cross_entropy": lambda x, w: F.cross_entropy(x.reshape(2, 36), engine.tensor([3, 7]))}
    results = {}
    for dtype in (engine.float16, engine.float32):
        x = engine.tensor(x0, dtype=dtype, requires_grad=True)
        w = engine.tensor(w0, dtype=dtype, requires_grad=True)
        y = ops[op](x, w)
        y.sum().backward()
        results[dtype] = (y.detach(), x.grad)
    (y16, g16), (y32, g32) = results[engine.float16], results[engine.float32]
    assert y16.dtype == engine.float16 and g16.dtype == engine.float16
    np.testing.assert_allclose(y16.numpy().astype(np.float32), y32.numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(g16.numpy().astype(np.float32), g32.numpy(), rtol=2e-3, atol=2e-3)


def test_cross_entropy_hands_the_kernels_a_contiguous_target(monkeypatch):
    cpu = backend.cpu_backend()
    seen = []
    original = cpu.softmax_cross_entropy_backward

    def spy(gloss, probs, target):
        seen.append(target.flags.c_contiguous)
        return original(gloss, probs, target)

    monkeypatch.setattr(cpu, "softmax_cross_entropy_backward", spy)
    logits = engine.tensor(np.linspace(-1, 1, 8).reshape(2, 4), requires_grad=True)
    strided = engine.tensor([[1, 0], [3, 0]])[:, 0]
    assert not strided.numpy().flags.c_contiguous
    F.cross_entropy(logits, strided).backward()
    assert seen == [True]
    reference = torch.tensor(np.linspace(-1, 1, 8).reshape(2, 4), dtype=torch.float32, requires_grad=True)
    torch.nn.functional.cross_entropy(reference, torch.tensor([1, 3])).backward()
    np.testing.assert_allclose(logits.grad.numpy(), reference.grad.numpy(), rtol=1e-6)
