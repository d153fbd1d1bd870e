"""``python -m engine.train_lenet`` on a small slice of the real FashionMNIST: flags, errors, logs,
checkpoints, resume equivalence, Ctrl-C and divergence.

Most runs call ``main(argv)`` in-process (fast: the engine is imported once); two run the real
``python -m`` entry point to check exit status and output as a user sees them.
"""
import contextlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import nn
from engine.data import fashion_mnist as fm
from engine.models import lenet
from engine.train_lenet import build_parser, main, resolve_config
from engine.training.checkpoint import read_checkpoint
from engine.training.progress import Reporter

ROOT = Path(__file__).resolve().parents[1]
FOUND = fm.find_split("train")  # the usual search: $FASHION_MNIST_DIR, ./data/FashionMNIST, the Debian package
pytestmark = pytest.mark.skipif(
    FOUND is None, reason="FashionMNIST not found (apt-get install dataset-fashion-mnist, or set $FASHION_MNIST_DIR)")

# 320 training images in batches of 64: 5 steps per epoch; 100 test images.
SMALL = ["--limit-train", "320", "--limit-test", "100", "--batch-size", "64", "--seed", "5"]
STEPS = 5
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc")


@pytest.fixture(scope="module", autouse=True)
def data_dir_in_environment():
    """Runs happen in temporary directories: point $FASHION_MNIST_DIR at the data, absolutely."""
    previous = os.environ.get(fm.ENV_VAR)
    os.environ[fm.ENV_VAR] = str(FOUND[0].parent.resolve())
    yield
    if previous is None:
        del os.environ[fm.ENV_VAR]
    else:
        os.environ[fm.ENV_VAR] = previous


