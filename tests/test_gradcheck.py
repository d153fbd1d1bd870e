"""engine.gradcheck: finite differences (float64, central) agree with every Function's backward,
and a deliberately wrong backward is caught, in the full and the random-direction variants."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.autograd import Function
from engine.nn import functional as F


def inputs(*shapes, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        a = rng.standard_normal(s)
        if positive:
            a = np.abs(a) + 0.5
        out.append(engine.tensor(a, dtype=engine.float64, requires_grad=True))
    return tuple(out)


def weighted_sum(fn, out_seed=99):
    """fn's output reduced with fixed random weights, so every output element matters to the check."""

    def reduced(*ts):
        y = fn(*ts)
        w = np.random.default_rng(out_seed).standard_normal(tuple(y.shape))
        return (y * engine.tensor(w, dtype=engine.float64)).sum()

    return reduced


TARGET = engine.tensor([2, 0, 1, 2])

CASES = {
    "conv2d_im2col": (
        lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, algo="im2col"),
        [(2, 2, 6, 5), (3, 2, 3, 2), (3,)],
    ),
    "conv2d_direct": (
        lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), algo="direct"),
        [(2, 2, 6, 5), (3, 2, 3, 2), (3,)],
    ),
    "conv2d_dilated": (lambda x, w: F.conv2d(x, w, padding=1, dilation=2), [(1, 2, 7, 6), (2, 2, 2, 3)]),
    "conv2d_1x2": (lambda x, w: F.conv2d(x, w), [(1, 1, 6, 8), (1, 1, 1, 2)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False), [(2, 2, 7, 6)]),
    "avg_pool2d_ceil": (lambda x: F.avg_pool2d(x, 2, ceil_mode=True), [(1, 2, 5, 7)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, stride=2, padding=1, dilation=1), [(2, 2, 7, 6)]),
    "max_pool2d_dilated_ceil": (
        lambda x: F.max_pool2d(x, (2, 3), stride=2, dilation=(2, 1), ceil_mode=True),
        [(1, 2, 8, 7)],
    ),
    "sigmoid": (F.sigmoid, [(3, 4)]),
    "relu": (F.relu, [(3, 4)]),
    "tanh": (F.tanh, [(3, 4)]),
    "linear": (F.linear, [(4, 5), (3, 5), (3,)]),
    "linear_nobias": (F.linear, [(2, 5), (3, 5)]),
    "flatten": (lambda x: F.flatten(x, start_dim=1), [(2, 3, 2, 2)]),
    "softmax": (lambda x: F.softmax(x, dim=1), [(4, 5)]),
    "log_softmax": (lambda x: F.log_softmax(x, dim=-1), [(4, 5)]),
    "cross_entropy_mean": (lambda x: F.cross_entropy(x, TARGET.to(x.device)), [(4, 3)]),
    "cross_entropy_sum": (lambda x: F.cross_entropy(x, TARGET.to(x.device), reduction="sum"), [(4, 3)]),
    "cross_entropy_none": (lambda x: F.cross_entropy(x, TARGET.to(x.device), reduction="none"), [(4, 3)]),
    "mse_loss": (F.mse_loss, [(3, 4), (3, 4)]),
    "matmul": (lambda a, b: a @ b, [(3, 4), (4, 2)]),
    "add_broadcast": (lambda a, b: a + b, [(2, 3), (3,)]),
    "sub_broadcast": (lambda a, b: a - b, [(2, 1), (1, 3)]),
    "mul_broadcast": (lambda a, b: a * b, [(4, 1, 3), (2, 3)]),
    "div_broadcast": (lambda a, b: a / (b * b + 1), [(2, 3), (2, 1)]),
    "pow_scalar": (lambda a: a**3, [(2, 3)]),
    "rsub_rdiv": (lambda a: 1 - 2 / (a * a + 1), [(2, 3)]),
    "neg": (lambda a: -a, [(2, 3)]),
    "sum_dim": (lambda a: a.sum(dim=1, keepdim=True), [(3, 4)]),
    "mean_dim": (lambda a: a.mean(dim=0), [(3, 4)]),
    "max_all": (lambda a: a.max(), [(3, 4)]),
    "max_dim": (lambda a: a.max(dim=1)[0], [(3, 4)]),
    "exp": (lambda a: a.exp(), [(3, 4)]),
    "reshape": (lambda a: a.reshape(4, -1), [(2, 3, 2)]),
    "view": (lambda a: a.view(6, 2), [(2, 3, 2)]),
    "transpose": (lambda a: a.transpose(0, 2), [(2, 3, 2)]),
    "T": (lambda a: a.T, [(2, 3)]),
    "index": (lambda a: a[1:, ::2], [(3, 5)]),
    "index_int": (lambda a: a[:, 1], [(3, 5)]),
}


