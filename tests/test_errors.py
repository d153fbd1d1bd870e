"""Bad input raises ValueError/TypeError naming the argument and showing the shapes or values.

No bad input may produce a silent wrong answer.
"""

from __future__ import annotations

import operator
import re

import pytest

import engine
from engine import nn
from engine.nn import functional as F


def raises(exc, *patterns):
    """pytest.raises(exc) that also checks each regex in ``patterns`` occurs in the message."""

    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *args):
            handled = self.ctx.__exit__(*args)
            if not handled:  # another exception type: let it propagate as it is
                return False
            message = str(self.info.value)
            for p in patterns:
                assert re.search(p, message), f"message {message!r} lacks {p!r}"
            return handled

    return Check()


def shape(*dims):
    """Regex for a shape printed as a tuple, e.g. '(2, 3, 8, 8)' (a '[2, 3, 8, 8]' list form also matches)."""
    inner = ", ".join(str(d) for d in dims) + (",?" if len(dims) == 1 else "")
    return r"[\(\[]" + inner + r"[\)\]]"


x8 = lambda *s: engine.randn(*s)  # noqa: E731


# --- conv2d -------------------------------------------------------------------------------------


def test_conv_channel_mismatch():
    with raises(ValueError, "(?i)channel", shape(2, 3, 8, 8), shape(4, 2, 3, 3)):
        F.conv2d(x8(2, 3, 8, 8), x8(4, 2, 3, 3))


def test_conv_kernel_larger_than_padded_input():
    with raises(ValueError, "(?i)kernel|weight", shape(1, 1, 3, 3), shape(1, 1, 5, 5)):
        F.conv2d(x8(1, 1, 3, 3), x8(1, 1, 5, 5))
    with raises(ValueError, "(?i)kernel|weight", "(?i)padding|dilation"):
        F.conv2d(x8(1, 1, 4, 4), x8(1, 1, 3, 3), dilation=2)  # effective kernel 5 > 4


@pytest.mark.parametrize("stride", [0, -1, (1, 0)])
def test_conv_stride_not_positive(stride):
    with raises(ValueError, "stride", re.escape(str(stride))):
        F.conv2d(x8(1, 1, 5, 5), x8(1, 1, 3, 3), stride=stride)


@pytest.mark.parametrize("dilation", [0, (0, 1)])
def test_conv_dilation_not_positive(dilation):
    with raises(ValueError, "dilation"):
        F.conv2d(x8(1, 1, 5, 5), x8(1, 1, 3, 3), dilation=dilation)


@pytest.mark.parametrize("padding", [-1, (0, -2)])
def test_conv_negative_padding(padding):
    with raises(ValueError, "padding", re.escape(str(padding))):
        F.conv2d(x8(1, 1, 5, 5), x8(1, 1, 3, 3), padding=padding)


def test_conv_wrong_ndim():
    with raises(ValueError, "input", shape(8, 8)):
        F.conv2d(x8(8, 8), x8(1, 1, 3, 3))
    with raises(ValueError, "weight", shape(1, 3, 3)):
        F.conv2d(x8(1, 1, 8, 8), x8(1, 3, 3))


def test_conv_bias_shape():
    with raises(ValueError, "bias", shape(3)):
        F.conv2d(x8(1, 1, 5, 5), x8(2, 1, 3, 3), x8(3))


def test_conv_bad_algo():
    with raises(ValueError, "algo", "fft"):
        F.conv2d(x8(1, 1, 5, 5), x8(1, 1, 3, 3), algo="fft")


@pytest.mark.parametrize("bad", [1.5, "2", (1, 2, 3), True])
def test_conv_non_int_geometry(bad):
    with pytest.raises(TypeError, match="stride"):
        F.conv2d(x8(1, 1, 5, 5), x8(1, 1, 3, 3), stride=bad)


def test_conv2d_module_checks_its_arguments():
    with raises(ValueError, "kernel_size"):
        nn.Conv2d(1, 1, kernel_size=0)
    with raises(ValueError, "(?i)channel", shape(1, 2, 8, 8)):
        nn.Conv2d(3, 1, kernel_size=3)(x8(1, 2, 8, 8))


# --- pooling ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", ["avg_pool2d", "max_pool2d"])
def test_pool_kernel_not_positive(pool):
    with raises(ValueError, "kernel_size"):
        getattr(F, pool)(x8(1, 1, 4, 4), 0)
    with raises(ValueError, "kernel_size"):
        getattr(F, pool)(x8(1, 1, 4, 4), (2, -1))


