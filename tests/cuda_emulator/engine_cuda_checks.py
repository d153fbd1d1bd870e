"""The engine's cuda path against its CPU path: moves, mixed-device errors, ops, LeNet steps, the DataLoader,
evaluation, checkpoints and ``python -m engine.train_lenet --device cuda``.

Runs wherever ``import cupy`` gives a CuPy that sees a device: real CuPy on a GPU machine (scripts/gpu_check.py's
``engine`` step), or the CUDA emulator, which tests/test_cuda_emulator.py puts first on PYTHONPATH in a subprocess
(device arrays are then ``cupy.ndarray`` and the cupy backend's CUDA C runs on the CPU). Not collected by a plain
``pytest`` run (the name does not start with ``test_``); by hand:
``PYTHONPATH=tests/cuda_emulator/pythonpath:. pytest tests/cuda_emulator/engine_cuda_checks.py`` (emulator) or
``PYTHONPATH=. pytest tests/cuda_emulator/engine_cuda_checks.py`` (a GPU). The training-script check reads
FashionMNIST where the engine looks for it (``$FASHION_MNIST_DIR`` first).

Every check compares the cuda result with the same computation on the CPU (float64, tight tolerances).
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import engine
import engine.nn.functional as F
from engine import nn, optim
from engine.data import DataLoader
from engine.data import fashion_mnist as fm
from engine.models import lenet
from engine.training.checkpoint import load_checkpoint, save_checkpoint
from engine.training.loop import evaluate

ROOT = pathlib.Path(__file__).resolve().parents[2]
CUDA = engine.device("cuda")
TIGHT = dict(rtol=1e-10, atol=1e-12)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not engine.cuda.is_available(), reason="no CuPy that sees a CUDA device "
                       "(tests/test_cuda_emulator.py runs this file on the emulator)"),
]


@pytest.fixture
def im2col():
    """Whole-model checks use im2col: 'auto' would also time the direct kernels, which the emulator runs
    with one CPU thread per CUDA thread (slow); the op checks below cover 'direct' and 'auto'."""
    engine.set_conv_algo("im2col")
    yield
    engine.set_conv_algo("auto")


def host(t: engine.Tensor) -> np.ndarray:
    assert t.device == CUDA, f"expected a cuda tensor, got one on {t.device}"
    return t.detach().cpu().numpy()


def pair(array: np.ndarray, requires_grad=True):
    """The same float64 values as a CPU leaf and a cuda leaf."""
    cpu = engine.tensor(array, dtype=engine.float64, requires_grad=requires_grad)
    gpu = engine.tensor(array, dtype=engine.float64, device="cuda", requires_grad=requires_grad)
    return cpu, gpu


# --- availability, creation, moves ------------------------------------------------------------


def test_cuda_is_available():
    assert engine.cuda.is_available()
    assert engine.cuda.device_count() >= 1
    engine.cuda.synchronize()
    assert str(engine.device("cuda")) == "cuda:0" and engine.device("cuda:0") == CUDA


@pytest.mark.parametrize("make", [
    lambda d: engine.zeros(2, 3, device=d),
    lambda d: engine.ones((2, 3), dtype=engine.float64, device=d),
    lambda d: engine.full((4,), 2.5, device=d),
    lambda d: engine.arange(5, device=d),
    lambda d: engine.linspace(0, 1, 7, device=d),
    lambda d: engine.tensor([[1.0, -2.0], [3.0, 4.0]], device=d),
    lambda d: engine.empty(3, device=d).fill_(7),
], ids=["zeros", "ones", "full", "arange", "linspace", "tensor", "empty"])
def test_creation_on_cuda(make):
    cpu, gpu = make("cpu"), make("cuda")
    assert gpu.device == CUDA and gpu.is_cuda and type(gpu._data).__module__.startswith("cupy")
    assert gpu.dtype == cpu.dtype and gpu.shape == cpu.shape
    np.testing.assert_array_equal(host(gpu), cpu.numpy())


def test_random_creation_on_cuda_draws_the_same_values():
    engine.manual_seed(3)
    cpu = engine.randn(4, 5)
    engine.manual_seed(3)
    gpu = engine.randn(4, 5, device="cuda")
    np.testing.assert_array_equal(host(gpu), cpu.numpy())
    assert engine.zeros_like(gpu).device == CUDA and engine.ones_like(gpu).device == CUDA


def test_the_default_device_is_chosen_apart_from_the_kernels():
    from engine import backend

    backend.set_backend("cupy")  # cuda arrays always run on cupy: choosing it changes nothing else
    assert engine.zeros(2).device == engine.device("cpu")
    engine.set_default_device("cuda")
    try:
        assert backend.get_backend() == "cupy"
        assert engine.zeros(2).device == CUDA and engine.tensor([1.0]).device == CUDA
        assert engine.randn(3).device == CUDA and engine.arange(3).device == CUDA
        assert engine.zeros(2, device="cpu").device == engine.device("cpu")
    finally:
        engine.set_default_device("cpu")
    assert engine.zeros(2).device == engine.device("cpu")


def test_to_cuda_and_back_round_trips():
    x = engine.randn(3, 4, dtype=engine.float64)
    y = x.to("cuda")
    assert y.device == CUDA and y.cuda().device == CUDA and x.cuda().device == CUDA
    back = y.cpu()
    assert back.device == engine.device("cpu") and type(back._data) is np.ndarray
    np.testing.assert_array_equal(back.numpy(), x.numpy())
    assert y.to("cuda") is y and x.to("cpu") is x  # nothing to do: the same tensor
    z = x.to("cuda", engine.float32)
    assert z.device == CUDA and z.dtype == engine.float32
    assert engine.tensor(y).device == engine.device("cpu")  # tensor() of a cuda tensor: a CPU copy
    with pytest.raises(TypeError, match="cuda"):
        y.numpy()
    count = engine.cuda.device_count()
    with pytest.raises(RuntimeError, match=f"cuda:{count}.*{count} CUDA device"):
        x.to(f"cuda:{count}")  # one past the last device
    assert y.tolist() == x.tolist() and float(y[0, 0]) == float(x[0, 0]) and y.sum().item() == x.sum().item()


def test_gradient_flows_back_through_a_device_move():
    x = engine.tensor([1.0, 2.0, 3.0], dtype=engine.float64, requires_grad=True)
    (x.to("cuda") * x.to("cuda")).sum().backward()
    assert x.grad.device == engine.device("cpu")
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0, 6.0])


def test_copy_and_setitem_across_devices():
    gpu = engine.zeros(2, 2, dtype=engine.float64, device="cuda")
    gpu.copy_(engine.ones(2, 2, dtype=engine.float64))
    gpu[0] = engine.tensor([5.0, 6.0], dtype=engine.float64)
    assert gpu.device == CUDA
    np.testing.assert_array_equal(host(gpu), [[5.0, 6.0], [1.0, 1.0]])
    cpu = engine.zeros(2, 2, dtype=engine.float64)
    cpu.copy_(gpu)
    np.testing.assert_array_equal(cpu.numpy(), host(gpu))


@pytest.mark.usefixtures("im2col")
def test_module_to_cuda_moves_every_parameter_and_back():
    model = lenet()
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    assert model.to("cuda") is model
    assert {p.device for p in model.parameters()} == {CUDA}
    model.to(engine.device("cpu"))
    assert {p.device for p in model.parameters()} == {engine.device("cpu")}
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    model.cuda().double()
    assert {(p.device, p.dtype) for p in model.parameters()} == {(CUDA, engine.float64)}
    nn.init.xavier_uniform_(model[0].weight)
    nn.init.constant_(model[0].bias, 0.5)
    assert model[0].weight.device == CUDA and host(model[0].bias).tolist() == [0.5] * 6
    model.load_state_dict({k: v for k, v in before.items()})  # numpy values into cuda parameters
    assert {p.device for p in model.parameters()} == {CUDA}
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(host(v), before[k])


# --- mixing devices -----------------------------------------------------------------------------


@pytest.mark.parametrize("op", [
    lambda a, b: a + b,
    lambda a, b: a @ b,
    lambda a, b: F.linear(a, b),
    lambda a, b: F.conv2d(a.reshape(1, 1, 3, 3), b.reshape(1, 1, 3, 3)),
    lambda a, b: F.mse_loss(a, b),
], ids=["add", "matmul", "linear", "conv2d", "mse_loss"])
def test_mixing_devices_raises_naming_both(op):
    a = engine.ones(3, 3)
    b = engine.ones(3, 3, device="cuda")
    for first, second in ((a, b), (b, a)):
        with pytest.raises(RuntimeError) as info:
            op(first, second)
        message = str(info.value)
        assert "cpu" in message and "cuda:0" in message, message


@pytest.mark.usefixtures("im2col")
def test_model_on_cuda_with_a_cpu_batch_raises():
    model = lenet().to("cuda")
    with pytest.raises(RuntimeError, match="cpu.*cuda:0|cuda:0.*cpu"):
        model(engine.zeros(2, 1, 28, 28))


# --- ops: cuda equals cpu (float64) ----------------------------------------------------------


def _compare(fn, *arrays, grad_out_seed=0):
    """Forward and all input gradients of ``fn`` on cuda against the CPU."""
    cpu_in, gpu_in = zip(*(pair(a) for a in arrays))
    y_cpu, y_gpu = fn(*cpu_in), fn(*gpu_in)
    np.testing.assert_allclose(host(y_gpu), y_cpu.detach().numpy(), **TIGHT)
    gy = np.random.default_rng(grad_out_seed).standard_normal(tuple(y_cpu.shape))
    y_cpu.backward(engine.tensor(gy, dtype=engine.float64))
    y_gpu.backward(engine.tensor(gy, dtype=engine.float64, device="cuda"))
    for c, g in zip(cpu_in, gpu_in):
        np.testing.assert_allclose(host(g.grad), c.grad.numpy(), **TIGHT)


X = np.random.default_rng(0).standard_normal((3, 2, 9, 8))  # read only


@pytest.mark.parametrize("algo", ["im2col", "direct", "auto"])
@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), ((1, 2), (2, 0), (2, 1))])
def test_conv2d_cuda_equals_cpu(algo, stride, padding, dilation):
    rng = np.random.default_rng(1)  # the same weights whatever ran before
    w, b = rng.standard_normal((4, 2, 3, 2)), rng.standard_normal(4)
    engine.set_conv_algo(algo)
    try:
        _compare(lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation), X, w, b)
        _compare(lambda x, w: F.conv2d(x, w, None, stride=stride, padding=padding, dilation=dilation), X, w)
    finally:
        engine.set_conv_algo("auto")


@pytest.mark.parametrize("fn", [
    lambda x: F.avg_pool2d(x, 2),
    lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    lambda x: F.max_pool2d(x, 2),
    lambda x: F.max_pool2d(x, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), ceil_mode=True),
    F.sigmoid, F.relu, F.tanh,
    lambda x: x.exp().log().sqrt().sum(dim=1).mean(),
    lambda x: F.softmax(x.max(dim=2)[0].abs().flatten(1), dim=1),
    lambda x: x.permute(0, 2, 3, 1)[:, 1:5, ::2].reshape(3, -1).T,
], ids=["avg", "avg-options", "max", "max-options", "sigmoid", "relu", "tanh", "exp-log-sqrt-sum-mean",
        "max-abs-softmax", "permute-slice-reshape"])
def test_pool_activation_and_elementwise_cuda_equals_cpu(fn):
    _compare(fn, np.abs(X) + 0.5 if fn is not F.relu else X)


def test_linear_and_cross_entropy_cuda_equal_cpu():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    target = np.array([0, 2, 1, 2, 0])
    _compare(lambda x, w, b: F.linear(x, w, b), x, w, b)
    for reduction in ("mean", "sum", "none"):
        def loss(x, w, b, reduction=reduction):
            t = engine.tensor(target, device=x.device)
            return F.cross_entropy(F.linear(x, w, b), t, reduction=reduction)
        _compare(loss, x, w, b)
    _compare(lambda x: F.log_softmax(x, dim=1), x)


# --- training --------------------------------------------------------------------------------


def _lenet(seed, device, activation="sigmoid", pool="avg"):
    engine.manual_seed(seed)
    return lenet(activation=activation, pool=pool).double().to(device)


@pytest.mark.parametrize("activation,pool,opt", [("sigmoid", "avg", "sgd"), ("relu", "max", "adam")])
@pytest.mark.usefixtures("im2col")
def test_lenet_steps_on_cuda_match_cpu(activation, pool, opt):
    models = {d: _lenet(1, d, activation, pool) for d in ("cpu", "cuda")}
    make = {"sgd": lambda p: optim.SGD(p, lr=0.1, momentum=0.9), "adam": lambda p: optim.Adam(p, lr=1e-3)}[opt]
    optimizers = {d: make(m.parameters()) for d, m in models.items()}
    rng = np.random.default_rng(2)
    criterion = nn.CrossEntropyLoss()
    for _ in range(3):
        X, y = rng.standard_normal((8, 1, 28, 28)), rng.integers(0, 10, 8)
        losses = {}
        for d, model in models.items():
            optimizers[d].zero_grad()
            loss = criterion(model(engine.tensor(X, dtype=engine.float64, device=d)), engine.tensor(y, device=d))
            loss.backward()
            optimizers[d].step()
            assert loss.device == engine.device(d)
            losses[d] = loss.item()
        assert losses["cuda"] == pytest.approx(losses["cpu"], rel=1e-12)
    for (name, p_cpu), p_gpu in zip(models["cpu"].named_parameters(), models["cuda"].parameters()):
        np.testing.assert_allclose(host(p_gpu), p_cpu.detach().numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def _dataset(n=70):
    rng = np.random.default_rng(5)
    return rng.random((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)


def test_dataloader_on_cuda_yields_the_cpu_batches_on_cuda():
    data = _dataset()
    loaders = {d: DataLoader(data, batch_size=32, shuffle=True, seed=4, device=d) for d in ("cpu", "cuda")}
    for epoch in (0, 1):
        pairs = list(zip(loaders["cpu"].batches(epoch), loaders["cuda"].batches(epoch, start=0)))
        assert len(pairs) == 3
        for (Xc, yc), (Xg, yg) in pairs:
            assert Xg.device == CUDA and yg.device == CUDA
            np.testing.assert_array_equal(host(Xg), Xc.numpy())
            np.testing.assert_array_equal(host(yg), yc.numpy())
    plain = DataLoader(data, batch_size=64, device=engine.device("cuda"))
    X, y = next(iter(plain))
    assert X.device == CUDA and y.device == CUDA and X.shape == (64, 1, 28, 28)


@pytest.mark.usefixtures("im2col")
def test_evaluate_on_cuda_equals_cpu():
    X, y = _dataset()
    data = X.astype(np.float64), y
    results = {}
    for d in ("cpu", "cuda"):
        model = _lenet(7, d)
        results[d] = evaluate(model, DataLoader(data, batch_size=32, device=d), num_classes=10)
    (loss_c, acc_c, conf_c), (loss_g, acc_g, conf_g) = results["cpu"], results["cuda"]
    assert loss_g == pytest.approx(loss_c, rel=1e-12) and acc_g == acc_c
    assert type(conf_g) is np.ndarray
    np.testing.assert_array_equal(conf_g, conf_c)


@pytest.mark.usefixtures("im2col")
def test_checkpoint_of_a_cuda_model_restores_on_cuda(tmp_path):
    model = _lenet(8, "cuda")
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    X, y = _dataset(16)
    nn.CrossEntropyLoss()(model(engine.tensor(X, dtype=engine.float64, device="cuda")),
                          engine.tensor(y, device="cuda")).backward()
    opt.step()
    save_checkpoint(tmp_path / "c.npz", model, opt, {"epoch": 1})
    other = _lenet(9, "cuda")
    other_opt = optim.SGD(other.parameters(), lr=0.1, momentum=0.9)
    assert load_checkpoint(tmp_path / "c.npz", other, other_opt)["epoch"] == 1
    for p, q in zip(model.parameters(), other.parameters()):
        assert q.device == CUDA
        np.testing.assert_array_equal(host(q), host(p))
    for p in other.parameters():
        buf = other_opt.state[id(p)]["momentum_buffer"]
        assert type(buf).__module__.startswith("cupy"), type(buf)


# --- the training script -----------------------------------------------------------------------


def _train_lenet(device, data_dir, logdir):
    command = [sys.executable, "-m", "engine.train_lenet", "--device", device, "--epochs", "1",
               "--limit-train", "512", "--limit-test", "256", "--conv-algo", "im2col", "--quiet",
               "--data-dir", str(data_dir), "--logdir", str(logdir)]
    result = subprocess.run(command, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    run_dir = next(pathlib.Path(logdir).glob("exp*"))
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return output, json.loads((run_dir / "config.json").read_text()), rows


def test_train_lenet_on_cuda_matches_cpu(tmp_path):
    """``--device cuda`` (im2col: see the im2col fixture) trains and reports cuda, with the CPU's metrics."""
    train, test = fm.find_split("train"), fm.find_split("test")
    if train is None or test is None or train[0].parent != test[0].parent:
        pytest.skip(f"FashionMNIST files not found in {', '.join(map(str, fm.candidate_dirs()))}")
    data_dir = train[0].parent
    output, config, rows = _train_lenet("cuda", data_dir, tmp_path / "cuda")
    assert "on cuda (cupy" in output, output[-2000:]
    assert config["device"] == "cuda" and config["backend"] == "cupy"
    _, cpu_config, cpu_rows = _train_lenet("cpu", data_dir, tmp_path / "cpu")
    assert cpu_config["device"] == "cpu" and len(rows) == len(cpu_rows) == 1
    for column in ("train_loss", "test_loss", "train_acc", "test_acc"):
        assert float(rows[0][column]) == pytest.approx(float(cpu_rows[0][column]), rel=1e-3, abs=1e-3), column