@pytest.mark.parametrize("name", CASES)
def test_gradcheck_passes_on_every_function(name, backend):
    fn, shapes = CASES[name]
    assert engine.gradcheck(weighted_sum(fn), inputs(*shapes)) is True


def test_gradcheck_log_on_positive_input(backend):
    assert engine.gradcheck(weighted_sum(lambda a: a.log()), inputs((3, 4), positive=True)) is True


def test_gradcheck_pow_tensor_exponent(backend):
    (base,) = inputs((2, 3), positive=True)
    (expo,) = inputs((3,), seed=1)
    assert engine.gradcheck(weighted_sum(lambda a, b: a**b), (base, expo)) is True


def test_gradcheck_non_scalar_output(backend):
    x, w = inputs((1, 1, 5, 5), (2, 1, 3, 3))
    assert engine.gradcheck(lambda x, w: F.conv2d(x, w, padding=1), (x, w)) is True


def test_gradcheck_skips_inputs_that_need_no_grad(backend):
    (x,) = inputs((2, 1, 5, 5))
    w = engine.tensor(np.random.default_rng(3).standard_normal((2, 1, 3, 3)), dtype=engine.float64)
    assert engine.gradcheck(weighted_sum(lambda x, w: F.conv2d(x, w)), (x, w)) is True
    assert w.grad is None


@pytest.mark.parametrize("algo", ["im2col", "direct"])
def test_gradcheck_random_directions_on_a_large_conv(algo, backend):
    x, w, b = inputs((4, 3, 16, 16), (8, 3, 5, 5), (8,))
    fn = weighted_sum(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=2, algo=algo))
    assert engine.gradcheck(fn, (x, w, b), random_directions=4, seed=1) is True


# --- a wrong backward is caught -----------------------------------------------------------------------


class WrongSquare(Function):
    """y = x**2 with a backward off by a factor 3/2 (3x instead of 2x)."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, gy):
        (x,) = self.saved_tensors
        return 3 * x * gy


class RightSquare(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, gy):
        (x,) = self.saved_tensors
        return 2 * x * gy


class WrongInOneElement(Function):
    """Identity whose backward drops the gradient of one element only: a subtle bug."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        g = gy.copy()
        g.flat[5] = 0.0
        return g


def test_custom_function_with_right_backward_passes():
    (x,) = inputs((3, 4))
    assert engine.gradcheck(weighted_sum(RightSquare.apply), (x,)) is True
    y = RightSquare.apply(x)
    assert y.requires_grad and y.grad_fn is not None


@pytest.mark.parametrize("random_directions,message", [
    (None, r"input 0 \(shape \(3, 4\)\): 12 of 12 gradient entries differ; first at index "),
    (3, r"input 0 \(shape \(3, 4\)\), random direction 0: analytic directional derivative "),
])
def test_gradcheck_catches_a_wrong_backward(random_directions, message):
    (x,) = inputs((3, 4))
    with pytest.raises(AssertionError, match=message):
        engine.gradcheck(weighted_sum(WrongSquare.apply), (x,), random_directions=random_directions)


def test_gradcheck_catches_one_wrong_element():
    (x,) = inputs((3, 4))
    with pytest.raises(AssertionError, match=r"input 0 \(shape \(3, 4\)\): 1 of 12 gradient entries differ; "):
        engine.gradcheck(weighted_sum(WrongInOneElement.apply), (x,))


def test_gradcheck_catches_a_wrong_backward_in_the_second_input():
    class WrongMul(Function):
        def forward(self, a, b):
            self.save_for_backward(a, b)
            return a * b

        def backward(self, gy):
            a, b = self.saved_tensors
            return gy * b, gy * a * 1.01

    a, b = inputs((2, 3), (2, 3))
    with pytest.raises(AssertionError, match=r"input 1 \(shape \(2, 3\)\): 6 of 6 gradient entries differ"):
        engine.gradcheck(weighted_sum(WrongMul.apply), (a, b))


def test_gradcheck_tolerances_are_arguments():
    class SlightlyWrong(Function):
        def forward(self, x):
            return x * 2.0

        def backward(self, gy):
            return gy * 2.0001

    (x,) = inputs((2, 2))
    assert engine.gradcheck(weighted_sum(SlightlyWrong.apply), (x,), atol=1e-2, rtol=1e-2) is True
    with pytest.raises(AssertionError):
        engine.gradcheck(weighted_sum(SlightlyWrong.apply), (x,), atol=1e-7, rtol=1e-7)