def run_cli(cwd: Path, *argv: str, entry=None):
    """``main(argv)`` (or ``entry(argv)``, e.g. engine.train's) in ``cwd``; returns (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = (entry or main)(list(argv))
            except SystemExit as exc:
                code = exc.code
    finally:
        os.chdir(previous)
    return code, out.getvalue(), err.getvalue()


def metrics(history):
    return [{k: row[k] for k in ("epoch",) + METRICS} for row in history]


def parameters(checkpoint: Path):
    return read_checkpoint(checkpoint)["model"]


def read_scalars(run_dir: Path):
    """{tag: [(step, value)]} from the TensorBoard event files (TFRecord framing, Event protos)."""
    from tensorboardX.proto.event_pb2 import Event

    timed = {}
    for path in run_dir.glob("events.out.tfevents.*"):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                timed.setdefault(value.tag, []).append((event.wall_time, event.step, value.simple_value))
    # in the order they were written, as TensorBoard shows them (file names of two runs started in the same
    # second sort by process id, not by time)
    return {tag: [(step, value) for _, step, value in sorted(points)] for tag, points in timed.items()}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """One uninterrupted 2-epoch run; tests copy its directory rather than change it."""
    cwd = tmp_path_factory.mktemp("baseline")
    code, out, err = run_cli(cwd, *SMALL, "--epochs", "2")
    assert code == 0, err
    run_dir = cwd / "runs" / "exp1"
    return {"cwd": cwd, "run_dir": run_dir, "out": out, "err": err,
            "history": read_checkpoint(run_dir / "checkpoint.npz")["meta"]["history"]}


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """The same run stopped after its first epoch (tests copy it before resuming)."""
    cwd = tmp_path_factory.mktemp("one_epoch")
    code, _, err = run_cli(cwd, *SMALL, "--epochs", "1")
    assert code == 0, err
    return cwd / "runs" / "exp1"


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, target)
    return target


# ------------------------------------------------------------------ flags
def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--epochs", "--batch-size", "--lr", "--optimizer", "--activation", "--pool", "--conv-algo",
                 "--device", "--seed", "--data-dir", "--logdir", "--checkpoint", "--resume", "--eval-only",
                 "--num-threads", "--quiet", "--limit-train", "--limit-test", "--download"):
        assert flag in text, flag
    assert "sgd,momentum" in text.replace(" ", "") or "{adam,momentum,sgd}" in text


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "--epochs: expected a positive integer, got 0"),
    (["--epochs", "two"], "--epochs: expected a positive integer, got 'two'"),
    (["--batch-size", "-3"], "--batch-size: expected a positive integer"),
    (["--lr", "-0.1"], "--lr: expected a positive finite number"),
    (["--lr", "nan"], "--lr: expected a positive finite number"),
    (["--lr", "inf"], "--lr: expected a positive finite number"),
    (["--optimizer", "rmsprop"], "--optimizer: invalid choice: 'rmsprop'"),
    (["--activation", "tanh"], "--activation: invalid choice"),
    (["--pool", "min"], "--pool: invalid choice"),
    (["--conv-algo", "fft"], "--conv-algo: invalid choice"),
    (["--device", "tpu"], "--device: invalid choice"),
    (["--seed", "-1"], "--seed: expected an integer >= 0"),
    (["--num-threads", "0"], "--num-threads: expected a positive integer"),
    (["--limit-train", "0"], "--limit-train: expected a positive integer"),
    (["--eval-only"], "--eval-only needs --resume"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_values_are_rejected_by_argparse(tmp_path, argv, message):
    code, out, err = run_cli(tmp_path, *argv)
    assert code == 2
    assert message in err and "usage:" in err
    assert not (tmp_path / "runs").exists()


def test_no_flags_is_the_seeds_configuration_for_10_epochs():
    args = build_parser().parse_args([])
    config = resolve_config(args, None)
    assert config == {"model": "lenet", "resize": None, "batch_size": 256, "optimizer": "sgd",
                      "activation": "sigmoid", "pool": "avg", "seed": 0, "limit_train": None, "limit_test": None,
                      "lr": 0.9, "epochs": 10, "conv_algo": "auto"}
    assert args.device == "auto" and args.logdir == Path("runs") and not args.quiet


def test_model_is_the_seeds_lenet_with_xavier_uniform_weights():
    engine.manual_seed(0)
    model = lenet()
    kinds = [type(m).__name__ for m in (model[i] for i in range(12))]
    assert kinds == ["Conv2d", "Sigmoid", "AvgPool2d", "Conv2d", "Sigmoid", "AvgPool2d", "Flatten",
                     "Linear", "Sigmoid", "Linear", "Sigmoid", "Linear"]
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes["0.weight"] == (6, 1, 5, 5) and shapes["3.weight"] == (16, 6, 5, 5)
    assert shapes["7.weight"] == (120, 400) and shapes["11.weight"] == (10, 84)
    # Xavier-uniform: U(-b, b), b = sqrt(6 / (fan_in + fan_out)); fan = channels * kernel area for conv.
    for name, fan_in, fan_out in [("0.weight", 25, 150), ("3.weight", 150, 400), ("7.weight", 400, 120)]:
        w = dict(model.named_parameters())[name].detach().numpy()
        bound = np.sqrt(6 / (fan_in + fan_out))
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound, name
        assert abs(w.std() - bound / np.sqrt(3)) < 0.15 * bound / np.sqrt(3), name
    relu_max = lenet(activation="relu", pool="max")
    assert isinstance(relu_max[1], nn.ReLU) and isinstance(relu_max[2], nn.MaxPool2d)


def test_lenet_factory_takes_the_number_of_classes_and_names_a_bad_argument():
    model = lenet(num_classes=3, conv_algo="direct")
    assert model(engine.zeros(2, 1, 28, 28)).shape == (2, 3)
    assert model[0].algo == "direct" and model[3].algo == "direct"
    for kwargs, message in [({"num_classes": 0}, "num_classes must be a positive int, got 0"),
                            ({"activation": "tanh"}, "activation must be one of sigmoid, relu, got 'tanh'"),
                            ({"pool": "min"}, "pool must be one of avg, max, got 'min'"),
                            ({"conv_algo": "fft"}, "conv_algo must be one of auto, im2col, direct, got 'fft'")]:
        with pytest.raises(ValueError, match=message):
            lenet(**kwargs)


# ------------------------------------------------------------------ a run and its outputs
def test_run_prints_epoch_lines_and_summary(baseline):
    lines = baseline["out"].splitlines()
    assert lines[0].startswith("LeNet (sigmoid, avg pool, 61,706 parameters) on FashionMNIST: 320 train / 100 test")
    epoch_lines = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epoch_lines] == ["1/2", "2/2"]
    for line in epoch_lines:
        assert "train loss" in line and "train acc" in line and "test acc" in line and " s (train " in line
    assert lines[-2].startswith("done: 2 epochs in ")
    assert "checkpoint: runs/exp1/checkpoint.npz" in lines[-1]
    assert "\x1b" not in baseline["out"]  # not a terminal: no control sequences
    assert baseline["err"] == ""


def test_run_writes_config_metrics_tensorboard_and_figures(baseline):
    run_dir, history = baseline["run_dir"], baseline["history"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["lr"] == 0.9 and config["batch_size"] == 64 and config["train_images"] == 320
    assert config["device"] == "cpu" and config["seed"] == 5 and config["epochs"] == 2

    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0] == ("epoch,train_loss,train_acc,test_loss,test_acc,lr,epoch_seconds,train_seconds,"
                       "images_per_second")
    assert [int(r.split(",")[0]) for r in rows[1:]] == [1, 2]
    for row, line in zip(history, rows[1:]):
        values = [float(v) for v in line.split(",")]
        np.testing.assert_allclose(values[1:5], [row[k] for k in METRICS], rtol=1e-5)
        assert 0 <= row["train_acc"] <= 1 and 0 <= row["test_acc"] <= 1 and row["train_loss"] > 0

    scalars = read_scalars(run_dir)
    for tag, column in [("metrics/train_loss", "train_loss"), ("metrics/train_acc", "train_acc"),
                        ("metrics/test_acc", "test_acc"), ("train/lr", "lr"),
                        ("time/epoch_seconds", "epoch_seconds"), ("time/train_seconds", "train_seconds")]:
        assert [step for step, _ in scalars[tag]] == [1, 2], tag
        np.testing.assert_allclose([v for _, v in scalars[tag]], [row[column] for row in history], rtol=1e-6)

    import matplotlib.image

    for name, min_size in [("curves.png", (300, 400)), ("confusion_matrix.png", (500, 600)),
                           ("kernels.png", (400, 600))]:
        image = matplotlib.image.imread(run_dir / name)
        assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1], name
        assert image[..., :3].std() > 0.05, f"{name} is blank"

    ckpt = read_checkpoint(run_dir / "checkpoint.npz")
    assert ckpt["meta"]["epoch"] == 2 and ckpt["meta"]["step"] == 0
    assert set(ckpt["model"]) == {f"{i}.{p}" for i in (0, 3, 7, 9, 11) for p in ("weight", "bias")}


def test_quiet_prints_only_the_summary_and_runs_get_new_exp_directories(tmp_path):
    (tmp_path / "logs" / "exp7").mkdir(parents=True)
    code, out, err = run_cli(tmp_path, *SMALL, "--epochs", "1", "--quiet", "--logdir", "logs")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("done: 1 epochs") and lines[1].startswith("logs: logs/exp8/")
    assert (tmp_path / "logs" / "exp8" / "metrics.csv").is_file()


def test_terminal_mode_shows_live_bars_with_rate_and_loss():
    from rich.console import Console

    buffer = io.StringIO()
    reporter = Reporter(epochs=2, steps_per_epoch=4, console=Console(file=buffer, force_terminal=True, width=120))
    assert reporter.live
    reporter.start(first_epoch=0)
    reporter.epoch_start(1, 0)
    reporter.steps(3, 1234.0, 0.5)
    reporter.progress.refresh()
    row = {"epoch": 1, "train_loss": 0.5, "train_acc": 0.8, "test_acc": 0.75, "epoch_seconds": 2.0,
           "train_seconds": 1.5, "images_per_second": 1000.0}
    reporter.epoch_end(row)
    reporter.stop()
    text = buffer.getvalue()
    assert "1,234 img/s" in text and "loss 0.5000" in text and "3/4" in text
    assert "epoch 1/2  train loss 0.5000  train acc 0.8000  test acc 0.7500  2.0 s (train 1.5 s, 1000 img/s)" in text
    quiet = Reporter(epochs=2, steps_per_epoch=4, quiet=True, console=Console(file=io.StringIO(), force_terminal=True))
    assert not quiet.live


# ------------------------------------------------------------------ resume
def test_resume_after_an_epoch_equals_the_uninterrupted_run(baseline, one_epoch, tmp_path):
    run_dir = copy_run(one_epoch, tmp_path)
    code, out, err = run_cli(tmp_path, "--resume", str(run_dir / "checkpoint.npz"), "--epochs", "2")
    assert code == 0, err
    assert "resuming from" in out and "epoch 2/2" in out and "epoch 1/2" not in out
    history = read_checkpoint(run_dir / "checkpoint.npz")["meta"]["history"]
    assert metrics(history) == metrics(baseline["history"])
    expected = parameters(baseline["run_dir"] / "checkpoint.npz")
    for name, value in parameters(run_dir / "checkpoint.npz").items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    # The resumed run keeps logging into the same directory: two CSV rows, TensorBoard steps 1 and 2.
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3
    assert [s for s, _ in read_scalars(run_dir)["metrics/test_acc"]] == [1, 2]


def test_ctrl_c_mid_epoch_saves_and_the_resumed_run_matches(baseline, tmp_path, monkeypatch):
    """A real SIGINT after step 2 of epoch 2: the run stops cleanly after that step, saves, exits 130;
    resuming replays the remaining batches and ends exactly like the uninterrupted run."""
    calls = []
    original = Reporter.steps

    def steps_then_ctrl_c(self, done, *rest):
        original(self, done, *rest)
        calls.append(done)
        if len(calls) == STEPS + 2:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Reporter, "steps", steps_then_ctrl_c)
    code, out, err = run_cli(tmp_path, *SMALL, "--epochs", "2")
    monkeypatch.setattr(Reporter, "steps", original)
    assert code == 130
    checkpoint = tmp_path / "runs" / "exp1" / "checkpoint.npz"
    assert "interrupted at epoch 2, step 2; saved runs/exp1/checkpoint.npz" in err
    assert f"--resume {Path('runs/exp1/checkpoint.npz')}" in err
    meta = read_checkpoint(checkpoint)["meta"]
    assert (meta["epoch"], meta["step"]) == (1, 2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    code, out, err = run_cli(tmp_path, "--resume", "runs/exp1/checkpoint.npz")
    assert code == 0, err
    assert "1 epoch(s) complete; epoch 2 continues after step 2" in out
    history = read_checkpoint(checkpoint)["meta"]["history"]
    assert metrics(history) == metrics(baseline["history"])
    expected = parameters(baseline["run_dir"] / "checkpoint.npz")
    for name, value in parameters(checkpoint).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)


def test_ctrl_c_during_evaluation_redoes_only_the_evaluation(baseline, tmp_path, monkeypatch):
    def evaluating_then_ctrl_c(self):
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Reporter, "evaluating", evaluating_then_ctrl_c)
    code, out, err = run_cli(tmp_path, *SMALL, "--epochs", "1")
    monkeypatch.undo()
    assert code == 130 and f"interrupted at epoch 1, step {STEPS}" in err
    checkpoint = tmp_path / "runs" / "exp1" / "checkpoint.npz"
    meta = read_checkpoint(checkpoint)["meta"]
    assert (meta["epoch"], meta["step"], meta["history"]) == (0, STEPS, [])

    code, out, err = run_cli(tmp_path, "--resume", str(checkpoint))
    assert code == 0, err
    history = read_checkpoint(checkpoint)["meta"]["history"]
    assert metrics(history) == metrics(baseline["history"][:1])


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_checkpoint_restores_optimizer_state(tmp_path, optimizer):
    """Momentum buffers / Adam moments and step counts survive save + load: the restored pair takes
    the same next step as the original."""
    from engine.train_lenet import DEFAULT_LR, make_optimizer
    from engine.training.checkpoint import load_checkpoint, save_checkpoint

    rng = np.random.default_rng(0)
    x = engine.tensor(rng.random((8, 1, 28, 28), dtype=np.float32))
    y = engine.tensor(rng.integers(0, 10, 8))
    loss_fn = nn.CrossEntropyLoss()

    def step(model, opt):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    engine.manual_seed(1)
    model = lenet()
    opt = make_optimizer(optimizer, model.parameters(), DEFAULT_LR[optimizer])
    step(model, opt)
    step(model, opt)
    save_checkpoint(tmp_path / "c.npz", model, opt, {"note": "test"})
    state = read_checkpoint(tmp_path / "c.npz")["optimizer"]["state"]
    assert len(state) == 10 and all(state.values()), "the optimizer's state was not saved"

    engine.manual_seed(2)
    restored = lenet()
    restored_opt = make_optimizer(optimizer, restored.parameters(), 123.0)
    assert load_checkpoint(tmp_path / "c.npz", restored, restored_opt)["note"] == "test"
    assert restored_opt.param_groups[0]["lr"] == DEFAULT_LR[optimizer]
    step(model, opt)
    step(restored, restored_opt)
    for (name, a), b in zip(model.named_parameters(), restored.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy(), err_msg=name)


def test_resume_latest_and_nothing_left_to_do(one_epoch, tmp_path):
    run_dir = copy_run(one_epoch, tmp_path)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    code, out, err = run_cli(tmp_path, "--resume", "latest", "--epochs", "1")
    assert code == 0, err
    assert out == (f"nothing to do: {Path('runs/exp1/checkpoint.npz')} already has 1 epochs; "
                   "pass --epochs > 1 to train further\n")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    code, out, err = run_cli(tmp_path / "runs", "--resume", "latest")
    assert code == 1 and "--resume latest: no checkpoint under runs/exp*/" in err


def test_resume_rejects_changed_settings(one_epoch, tmp_path):
    run_dir = copy_run(one_epoch, tmp_path)
    code, out, err = run_cli(tmp_path, "--resume", str(run_dir / "checkpoint.npz"), "--batch-size", "32",
                             "--activation", "relu")
    assert code == 1
    assert "--batch-size 32 (the checkpoint has 64)" in err and "--activation relu" in err
    assert "Traceback" not in err


def test_eval_only_reports_the_checkpoints_test_accuracy(baseline):
    checkpoint = baseline["run_dir"] / "checkpoint.npz"
    code, out, err = run_cli(baseline["cwd"], "--resume", str(checkpoint), "--eval-only", "--limit-test", "100")
    assert code == 0, err
    assert f"test acc {baseline['history'][-1]['test_acc']:.4f} (100 images)" in out
    assert "T-shirt/top" in out and "Ankle boot" in out


# ------------------------------------------------------------------ errors
def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    code, out, err = run_cli(tmp_path, "--resume", "bad.npz")
    assert code == 1
    assert err.startswith("error: bad.npz: not a readable checkpoint") and "Traceback" not in err
    code, out, err = run_cli(tmp_path, "--resume", "missing.npz")
    assert code == 1 and "missing.npz: no such checkpoint file" in err


def test_missing_data_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    code, out, err = run_cli(tmp_path, *SMALL, "--data-dir", "empty")
    assert code == 1
    assert err.startswith("error: FashionMNIST test files") and "not found" in err
    assert "apt-get install dataset-fashion-mnist" in err and "--data-dir" in err and "--download" in err
    assert "Traceback" not in err


def test_download_flag_fetches_verifies_and_trains(tmp_path, monkeypatch):
    """--download with no data anywhere: the files come from the mirror (served locally here)."""
    source = FOUND[0].parent
    fetched = []

    def fetch(url):
        fetched.append(url)
        return (source / url.rsplit("/", 1)[1]).read_bytes()

    monkeypatch.setattr(fm, "SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(fm, "fetch_url", fetch)
    monkeypatch.delenv(fm.ENV_VAR, raising=False)
    code, out, err = run_cli(tmp_path, *SMALL, "--epochs", "1", "--quiet", "--download")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "data" / "FashionMNIST").iterdir()) == sorted(
        n + ".gz" for split in ("train", "test") for n in fm.SPLITS[split][:2])
    assert len(fetched) == 4 and all(u.startswith(fm.MIRRORS[0]) for u in fetched)


@pytest.mark.skipif(engine.cuda.is_available(), reason="a GPU is usable here: --device cuda would train")
def test_device_cuda_without_a_gpu_says_why(tmp_path):
    code, out, err = run_cli(tmp_path, *SMALL, "--device", "cuda")
    assert code == 1
    assert err.startswith("error: backend 'cupy' is not available: ") and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_divergence_stops_and_keeps_the_last_good_checkpoint(one_epoch, tmp_path):
    run_dir = copy_run(one_epoch, tmp_path)
    checkpoint = run_dir / "checkpoint.npz"
    before = checkpoint.read_bytes()
    code, out, err = run_cli(tmp_path, "--resume", str(checkpoint), "--epochs", "3", "--lr", "1e38")
    assert code == 3
    assert "training diverged: the training loss became" in err and "at epoch 2, step 2" in err
    assert "Try a lower learning rate, e.g. --lr 1e+37" in err
    assert f"The last good checkpoint, {checkpoint}, is kept" in err
    assert checkpoint.read_bytes() == before
    assert "Traceback" not in err and "RuntimeWarning" not in err


# ------------------------------------------------------------------ the real command line
def run_module(cwd: Path, *argv: str, env=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "engine.train_lenet", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_module_entry_point_reports_corrupt_data_without_traceback(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        raw = (FOUND[0].parent / name).read_bytes()
        (data / name).write_bytes(raw[: len(raw) // 3] if "images" in name else raw)
    result = run_module(tmp_path, "--data-dir", "data", "--limit-test", "10000", "--quiet")
    assert result.returncode == 1
    assert result.stderr.startswith("error: data/t10k-images-idx3-ubyte.gz: cannot be read, the file is truncated")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_cli_trains_quietly_without_importing_torch(tmp_path):
    script = ("import sys, engine.train_lenet as cli; code = cli.main(sys.argv[1:]); "
              "assert 'torch' not in sys.modules, 'the CLI imported torch'; sys.exit(code)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", script, *SMALL, "--epochs", "1", "--quiet"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("done: 1 epochs in ") and "\x1b" not in result.stdout
    assert (tmp_path / "runs" / "exp1" / "kernels.png").is_file()


# ------------------------------------------------------------------ issue 9: a CLI that never loses work
def test_a_divergence_in_the_last_step_keeps_the_finite_checkpoint(one_epoch, tmp_path):
    """lr 1e35: each step's loss is finite, but the epoch's last update makes the model's loss infinite (it used to
    be saved, and the run exited 0 with an inf loss in its history); nothing is saved now."""
    run_dir = copy_run(one_epoch, tmp_path)
    checkpoint = run_dir / "checkpoint.npz"
    before = checkpoint.read_bytes()
    code, out, err = run_cli(tmp_path, "--resume", str(checkpoint), "--epochs", "3", "--lr", "1e35")
    assert code == 3, err
    assert "training diverged: the training-set loss became inf at epoch 2, the end of the epoch" in err
    assert f"The last good checkpoint, {checkpoint}, is kept" in err
    assert checkpoint.read_bytes() == before
    ckpt = read_checkpoint(checkpoint)
    assert all(np.isfinite(v).all() for v in ckpt["model"].values())
    assert [row["epoch"] for row in ckpt["meta"]["history"]] == [1]


def test_save_checkpoint_refuses_a_non_finite_state(tmp_path):
    from engine.train_lenet import make_optimizer
    from engine.training.checkpoint import NonFiniteState, save_checkpoint

    model = lenet()
    optimizer = make_optimizer("sgd", model.parameters(), 0.1)
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, optimizer, {})
    before = path.read_bytes()
    with engine.no_grad():
        model[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteState, match="model/0.weight"):
        save_checkpoint(path, model, optimizer, {})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_an_explicit_data_dir_is_used_alone(tmp_path):
    """$FASHION_MNIST_DIR holds the data (the module fixture), yet an explicit --data-dir never falls back to it."""
    code, out, err = run_cli(tmp_path, *SMALL, "--data-dir", "nowhere")
    assert code == 1 and "Traceback" not in err
    assert err.startswith("error: FashionMNIST test files not found in nowhere (does not exist): missing "
                          "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]")
    partial = tmp_path / "partial"
    partial.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz"):
        shutil.copy(FOUND[0].parent / name, partial / name)
    code, out, err = run_cli(tmp_path, *SMALL, "--data-dir", "partial")
    assert code == 1 and "FashionMNIST train files not found in partial: missing train-labels-idx1-ubyte[.gz]" in err
    assert not (tmp_path / "runs").exists()


def test_config_records_the_file_read_for_each_split(baseline):
    files = json.loads((baseline["run_dir"] / "config.json").read_text())["data_files"]
    source = FOUND[0].parent.resolve()
    assert files == {split: {"images": str(source / (fm.SPLITS[split][0] + ".gz")),
                             "labels": str(source / (fm.SPLITS[split][1] + ".gz"))} for split in ("train", "test")}


KILL_AFTER_FIRST_CHECKPOINT = """
import os, signal, sys
import engine.train_lenet as cli
import engine.training.loop as loop

