"""engine.optim.SGD and Adam against torch.optim on the same problem, step by step, in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FLOAT64, assert_close, engine_tensor

import engine
from engine import optim


def problem(seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        w=rng.standard_normal((3, 4)),
        b=rng.standard_normal(3),
        x=rng.standard_normal((5, 4)),
        y=rng.standard_normal((5, 3)),
    )


def loss_of(lib, w, b, x, y):
    """A small least-squares problem with a nonlinearity so gradients change from step to step."""
    out = (x @ w.T + b).tanh()
    return ((out - y) ** 2).mean() + (w * w).sum() * 0.01


def run_steps(lib, make_opt, steps, data, state=None):
    """Run ``steps`` optimizer steps; returns (params, optimizer)."""
    if lib == "engine":
        w, b = (engine_tensor(data[k], requires_grad=True) for k in ("w", "b"))
        x, y = engine_tensor(data["x"]), engine_tensor(data["y"])
        opt = make_opt(optim, [w, b])
    else:
        w, b = (torch.from_numpy(data[k].copy()).requires_grad_() for k in ("w", "b"))
        x, y = torch.from_numpy(data["x"]), torch.from_numpy(data["y"])
        opt = make_opt(torch.optim, [w, b])
    if state is not None:
        opt.load_state_dict(state)
    for _ in range(steps):
        opt.zero_grad()
        loss_of(lib, w, b, x, y).backward()
        opt.step()
    return (w, b), opt


SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.05, momentum=0.8, dampening=0.3),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.05),
    "all": dict(lr=0.07, momentum=0.5, weight_decay=0.01, nesterov=True),
}
ADAM_CASES = {
    "default": dict(),
    "lr": dict(lr=0.05),
    "betas_eps": dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    "weight_decay": dict(lr=0.02, weight_decay=0.1),
}
CASES = [("SGD", k, v) for k, v in SGD_CASES.items()] + [("Adam", k, v) for k, v in ADAM_CASES.items()]


@pytest.mark.parametrize("cls,case,kw", CASES, ids=[f"{c}-{k}" for c, k, _ in CASES])
def test_optimizer_matches_torch(cls, case, kw):
    def make(module, params):
        return getattr(module, cls)(params, **kw)

    data = problem()
    (ew, eb), _ = run_steps("engine", make, 6, data)
    (tw, tb), _ = run_steps("torch", make, 6, data)
    assert_close(ew, tw, FLOAT64, what="weight after 6 steps")
    assert_close(eb, tb, FLOAT64, what="bias after 6 steps")
    assert ew.requires_grad and ew.grad_fn is None, "step() must update leaves in place, outside autograd"


@pytest.mark.parametrize("cls,kw", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.05))])
def test_state_dict_resumes_exactly(cls, kw):
    def make(module, params):
        return getattr(module, cls)(params, **kw)

    data = problem(1)
    (w_full, _), _ = run_steps("engine", make, 5, data)
    (w_a, b_a), opt_a = run_steps("engine", make, 3, data)
    state = opt_a.state_dict()
    resumed = dict(data, w=w_a.detach().numpy().copy(), b=b_a.detach().numpy().copy())
    (w_b, _), _ = run_steps("engine", make, 2, resumed, state=state)
    np.testing.assert_allclose(w_b.detach().numpy(), w_full.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_zero_grad_clears_grads():
    w = engine.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    opt.zero_grad()
    assert w.grad is None or not np.any(w.grad.numpy())


def test_sgd_accepts_a_generator_of_parameters_like_the_seed():
    net = engine.nn.Sequential(engine.nn.Linear(3, 2))
    opt = optim.SGD(net.parameters(), lr=0.9)
    before = net[0].weight.detach().numpy().copy()
    net(engine.ones(1, 3)).sum().backward()
    opt.step()
    expected = before - 0.9 * np.ones((2, 3))  # d(sum(W x + b))/dW = 1 for x = ones
    np.testing.assert_allclose(net[0].weight.detach().numpy(), expected, rtol=1e-6)


def test_step_skips_parameters_without_grad():
    a = engine.tensor([1.0], requires_grad=True)
    b = engine.tensor([5.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    (a * 2).sum().backward()
    opt.step()
    assert b.tolist() == [5.0] and a.item() != 1.0


def test_float32_parameters_stay_float32():
    w = engine.tensor([1.0, 2.0], requires_grad=True)
    for cls in (optim.SGD(([w]), lr=0.1, momentum=0.9), optim.Adam([w], lr=0.1)):
        (w * w).sum().backward()
        cls.step()
        cls.zero_grad()
        assert w.dtype == engine.float32 and w.detach().numpy().dtype == np.float32


def test_invalid_hyperparameters_raise():
    w = engine.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([w], lr=-0.1)
    with pytest.raises(ValueError, match="(?i)nesterov"):
        optim.SGD([w], lr=0.1, nesterov=True)  # nesterov needs momentum > 0 and dampening 0
    with pytest.raises(ValueError, match="beta"):
        optim.Adam([w], betas=(1.5, 0.999))


@pytest.mark.parametrize("name", ["numba", "reference"])
def test_plain_sgd_updates_every_parameter_in_one_call_as_p_minus_lr_g(name):
    """The grouped update (the numba backend's one kernel over all parameters) gives p - float32(lr) * g
    bit for bit, float16 and non-contiguous parameters included, and bumps every version."""
    rng = np.random.default_rng(0)
    previous = engine.get_backend()
    engine.set_backend(name)
    try:
        arrays = [rng.standard_normal(s).astype(np.float32) for s in ((6, 1, 5, 5), (6,), (120, 400))]
        arrays.append(rng.standard_normal((3, 4)).astype(np.float16))
        params = [engine.nn.Parameter(engine.tensor(a)) for a in arrays]
        params.append(engine.nn.Parameter(engine.tensor(rng.standard_normal((5, 7)).astype(np.float32)).t()))
        grads = [rng.standard_normal(p.shape).astype(p.detach().numpy().dtype) for p in params]
        for p, g in zip(params, grads):
            p.grad = engine.tensor(g)
        expected = [p.detach().numpy() - p.detach().numpy().dtype.type(0.9) * g for p, g in zip(params, grads)]
        versions = [p._version for p in params]
        optim.SGD(params, lr=0.9).step()
        for p, e, v in zip(params, expected, versions):
            np.testing.assert_array_equal(p.detach().numpy(), e)
            assert p._version == v + 1
    finally:
        engine.set_backend(previous)


def test_flat_writes_need_no_grad_and_contiguous_tensors():
    t = engine.zeros(3, 4)
    with pytest.raises(RuntimeError, match="only under no_grad"):
        engine.Tensor._write_flat_in_place([t], lambda arrays: None)
    with engine.no_grad(), pytest.raises(ValueError, match=r"shape \(4, 3\) is not contiguous"):
        engine.Tensor._write_flat_in_place([t.t()], lambda arrays: None)


def test_plain_sgd_with_a_hand_set_grad_of_another_dtype_takes_the_general_loop():
    p = engine.nn.Parameter(engine.ones(3))
    q = engine.nn.Parameter(engine.ones(2))
    p.grad, q.grad = engine.tensor(np.full(3, 0.5)), engine.tensor(np.full(2, 0.25, np.float32))  # float64, float32
    optim.SGD([p, q], lr=2.0).step()
    np.testing.assert_array_equal(p.detach().numpy(), np.zeros(3, np.float32))
    np.testing.assert_array_equal(q.detach().numpy(), np.full(2, 0.5, np.float32))
    assert p.dtype == engine.float32
