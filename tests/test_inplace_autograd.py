"""Autograd through writes: assignment, in-place arithmetic, views sharing memory (issue 9 items 1-4).

Each case runs the same program on the engine and on torch and compares values, gradients and
errors: torch is the oracle for when an in-place write is allowed and what it does to gradients.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import corr2d

import engine
from engine import nn, optim
from engine.nn import functional as F


def both(program):
    """Run ``program(lib)`` with lib = engine and lib = torch; return both results."""
    return program(engine), program(torch)


def grads_equal(program, **tolerance):
    """``program(lib)`` returns a list of tensors whose .grad must match between engine and torch."""
    mine, theirs = both(program)
    for a, b in zip(mine, theirs):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            np.testing.assert_allclose(a.grad.detach().numpy(), b.grad.detach().numpy(),
                                       **(tolerance or dict(rtol=1e-6, atol=1e-7)))


# ---------------------------------------------------------------------- 1. assignment is differentiable
def test_assignment_of_a_value_that_requires_grad_makes_the_destination_require_grad():
    def program(lib):
        w = lib.ones(2, requires_grad=True)
        Y = lib.zeros(2)
        Y[0] = (w * 3).sum()
        assert Y.requires_grad
        (Y + 1).sum().backward()
        return [w]

    grads_equal(program)
    assert engine.ones(2).requires_grad is False


def test_a_students_corr2d_layer_trains_its_kernel_like_torch():
    rng = np.random.default_rng(0)
    x, k, target = rng.standard_normal((6, 8)), rng.standard_normal((1, 2)), rng.standard_normal((6, 7))

    def program(lib):
        X = lib.tensor(x, dtype=lib.float64)
        K = lib.tensor(k, dtype=lib.float64, requires_grad=True)
        bias = lib.zeros(1, dtype=lib.float64, requires_grad=True)
        loss = ((corr2d(lib, X, K) + bias - lib.tensor(target)) ** 2).sum()
        loss.backward()
        return [K, bias]

    grads_equal(program)


@pytest.mark.parametrize("index", [
    (0,), (slice(1, 3),), (Ellipsis, 1), (slice(None), slice(0, 2)), ([0, 2],), ([0, 0, 2],),
    (np.array([True, False, True]),), ([0, 2], [1, 0]),
], ids=lambda i: repr(i))
def test_assignment_gradients_for_basic_and_advanced_indices(index):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((3, 4))

    def program(lib):
        dest_leaf = lib.tensor(base, requires_grad=True)
        dest = dest_leaf * 2  # a non-leaf destination
        region = dest.detach()[index].shape
        value_leaf = lib.tensor(rng_value(region), requires_grad=True)
        dest[index] = value_leaf * 1.5
        (dest * lib.arange(12.0).reshape(3, 4)).sum().backward()
        return [dest_leaf, value_leaf]

    def rng_value(shape):
        return np.random.default_rng(2).standard_normal(tuple(shape))

    grads_equal(program)


def test_assignment_broadcasts_the_value_and_sums_its_gradient():
    def program(lib):
        value = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        dest = lib.zeros(4, 3)
        dest[1:] = value
        (dest * lib.arange(12.0).reshape(4, 3)).sum().backward()
        return [value]

    grads_equal(program)


def test_assigning_into_a_leaf_that_requires_grad_raises_like_torch():
    w = engine.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        w[0] = 5.0
    with engine.no_grad():
        w[0] = 5.0
    assert w.tolist() == [5.0, 1.0, 1.0]


# ---------------------------------------------------------------------- in-place arithmetic on non-leaves
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_in_place_arithmetic_on_a_non_leaf_matches_torch(op):
    rng = np.random.default_rng(3)
    a0, b0 = rng.uniform(0.5, 2, (2, 3)), rng.uniform(0.5, 2, (3,))

    def program(lib):
        a = lib.tensor(a0, requires_grad=True)
        b = lib.tensor(b0, requires_grad=True)
        y = a * 1.0
        y = {"add": y.__iadd__, "sub": y.__isub__, "mul": y.__imul__, "div": y.__itruediv__}[op](b * 2)
        (y * y).sum().backward()
        return [a, b]

    grads_equal(program)


def test_a_residual_block_adds_its_shortcut_in_place():
    def program(lib):
        lib.manual_seed(0)
        x = lib.tensor(np.linspace(-1, 1, 2 * 3 * 4 * 4).reshape(2, 3, 4, 4), requires_grad=True,
                       dtype=lib.float32)
        w = lib.tensor(np.linspace(-0.5, 0.5, 3 * 3 * 9).reshape(3, 3, 3, 3), requires_grad=True,
                       dtype=lib.float32)
        Y = F.conv2d(x, w, padding=1) if lib is engine else torch.nn.functional.conv2d(x, w, padding=1)
        Y += x
        Y.relu().sum().backward()
        return [x, w]

    grads_equal(program, rtol=1e-5, atol=1e-6)


def test_in_place_over_a_value_saved_for_backward_raises_at_backward_like_torch():
    for lib in (engine, torch):
        x = lib.ones(3, requires_grad=True)
        y = (x * 2).sigmoid()  # sigmoid saves its output
        y += 1
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


# ---------------------------------------------------------------------- 2. memory shared by views
EDITS_OF_SHARED_MEMORY = {
    # name: (input shape, weight shape, forward(x, w) -> loss, in-place edit of x's memory)
    "base of an indexed view": ((2, 3), (3,), lambda x, w: (x[0] * w).sum(), lambda x: x.mul_(5)),
    "through a reshaped alias": ((6,), (6,), lambda x, w: (x * w).sum(), lambda x: x.reshape(2, 3).mul_(5)),
    "conv of a view": ((2, 1, 4, 4), (1, 1, 3, 3), lambda x, w: F.conv2d(x[0], w).sum(), lambda x: x.mul_(3)),
    "through detach()": ((3,), (3,), lambda x, w: (x * w).sum(), lambda x: x.detach().add_(1)),
    "through .data": ((3,), (3,), lambda x, w: (x * w).sum(), lambda x: x.data.add_(1)),
}


@pytest.mark.parametrize("case", EDITS_OF_SHARED_MEMORY, ids=list(EDITS_OF_SHARED_MEMORY))
def test_an_in_place_edit_of_memory_a_saved_value_shares_is_detected(case):
    x_shape, w_shape, forward, edit = EDITS_OF_SHARED_MEMORY[case]
    x, w = engine.ones(*x_shape), engine.ones(*w_shape, requires_grad=True)
    loss = forward(x, w)
    edit(x)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_torch_also_refuses_an_edit_through_the_base_of_a_view():
    a, w = torch.ones(2, 3), torch.ones(3, requires_grad=True)
    y = (a[0] * w).sum()
    a.mul_(5)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_an_untouched_view_still_backpropagates():
    a = engine.ones(2, 3)
    w = engine.ones(3, requires_grad=True)
    (a[0] * w).sum().backward()
    assert w.grad.tolist() == [1.0, 1.0, 1.0]


def test_writing_into_a_view_in_the_graph_is_refused_with_a_clear_error():
    base = engine.ones(2, 3, requires_grad=True) * 1
    view = base[0]
    with pytest.raises(RuntimeError, match="in-place writes into a view"):
        view.mul_(2)


# ---------------------------------------------------------------------- 3. optimizers, init, modules
@pytest.mark.parametrize("make", [lambda p: optim.SGD(p, lr=0.1), lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
                                  lambda p: optim.Adam(p)], ids=["sgd", "momentum", "adam"])
def test_an_optimizer_step_between_forward_and_backward_is_detected(make):
    w = nn.Parameter(engine.ones(3))
    w.grad = engine.ones(3)
    y = (w * w).sum()
    make([w]).step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_nn_init_and_load_state_dict_bump_the_version():
    layer = nn.Linear(3, 2)
    x = engine.ones(1, 3)
    y = layer(x).sum()
    nn.init.xavier_uniform_(layer.weight)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    y = layer(x).sum()
    layer.load_state_dict({"weight": engine.zeros(2, 3), "bias": engine.zeros(2)})
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_no_module_outside_the_tensor_writes_tensor_data():
    import pathlib
    import re

    root = pathlib.Path(engine.__file__).parent
    writes = re.compile(r"\._data(\[[^\]]*\])?\s*([-+*/]?=)(?!=)")
    offenders = [f"{path.relative_to(root)}:{n}" for path in root.rglob("*.py")
                 if path.name not in ("tensor.py", "autograd.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1) if writes.search(line)]
    assert offenders == []


# ---------------------------------------------------------------------- 4. only float tensors require grad
@pytest.mark.parametrize("make", [
    lambda: engine.tensor([1, 2, 3]).requires_grad_(),
    lambda: engine.tensor([1, 2, 3], requires_grad=True),
    lambda: engine.tensor([True, False]).requires_grad_(),
    lambda: nn.Parameter(engine.tensor([1, 2])),
    lambda: nn.Conv2d(1, 1, 3, dtype=engine.int64),
    lambda: engine.zeros(2, dtype=engine.int64, requires_grad=True),
], ids=["requires_grad_", "tensor", "bool", "Parameter", "Conv2d", "zeros"])
def test_integer_and_bool_tensors_cannot_require_grad(make):
    with pytest.raises(RuntimeError, match="floating point"):
        make()


def test_an_integer_parameter_without_grad_is_allowed_like_torch():
    p = nn.Parameter(engine.tensor([1, 2]), requires_grad=False)
    assert p.dtype == engine.int64 and not p.requires_grad
