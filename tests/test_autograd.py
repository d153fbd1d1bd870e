"""Autograd semantics: accumulation, reuse, no_grad, retain_graph, needed-grads-only, deep graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FLOAT64, assert_close

import engine
from engine import backend as engine_backend
from engine.nn import functional as F


def test_grads_accumulate_across_backward_calls():
    x = engine.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * 2).sum().backward()
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0 + 2.0, 2.0 + 4.0, 2.0 + 6.0]


def test_zeroing_grad_restarts_accumulation():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    x.grad.zero_()
    (x * 5).sum().backward()
    assert x.grad.tolist() == [5.0, 5.0]
    x.grad = None
    (x * 7).sum().backward()
    assert x.grad.tolist() == [7.0, 7.0]


def test_tensor_used_twice_gets_both_paths():
    x = engine.tensor([1.5, -2.0], requires_grad=True)
    y = x * x + x  # x reaches y along three edges
    y.sum().backward()
    assert x.grad.tolist() == [2 * 1.5 + 1, 2 * -2.0 + 1]


def test_diamond_graph():
    x = engine.tensor([2.0], requires_grad=True)
    a = x * 3
    b = a.exp()
    c = a * a
    (b + c).sum().backward()
    expected = 3 * np.exp(6.0) + 2 * 6.0 * 3
    assert x.grad.item() == pytest.approx(expected, rel=1e-6)


def test_node_reached_by_paths_of_different_lengths():
    """y feeds z directly and through exp/mul: y's Function must wait for both before running."""

    def two_levels(lib, x):
        y = x + x.exp() * 0.5
        return y + y.exp() * 0.5

    x = engine.tensor([0.5], dtype=engine.float64, requires_grad=True)
    two_levels(engine, x).sum().backward()
    t = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    two_levels(torch, t).sum().backward()
    assert_close(x.grad, t.grad, FLOAT64)


@pytest.mark.parametrize("seed", range(6))
def test_random_dags_match_torch(seed):
    """Random graphs where every new node combines two earlier ones (skip connections of any length)."""
    rng = np.random.default_rng(seed)
    plan = [(int(rng.integers(0, k + 1)), int(rng.integers(0, k + 1)), int(rng.integers(0, 4))) for k in range(12)]

    def build(lib, x):
        nodes = [x]
        for i, j, op in plan:
            a, b = nodes[i], nodes[j]
            nodes.append([a + b, a * b * 0.5, (a * 0.3).tanh() - b, a - (b * 0.2).exp()][op])
        return (nodes[-1] * nodes[len(nodes) // 2]).sum()

    data = rng.standard_normal(4) * 0.5
    x = engine.tensor(data, dtype=engine.float64, requires_grad=True)
    build(engine, x).backward()
    t = torch.tensor(data, dtype=torch.float64, requires_grad=True)
    build(torch, t).backward()
    assert_close(x.grad, t.grad, FLOAT64)


def test_requires_grad_propagates_and_leaves_have_no_grad_fn():
    x = engine.tensor([1.0], requires_grad=True)
    c = engine.tensor([2.0])
    y = x * c
    assert y.requires_grad and y.grad_fn is not None
    assert x.grad_fn is None and c.grad_fn is None
    z = c * 2
    assert not z.requires_grad and z.grad_fn is None


def test_no_grad_builds_no_graph():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    with engine.no_grad():
        y = (x * 2).exp().sum()
        w = F.sigmoid(x)
    assert not y.requires_grad and y.grad_fn is None
    assert not w.requires_grad and w.grad_fn is None
    assert (x * 2).requires_grad  # restored on exit


def test_no_grad_nests_and_restores_after_an_exception():
    x = engine.tensor([1.0], requires_grad=True)
    with pytest.raises(KeyError):
        with engine.no_grad():
            with engine.no_grad():
                pass
            assert not (x * 2).requires_grad
            raise KeyError("boom")
    assert (x * 2).requires_grad


def test_no_grad_as_a_decorator():
    x = engine.tensor([1.0], requires_grad=True)

    @engine.no_grad()
    def evaluate(t):
        return t * 2

    assert not evaluate(x).requires_grad and (x * 2).requires_grad


def test_inplace_on_a_graph_tensor_is_tracked_or_refused():
    """torch records `w += 1` on a non-leaf; refusing it is fine too, a silently wrong grad is not."""
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    w = x * 2
    try:
        w += 1
    except RuntimeError as exc:
        assert "in-place" in str(exc) or "inplace" in str(exc)
        return
    (w * w).sum().backward()
    assert x.grad.tolist() == [12.0, 20.0]


def test_backward_through_freed_graph_raises_clear_error():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]


def test_conv_graph_freed_after_backward():
    x = engine.randn(1, 1, 5, 5, requires_grad=True)
    w = engine.randn(1, 1, 3, 3, requires_grad=True)
    y = F.conv2d(x, w).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_backward_with_gradient_for_non_scalar():
    x = engine.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = x * x
    y.backward(engine.tensor([[1.0, 0.5], [0.0, -1.0]]))
    assert x.grad.tolist() == [[2.0, 2.0], [0.0, -8.0]]


def test_backward_gradient_keyword():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(gradient=engine.tensor([1.0, 2.0]))
    assert x.grad.tolist() == [3.0, 6.0]


def test_backward_on_non_scalar_without_gradient_raises():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()


def test_backward_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="grad"):
        engine.tensor([1.0, 2.0]).sum().backward()