@pytest.mark.parametrize("pool", ["avg_pool2d", "max_pool2d"])
def test_pool_stride_not_positive(pool):
    with raises(ValueError, "stride"):
        getattr(F, pool)(x8(1, 1, 4, 4), 2, stride=0)


@pytest.mark.parametrize("pool", ["avg_pool2d", "max_pool2d"])
def test_pool_bad_padding(pool):
    with raises(ValueError, "padding"):
        getattr(F, pool)(x8(1, 1, 4, 4), 2, padding=-1)
    # torch: padding must be at most half the kernel, else whole windows lie in the padding
    with raises(ValueError, "padding"):
        getattr(F, pool)(x8(1, 1, 6, 6), 2, padding=2)


def test_max_pool_window_wholly_in_padding_is_refused():
    """torch returns -inf for such a window; the engine refuses rather than return a silent -inf."""
    with raises(ValueError, "padding", shape(1, 1, 1, 1)):
        F.max_pool2d(x8(1, 1, 1, 1), (1, 2), stride=1, padding=(0, 1), dilation=(1, 2))


@pytest.mark.parametrize("pool", ["avg_pool2d", "max_pool2d"])
def test_pool_kernel_larger_than_padded_input(pool):
    with raises(ValueError, "(?i)kernel", shape(1, 1, 3, 3)):
        getattr(F, pool)(x8(1, 1, 3, 3), 5)


@pytest.mark.parametrize("pool", ["avg_pool2d", "max_pool2d"])
def test_pool_wrong_ndim(pool):
    with raises(ValueError, "input", shape(4, 4)):
        getattr(F, pool)(x8(4, 4), 2)


# --- cross_entropy ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [3, -1, 7])
def test_cross_entropy_target_out_of_range(bad):
    with raises(ValueError, "target", str(bad)):
        F.cross_entropy(x8(2, 3), engine.tensor([0, bad]))


def test_cross_entropy_float_target():
    with raises((TypeError, ValueError), "target", "(?i)float|dtype|int"):
        F.cross_entropy(x8(2, 3), engine.tensor([0.0, 1.0]))


def test_cross_entropy_target_shape_mismatch():
    with raises(ValueError, "target", shape(3), shape(2, 3)):
        F.cross_entropy(x8(2, 3), engine.tensor([0, 1, 2]))


def test_cross_entropy_wrong_input_ndim():
    with raises(ValueError, "input", shape(2, 3, 4, 5)):
        F.cross_entropy(x8(2, 3, 4, 5), engine.tensor([0, 1]))


def test_cross_entropy_bad_reduction():
    with raises(ValueError, "reduction", "avg"):
        F.cross_entropy(x8(2, 3), engine.tensor([0, 1]), reduction="avg")


def test_cross_entropy_loss_module_checks_targets():
    with raises(ValueError, "target", "5"):
        nn.CrossEntropyLoss(reduction="none")(x8(2, 3), engine.tensor([0, 5]))


# --- linear, mse, broadcasting, matmul -----------------------------------------------------------


def test_linear_shape_mismatch():
    with raises(ValueError, "(?i)weight|input", shape(4, 3), shape(5, 6)):
        F.linear(x8(4, 3), x8(5, 6))


def test_linear_bias_mismatch():
    with raises(ValueError, "bias", shape(4)):
        F.linear(x8(4, 3), x8(5, 3), x8(4))


def test_linear_module_input_mismatch():
    with raises(ValueError, shape(2, 7)):
        nn.Linear(400, 120)(x8(2, 7))


def test_mse_loss_shape_mismatch():
    with raises(ValueError, shape(2, 3), shape(3, 2)):
        F.mse_loss(x8(2, 3), x8(3, 2))


@pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul, operator.truediv], ids=lambda f: f.__name__)
def test_broadcasting_mismatch(op):
    with raises(ValueError, "(?i)broadcast", shape(2, 3), shape(4)):
        op(x8(2, 3), x8(4))


def test_matmul_mismatch():
    with raises(ValueError, shape(2, 3), shape(4, 5)):
        x8(2, 3) @ x8(4, 5)


def test_reshape_to_wrong_numel():
    with raises((ValueError, RuntimeError), shape(2, 3), shape(4, 2)):
        x8(2, 3).reshape(4, 2)


def test_conv_dtype_mismatch_is_not_silent():
    x = engine.randn(1, 1, 5, 5, dtype=engine.float64)
    w = engine.randn(1, 1, 3, 3)
    try:
        y = F.conv2d(x, w)
    except (TypeError, ValueError) as exc:
        assert "dtype" in str(exc) or "float" in str(exc)
    else:  # promotion is fine too, as long as the result is right
        assert y.dtype == engine.float64