save = loop.save_checkpoint

def save_then_die(path, model, optimizer, meta):
    save(path, model, optimizer, meta)
    if meta["epoch"] == 1 and meta["step"] == 0:
        os.kill(os.getpid(), signal.SIGKILL)  # the epoch's checkpoint is on disk: nothing else may be missing

loop.save_checkpoint = save_then_die
sys.exit(cli.main(sys.argv[1:]))
"""


def test_kill_9_after_a_checkpoint_then_resume_latest_loses_no_tensorboard_point(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_CHECKPOINT, *SMALL, "--epochs", "1", "--quiet"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = tmp_path / "runs" / "exp1"
    assert [s for s, _ in read_scalars(run_dir)["metrics/test_acc"]] == [1]
    code, out, err = run_cli(tmp_path, "--resume", "latest", "--epochs", "2", "--quiet")
    assert code == 0, err
    scalars = read_scalars(run_dir)
    history = read_checkpoint(run_dir / "checkpoint.npz")["meta"]["history"]
    assert [s for s, _ in scalars["metrics/test_acc"]] == [1, 2]
    np.testing.assert_allclose([v for _, v in scalars["metrics/test_acc"]], [r["test_acc"] for r in history],
                               rtol=1e-6)


def one_line_error(err: str, start: str = "error: ") -> None:
    assert err.startswith(start) and err.count("\n") == 1 and "Traceback" not in err, err


# (No id says "cupy": the emulator run selects `-k cupy` and expects none of it to skip, while these skip on a GPU.)
@pytest.mark.parametrize("case", ["checkpoint is a directory", "logdir is a file", "num-threads 1000",
                                  "unknown backend", "GPU backend without a GPU"])
def test_bad_arguments_are_one_line_and_exit_2_before_any_work(tmp_path, monkeypatch, case):
    argv = list(SMALL)
    if case == "checkpoint is a directory":
        (tmp_path / "ckpts").mkdir()
        argv += ["--checkpoint", "ckpts"]
        expected = "error: --checkpoint ckpts: is a directory, expected a file name"
    elif case == "logdir is a file":
        (tmp_path / "logs").write_text("not a directory")
        argv += ["--logdir", "logs"]
        expected = "error: --logdir logs: is a file, expected a directory"
    elif case == "num-threads 1000":
        argv += ["--num-threads", "1000"]
        expected = "error: --num-threads 1000: "
    else:
        name = "bogus" if case == "unknown backend" else "cupy"
        if name == "cupy" and engine.cuda.is_available():
            pytest.skip("a GPU is usable here: ENGINE_BACKEND=cupy is valid")
        monkeypatch.setenv("ENGINE_BACKEND", name)
        expected = f"error: ENGINE_BACKEND={name!r}: must be one of cupy, numba, reference" if name == "bogus" \
            else "error: ENGINE_BACKEND='cupy': backend 'cupy' is not available"
    code, out, err = run_cli(tmp_path, *argv)
    assert code == 2 and err.startswith(expected), err
    one_line_error(err)
    assert not (tmp_path / "runs").exists() and out == ""


def engine_imports_with(name: str) -> bool:
    env = dict(os.environ, PYTHONPATH=str(ROOT), ENGINE_BACKEND=name)
    return subprocess.run([sys.executable, "-c", "import engine"], env=env, capture_output=True).returncode == 0


@pytest.mark.parametrize("name", ["bogus", "cupy"], ids=["unknown backend", "GPU backend without a GPU"])
def test_engine_backend_at_import_is_one_line_from_the_real_command(tmp_path, name):
    if name == "cupy" and engine.cuda.is_available():
        pytest.skip("a GPU is usable here: ENGINE_BACKEND=cupy is valid")
    assert engine_imports_with(name), f"`import engine` must not fail because of ENGINE_BACKEND={name}"
    result = run_module(tmp_path, *SMALL, env={"ENGINE_BACKEND": name})
    assert result.returncode == 2, result.stderr
    one_line_error(result.stderr, "error: ENGINE_BACKEND=")
    assert name in result.stderr.split(":")[1]


@pytest.mark.parametrize("flag", ["--logdir", "--checkpoint"])
def test_an_unwritable_output_is_one_line_exit_1_before_training(tmp_path, flag):
    """/sys refuses new files even to root (the tests may run as root, where chmod does not stop writes)."""
    argv = [*SMALL, flag, "/sys/runs" if flag == "--logdir" else "/sys/checkpoint.npz"]
    code, out, err = run_cli(tmp_path, *argv)
    assert code == 1 and err.startswith("error: /sys"), err
    one_line_error(err)
    assert "epoch 1/" not in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories: see the /sys case above")
def test_a_read_only_run_directory_is_one_line_exit_1(one_epoch, tmp_path):
    run_dir = copy_run(one_epoch, tmp_path)
    run_dir.chmod(0o555)
    try:
        code, out, err = run_cli(tmp_path, "--resume", str(run_dir / "checkpoint.npz"), "--epochs", "2")
    finally:
        run_dir.chmod(0o755)
    assert code == 1 and str(run_dir) in err
    one_line_error(err)


def test_a_full_disk_names_the_file_and_keeps_the_old_checkpoint(one_epoch, tmp_path, monkeypatch):
    import errno

    from engine.training import checkpoint as checkpoint_module

    def savez_on_a_full_disk(f, **arrays):
        f.write(b"PK\x03\x04 the first bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    run_dir = copy_run(one_epoch, tmp_path)
    checkpoint = run_dir / "checkpoint.npz"
    before = checkpoint.read_bytes()
    monkeypatch.setattr(checkpoint_module.np, "savez", savez_on_a_full_disk)
    code, out, err = run_cli(tmp_path, "--resume", str(checkpoint), "--epochs", "2")
    monkeypatch.undo()
    assert code == 1
    one_line_error(err, f"error: {checkpoint}: No space left on device")
    assert checkpoint.read_bytes() == before
    assert not list(run_dir.glob(".*.tmp"))


def rewrite_checkpoint(source: Path, target: Path, meta=None, arrays=None) -> Path:
    """A copy of ``source`` whose meta goes through ``meta(dict) -> JSON-able`` and arrays through ``arrays(dict)``."""
    with np.load(source) as archive:
        entries = {name: archive[name] for name in archive.files}
    document = json.loads(str(entries["meta"]))
    if meta is not None:
        document = meta(document)
    entries["meta"] = np.array(json.dumps(document))
    if arrays is not None:
        arrays(entries)
    np.savez(target, **entries)
    return target


def drop(key, where=lambda m: m):
    def change(meta):
        del where(meta)[key]
        return meta
    return change


def put(key, value, where=lambda m: m):
    def change(meta):
        where(meta)[key] = value
        return meta
    return change


DAMAGED_META = {
    "meta is a list": lambda m: [m],
    "no epoch": drop("epoch"),
    "epoch is a string": put("epoch", "1"),
    "negative step": put("step", -1),
    "partial_seconds is null": put("partial_seconds", None),
    "history is a dict": put("history", {}),
    "history row lacks test_acc": lambda m: (m["history"][0].pop("test_acc"), m)[1],
    "history longer than epochs": lambda m: (m["history"].append(m["history"][0]), m)[1],
    "no config": drop("config"),
    "config lacks batch_size": drop("batch_size", lambda m: m["config"]),
    "batch_size is a string": put("batch_size", "64", lambda m: m["config"]),
    "activation unknown": put("activation", "tanh", lambda m: m["config"]),
    "lr is negative": put("lr", -1, lambda m: m["config"]),
    "no param groups": drop("optim_param_groups"),
    "param group lr is a string": lambda m: (m["optim_param_groups"][0].update(lr="0.9"), m)[1],
    "optim scalars not an object": put("optim_scalars", [1]),
    "format 2": put("format", 2),
}


@pytest.mark.parametrize("eval_only", [False, True], ids=["resume", "eval-only"])
@pytest.mark.parametrize("case", sorted(DAMAGED_META))
def test_a_damaged_checkpoint_metadata_is_one_line_exit_1(one_epoch, tmp_path, case, eval_only):
    damaged = rewrite_checkpoint(one_epoch / "checkpoint.npz", tmp_path / "damaged.npz", meta=DAMAGED_META[case])
    argv = ["--resume", "damaged.npz", "--epochs", "2"] + (["--eval-only", "--limit-test", "100"] if eval_only else [])
    code, out, err = run_cli(tmp_path, *argv)
    assert code == 1, (case, err)
    one_line_error(err, f"error: {damaged.name}: ")
    assert not (tmp_path / "runs").exists()


DAMAGED_ARRAYS = {
    "momentum buffer of the wrong shape": ("optim/0/momentum_buffer", lambda a: a[:3], "has shape (3, 1, 5, 5)"),
    "weight of the wrong shape": ("model/0.weight", lambda a: a[:3], "does not fit"),
    "no RNG state": ("rng/engine", None, "lacks the RNG state"),
    "RNG state not JSON": ("rng/engine", lambda a: np.zeros(8, np.uint8), "does not fit"),
    "buffer of an unknown parameter": ("optim/99/momentum_buffer", lambda a: np.zeros(3, np.float32),
                                       "the optimizer has 10 parameters"),
}


@pytest.fixture(scope="module")
def momentum_epoch(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("momentum")
    code, _, err = run_cli(cwd, *SMALL, "--epochs", "1", "--optimizer", "momentum", "--quiet")
    assert code == 0, err
    return cwd / "runs" / "exp1" / "checkpoint.npz"


@pytest.mark.parametrize("case", sorted(DAMAGED_ARRAYS))
def test_damaged_checkpoint_arrays_are_one_line_exit_1(momentum_epoch, tmp_path, case):
    name, change, message = DAMAGED_ARRAYS[case]

    def arrays(entries):
        if change is None:
            del entries[name]
        else:
            entries[name] = change(entries.get(name, entries["optim/0/momentum_buffer"]))

    rewrite_checkpoint(momentum_epoch, tmp_path / "damaged.npz", arrays=arrays)
    code, out, err = run_cli(tmp_path, "--resume", "damaged.npz", "--epochs", "2")
    assert code == 1 and message in err, err
    one_line_error(err, "error: damaged.npz: ")
    if name.startswith("model/"):
        code, out, err = run_cli(tmp_path, "--resume", "damaged.npz", "--eval-only", "--limit-test", "100")
        assert code == 1 and message in err, err
        one_line_error(err, "error: damaged.npz: ")


def test_an_object_array_checkpoint_gets_no_allow_pickle_advice(one_epoch, tmp_path):
    rewrite_checkpoint(one_epoch / "checkpoint.npz", tmp_path / "pickled.npz",
                       arrays=lambda e: e.update({"model/0.bias": np.array([{"x": 1}] * 6, dtype=object)}))
    code, out, err = run_cli(tmp_path, "--resume", "pickled.npz", "--epochs", "2")
    assert code == 1 and "holds Python objects" in err and "allow_pickle" not in err, err
    one_line_error(err)


def test_checkpoint_reading_inflates_only_the_expected_entries(one_epoch, tmp_path):
    """A crafted 40 KiB archive with a 64 MiB deflated extra entry, and an entry whose header claims a huge
    array: the first is never inflated, the second is refused before its data is read."""
    import tracemalloc
    import zipfile

    from engine.training.checkpoint import CheckpointError

    path = shutil.copy(one_epoch / "checkpoint.npz", tmp_path / "extra.npz")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("junk.npy", "w", force_zip64=True) as f:
            for _ in range(64):
                f.write(bytes(1 << 20))
    assert Path(path).stat().st_size < 1 << 20
    tracemalloc.start()
    ckpt = read_checkpoint(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "junk" not in str(list(ckpt["model"])) and peak < 8 << 20, peak

    header = np.lib.format
    bogus = tmp_path / "claims.npz"
    shutil.copy(one_epoch / "checkpoint.npz", bogus)
    with zipfile.ZipFile(bogus, "a") as archive:
        with archive.open("model/huge.npy", "w") as f:
            header.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (1 << 30,)})
            f.write(bytes(16))
    with pytest.raises(CheckpointError, match="announces 4294967296 bytes of data, the entry has 16"):
        read_checkpoint(bogus)


def test_stale_temporaries_of_a_killed_save_are_removed(one_epoch, tmp_path):
    run_dir = copy_run(one_epoch, tmp_path)
    stale = [run_dir / ".checkpoint.npz.x1y2z3.tmp", run_dir / ".metrics.csv.abc.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    keep = run_dir / ".notes.txt.tmp"  # not a temporary of this run's files
    keep.write_bytes(b"someone else's")
    code, out, err = run_cli(tmp_path, "--resume", str(run_dir / "checkpoint.npz"), "--epochs", "2", "--quiet")
    assert code == 0, err
    assert not any(p.exists() for p in stale) and keep.exists()


# ------------------------------------------------------------------ issue 8 item 8: how often the loop reads the loss
def toy_trainer(loss_read_every: int, lr: float = 0.1):
    from engine.data import DataLoader
    from engine.train_lenet import make_optimizer
    from engine.training.loop import Trainer

    rng = np.random.default_rng(0)
    data = (rng.random((40, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 40))
    engine.manual_seed(0)
    model = lenet()
    loader = DataLoader(data, 8, shuffle=True, seed=0)  # 5 steps
    evaluation = DataLoader(data, 40)
    return Trainer(model, make_optimizer("sgd", model.parameters(), lr), loader, lambda: evaluation.batches(0),
                   lambda: evaluation.batches(0), num_classes=10, reporter=Reporter(1, 5, quiet=True),
                   checkpoint_path=None, meta={}, loss_read_every=loss_read_every)


def test_the_loop_reads_the_running_loss_every_loss_read_every_steps(monkeypatch):
    reads = []
    item = engine.Tensor.item

    def counted(self):
        reads.append(self.shape)
        return item(self)

    monkeypatch.setattr(engine.Tensor, "item", counted)
    toy_trainer(loss_read_every=3).run(1)
    assert len(reads) == 2 + 2  # after steps 3 and 5 (the epoch's last), then one per evaluation pass
    reads.clear()
    toy_trainer(loss_read_every=1).run(1)
    assert len(reads) == 5 + 2


def test_a_divergence_between_two_reads_names_the_window():
    from engine.training.loop import Diverged

    with pytest.raises(Diverged, match=r"the training loss became (nan|inf) at epoch 1, a step up to [35]"):
        with np.errstate(all="ignore"):
            toy_trainer(loss_read_every=3, lr=1e38).run(1)


# ------------------------------------------------------------------ issue 8 item 10 / issue 12 item 1: the cli extra
def run_without(packages, code: str, cwd: Path, *argv: str):
    """``python -c code argv`` with ``packages`` unimportable (a None entry in sys.modules), as if not installed."""
    hide = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in packages)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", hide + code, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


CLI_EXTRA = ("rich", "tensorboardX", "matplotlib")


def test_the_library_needs_none_of_the_cli_extra(tmp_path):
    code = ("import engine, engine.data, engine.models, engine.training.checkpoint\n"
            "from engine.nn import functional as F\n"
            "x = engine.randn(2, 1, 28, 28)\n"
            "assert engine.models.lenet()(x).shape == (2, 10)\n"
            f"assert not [m for m in {CLI_EXTRA!r} if sys.modules.get(m) is not None]\n"
            "print('ok')")
    result = run_without(CLI_EXTRA, code, tmp_path)
    assert result.returncode == 0 and result.stdout == "ok\n", result.stderr


@pytest.mark.parametrize("missing", ["rich", "matplotlib"])
def test_the_cli_without_a_required_package_names_the_extra(tmp_path, missing):
    result = run_without([missing], "import engine.train_lenet as cli; sys.exit(cli.main(sys.argv[1:]))", tmp_path,
                         *SMALL, "--epochs", "1")
    assert result.returncode == 1
    one_line_error(result.stderr, f"error: the training CLI needs {missing} (not installed); install the 'cli' extra: "
                                  "pip install 'convengine[cli]'")
    assert not (tmp_path / "runs").exists()


def test_without_tensorboardx_training_warns_once_and_writes_everything_else(tmp_path):
    result = run_without(["tensorboardX"], "import engine.train_lenet as cli; sys.exit(cli.main(sys.argv[1:]))",
                         tmp_path, *SMALL, "--epochs", "2", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning: tensorboardX is not installed, so no TensorBoard events are written")
    assert result.stderr.count("\n") == 1 and "convengine[cli]" in result.stderr
    run_dir = tmp_path / "runs" / "exp1"
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.npz", "config.json", "confusion_matrix.png",
                                                         "curves.png", "kernels.png", "metrics.csv"]
    assert len((run_dir / "metrics.csv").read_text().splitlines()) == 3


def test_the_cli_packages_are_an_extra_that_install_sh_installs():
    import configparser

    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    requires = setup["options"]["install_requires"].split()
    extras = {name: value.split() for name, value in setup["options.extras_require"].items()}
    assert not [r for r in requires if r.split(">")[0].split("=")[0] in CLI_EXTRA], requires
    assert sorted(r.split(">")[0] for r in extras["cli"]) == sorted(CLI_EXTRA)
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert "-e '.[cli,test]'" in install and "-e '.[cli]'" in install


# ------------------------------------------------------------------ issue 11: install.sh warms Numba's cache
def test_the_warm_up_of_install_sh_runs_a_training_step_without_data(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), FASHION_MNIST_DIR=str(tmp_path / "no-data"))
    result = subprocess.run([sys.executable, "-m", "engine.training.warmup"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("compiled the training kernels into Numba's cache (")
    assert list(tmp_path.iterdir()) == []  # it writes nothing but the cache
    assert "python -m engine.training.warmup" in (ROOT / "scripts" / "install.sh").read_text()
