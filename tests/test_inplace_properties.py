"""Property test: random programs of views, assignments and in-place ops give torch's values,
gradients and errors (issue 9's "done means").

A program starts from a leaf ``L`` (float64, requires grad) and a few value leaves, makes a non-leaf
``T = L * 1`` and applies a random sequence of steps to ``T``: reads through views (indexing,
reshape, transpose), assignments ``T[index] = value``, in-place ``+= -= *=``, out-of-place
activations (whose saved outputs later in-place steps may overwrite: then both must raise), and
writes under ``no_grad`` into a detached alias or into a view. The loss is a weighted sum of ``T``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def programs(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["assign", "assign_advanced", "iadd", "isub", "imul", "view_read",
                                     "activation", "no_grad_write", "no_grad_view_write"]))
        axis = draw(st.integers(0, len(shape) - 1))
        size = shape[axis]
        start = draw(st.integers(0, size - 1))
        stop = draw(st.integers(start + 1, size))
        picks = draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=3))
        steps.append((kind, axis, start, stop, picks, draw(st.floats(-2, 2).filter(lambda v: abs(v) > 0.1))))
    seed = draw(st.integers(0, 2**16))
    return shape, steps, seed


def region_index(ndim, axis, selector):
    return (slice(None),) * axis + (selector,) + (slice(None),) * (ndim - axis - 1)


def run(lib, shape, steps, seed):
    """Run one program on ``lib`` (engine or torch): (T's values, [leaf grads]) or the exception type."""
    rng = np.random.default_rng(seed)
    leaf = lib.tensor(rng.uniform(0.5, 1.5, shape), dtype=lib.float64, requires_grad=True)
    values = []
    T = leaf * 1
    for kind, axis, start, stop, picks, scale in steps:
        basic = region_index(len(shape), axis, slice(start, stop))
        if kind in ("assign", "assign_advanced"):
            index = basic if kind == "assign" else region_index(len(shape), axis, list(picks))
            region = tuple(T.detach()[index].shape)
            value = lib.tensor(rng.uniform(0.5, 1.5, region), dtype=lib.float64, requires_grad=True)
            values.append(value)
            T[index] = value * scale
        elif kind in ("iadd", "isub", "imul"):
            value = lib.tensor(rng.uniform(0.5, 1.5, shape[-1:]), dtype=lib.float64, requires_grad=True)
            values.append(value)
            operand = value * scale
            if kind == "iadd":
                T += operand
            elif kind == "isub":
                T -= operand
            else:
                T *= operand
        elif kind == "view_read":
            view = T[basic].reshape(-1) if len(shape) == 1 else T[basic].transpose(0, -1).reshape(-1)
            T = T * (1 + view.sum() * 0.01)
        elif kind == "activation":
            T = T.sigmoid() if scale > 0 else T.tanh()
        elif kind == "no_grad_write":  # a write the graph is not told about: backward must notice if it read it
            with lib.no_grad():
                T.detach()[basic] = scale
        else:  # the same through a view taken under no_grad: the view shares the memory's version
            with lib.no_grad():
                T[basic].mul_(scale)
    weights = lib.tensor(np.arange(np.prod(shape), dtype=np.float64).reshape(shape) % 5 + 1)
    (T * weights).sum().backward()
    return T.detach().numpy().copy(), [t.grad.numpy().copy() if t.grad is not None else None
                                       for t in [leaf] + values]


@SETTINGS
@given(programs())
def test_random_programs_of_views_assignments_and_in_place_ops_match_torch(program):
    shape, steps, seed = program
    outcome = {}
    for lib in (engine, torch):
        try:
            outcome[lib.__name__] = run(lib, shape, steps, seed)
        except RuntimeError as exc:
            outcome[lib.__name__] = type(exc)
    mine, theirs = outcome["engine"], outcome["torch"]
    if isinstance(theirs, type) or isinstance(mine, type):
        assert mine == theirs, f"engine gave {mine if isinstance(mine, type) else 'a result'}, torch {theirs}"
        return
    np.testing.assert_allclose(mine[0], theirs[0], rtol=1e-12, atol=1e-12)
    for a, b in zip(mine[1], theirs[1]):
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_the_property_test_sees_both_kinds_of_outcome():
    """The strategy reaches programs that succeed and programs that both libraries refuse."""
    shape = (3, 2)
    ok = [("assign", 0, 0, 2, [0], 1.5), ("iadd", 1, 0, 1, [1], 0.5)]
    refused = [("activation", 0, 0, 1, [0], 1.0), ("imul", 0, 0, 1, [0], 2.0)]
    assert not isinstance(run(engine, shape, ok, 0), type)
    for lib in (engine, torch):
        with pytest.raises(RuntimeError, match="inplace operation"):
            run(lib, shape, refused, 0)
