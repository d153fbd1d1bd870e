"""algo='auto': time both conv algorithms once per shape, keep the faster; forcing per call/module/globally."""
import time
import types

import numpy as np
import pytest

import engine
from engine import autotune


@pytest.fixture
def fresh_choices():
    previous = autotune.get_conv_algo()
    autotune.clear_choices()
    yield
    autotune.set_conv_algo(previous)
    autotune.clear_choices()


def fake_backend(slow_algo):
    """A backend whose conv2d_forward tags its output with the algorithm and is slow for ``slow_algo``."""
    calls = []

    def conv2d_forward(x, w, b, stride, padding, dilation, algo):
        calls.append(algo)
        if algo == slow_algo:
            time.sleep(0.01)
        return np.full(1, autotune.ALGOS.index(algo))

    return types.SimpleNamespace(NAME="fake", conv2d_forward=conv2d_forward), calls


@pytest.mark.parametrize("slow", ["im2col", "direct"])
def test_auto_times_both_once_and_keeps_the_faster(fresh_choices, slow):
    backend, calls = fake_backend(slow)
    fast = "direct" if slow == "im2col" else "im2col"
    x = np.zeros((2, 1, 5, 5))
    out = autotune.run_conv_kernel(backend, "conv2d_forward", "auto", x, x, None, (1, 1), (0, 0), (1, 1))
    assert out[0] == autotune.ALGOS.index(fast)  # the timing run's result is returned
    assert calls.count(slow) == calls.count(fast) == 1 + autotune.TIMED_RUNS
    calls.clear()
    autotune.run_conv_kernel(backend, "conv2d_forward", "auto", x, x, None, (1, 1), (0, 0), (1, 1))
    assert calls == [fast]  # cached: no more timing
    assert list(autotune.chosen_algos().values()) == [fast]


def test_a_new_shape_is_timed_again(fresh_choices):
    backend, calls = fake_backend("direct")
    for n in (2, 3):
        x = np.zeros((n, 1, 5, 5))
        autotune.run_conv_kernel(backend, "conv2d_forward", "auto", x, x, None, (1, 1), (0, 0), (1, 1))
    assert len(autotune.chosen_algos()) == 2


def test_global_setting_forces_auto_calls_but_not_explicit_ones(fresh_choices):
    backend, calls = fake_backend("direct")
    x = np.zeros((2, 1, 5, 5))
    engine.set_conv_algo("direct")
    autotune.run_conv_kernel(backend, "conv2d_forward", "auto", x, x, None, (1, 1), (0, 0), (1, 1))
    autotune.run_conv_kernel(backend, "conv2d_forward", "im2col", x, x, None, (1, 1), (0, 0), (1, 1))
    assert calls == ["direct", "im2col"]
    assert autotune.chosen_algos() == {}


def test_module_algo_is_used(fresh_choices, monkeypatch):
    seen = []
    cpu = engine.backends.cpu_backend()
    original = cpu.conv2d_forward
    monkeypatch.setattr(cpu, "conv2d_forward", lambda *a: seen.append(a[-1]) or original(*a))
    conv = engine.nn.Conv2d(1, 2, 3, algo="im2col")
    conv(engine.randn(1, 1, 6, 6))
    assert seen == ["im2col"]


@pytest.mark.parametrize("bad", ["fft", "", None])
def test_bad_algo_names_the_argument(bad):
    with pytest.raises(ValueError, match="algo must be one of"):
        engine.set_conv_algo(bad)
    with pytest.raises(ValueError, match="algo must be one of"):
        engine.nn.functional.conv2d(engine.ones(1, 1, 4, 4), engine.ones(1, 1, 2, 2), algo=bad)


def recording_backward_input():
    """A backend whose conv2d_backward_input records (algo, saved) and is fastest for 'flipped'."""
    calls = []

    def conv2d_backward_input(gy, w, input_hw, stride, padding, dilation, algo, saved=None):
        calls.append((algo, saved))
        if algo != "flipped":
            time.sleep(0.005)
        return np.full(1, len(algo)), saved

    return types.SimpleNamespace(NAME="fake", conv2d_backward_input=conv2d_backward_input), calls


@pytest.mark.parametrize("stride", [(1, 1), (2, 1)])
def test_auto_also_times_flipped_for_the_input_gradient_at_stride_one(fresh_choices, stride):
    backend, calls = recording_backward_input()
    gy = np.zeros((2, 1, 3, 3))
    args = (gy, gy, (5, 5), stride, (0, 0), (1, 1))
    autotune.run_conv_kernel(backend, "conv2d_backward_input", "auto", *args, saved="layouts")
    timed = sorted({algo for algo, _ in calls})
    assert timed == (["direct", "flipped", "im2col"] if stride == (1, 1) else ["direct", "im2col"])
    assert all(saved == "layouts" for _, saved in calls)  # every candidate gets what forward saved
    if stride == (1, 1):
        assert list(autotune.chosen_algos().values()) == ["flipped"]  # the fast one


@pytest.mark.parametrize("n,input_hw,out_hw,stride,expected", [
    (256, (14, 14), (10, 10), (1, 1), "direct"),  # LeNet's conv2: gathering wastes less
    (256, (28, 28), (28, 28), (1, 1), "flipped"),  # LeNet's conv1: no border to waste
    (64, (14, 14), (10, 10), (1, 1), "flipped"),  # a small batch: short gathers
    (64, (28, 28), (28, 28), (2, 2), "direct"),  # flipped needs stride 1
])
def test_forced_direct_picks_the_input_gradient_algorithm_by_shape(fresh_choices, n, input_hw, out_hw, stride,
                                                                   expected):
    backend, calls = recording_backward_input()
    gy = np.zeros((n, 1) + out_hw)
    autotune.run_conv_kernel(backend, "conv2d_backward_input", "direct", gy, gy, input_hw, stride, (0, 0), (1, 1),
                             saved="layouts")
    assert calls == [(expected, "layouts")] and autotune.chosen_algos() == {}