def test_backward_gradient_of_wrong_shape_raises():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises((ValueError, RuntimeError), match=r"\(3,\)"):
        (x * 2).backward(engine.tensor([1.0, 2.0, 3.0]))


def test_leaf_grads_only_non_leaves_keep_none():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    (h * h).sum().backward()
    assert x.grad.tolist() == [8.0, 16.0]
    assert h.grad is None


def test_deep_chain_of_10000_ops_has_no_recursion_error():
    x = engine.tensor([1.0], dtype=engine.float64, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
        y = y + 0.5
    y.sum().backward()
    assert x.grad.item() == pytest.approx(1.0001**5000, rel=1e-9)
    del y  # freeing a deep graph must not overflow the stack either


def test_deep_nonlinear_chain_matches_torch_and_survives_retain_graph():
    """10,002 ops (exp, mul, add: no backend kernel, so the test times autograd, not kernel calls)."""

    def chain(lib, x):
        y = x
        for _ in range(3334):
            y = y + y.exp() * 1e-4
        return y

    x = engine.tensor([0.5], dtype=engine.float64, requires_grad=True)
    y = chain(engine, x)
    y.backward(engine.tensor([1.0], dtype=engine.float64), retain_graph=True)
    t = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    chain(torch, t).backward(torch.tensor([1.0], dtype=torch.float64))
    assert_close(x.grad, t.grad, FLOAT64)
    assert x.grad.item() > 1.5  # a real, non-vanishing gradient through the whole depth
    y.backward(engine.tensor([1.0], dtype=engine.float64))  # the retained graph runs again
    assert_close(x.grad, 2 * t.grad, FLOAT64)


def test_many_independent_branches_summed():
    x = engine.tensor([1.0, 2.0], requires_grad=True)
    total = x * 0
    for k in range(200):
        total = total + x * k
    total.sum().backward()
    assert x.grad.tolist() == [sum(range(200))] * 2


# --- a Function computes only the gradients that are needed ---------------------------------------


class CallCounter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture
def counted_conv_kernels(monkeypatch, backend):
    module = engine_backend.load(backend)
    counters = {}
    for name in ("conv2d_backward_input", "conv2d_backward_weight"):
        counters[name] = CallCounter(getattr(module, name))
        monkeypatch.setattr(module, name, counters[name])
    return counters


@pytest.mark.parametrize("algo", ["im2col", "direct"])
def test_conv_input_grad_not_computed_for_an_input_image(counted_conv_kernels, algo):
    x = engine.randn(2, 1, 6, 6)  # the network's input image: no grad
    w = engine.randn(3, 1, 3, 3, requires_grad=True)
    F.conv2d(x, w, algo=algo).sum().backward()
    assert x.grad is None and w.grad is not None
    assert counted_conv_kernels["conv2d_backward_weight"].calls == 1
    assert counted_conv_kernels["conv2d_backward_input"].calls == 0


@pytest.mark.parametrize("algo", ["im2col", "direct"])
def test_conv_weight_grad_not_computed_for_a_frozen_weight(counted_conv_kernels, algo):
    x = engine.randn(2, 1, 6, 6, requires_grad=True)
    w = engine.randn(3, 1, 3, 3)
    F.conv2d(x, w, algo=algo).sum().backward()
    assert x.grad is not None and w.grad is None
    assert counted_conv_kernels["conv2d_backward_input"].calls == 1
    assert counted_conv_kernels["conv2d_backward_weight"].calls == 0


def test_no_conv_backward_under_no_grad(counted_conv_kernels):
    x = engine.randn(1, 1, 5, 5, requires_grad=True)
    w = engine.randn(1, 1, 3, 3, requires_grad=True)
    with engine.no_grad():
        y = F.conv2d(x, w)
    assert not y.requires_grad
    assert sum(c.calls for c in counted_conv_kernels.values()) == 0


def test_first_layer_of_a_network_gets_no_input_grad(counted_conv_kernels):
    net = engine.nn.Sequential(
        engine.nn.Conv2d(1, 2, kernel_size=3, algo="direct"),
        engine.nn.Sigmoid(),
        engine.nn.Conv2d(2, 2, kernel_size=3, algo="im2col"),
    )  # a fixed algo: algo='auto' may run both algorithms once to time them
    x = engine.randn(2, 1, 7, 7)
    net(x).sum().backward()
    # the second conv needs its input grad (to reach the first conv's weight); the first does not
    assert counted_conv_kernels["conv2d_backward_input"].calls == 1
    assert counted_conv_kernels["conv2d_backward_weight"].calls == 2
    assert x.grad is None
