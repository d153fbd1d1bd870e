"""``python -m engine.train --model NAME [--resize N]``: any engine.models factory through train_lenet's steps,
and the NumPy resize (engine.data.resize) against torch's ``F.interpolate``.

Runs call ``main(argv)`` in-process on a slice of FashionMNIST (skipped, with the reason, without it). Besides
``lenet``, a tiny factory is added to engine.models for the test: a conv, a BatchNorm-free head, nothing else.
"""
import json

import numpy as np
import pytest
import torch
from test_train_lenet import FOUND, METRICS, metrics, one_line_error, run_cli

import engine.models
from engine import nn
from engine import train as general
from engine.data import fashion_mnist as fm
from engine.data.resize import ResizedLoader, interpolation_matrix, resize_images
from engine.training.checkpoint import read_checkpoint
from engine.training.model import first_conv_and_activation

SLICE = ["--limit-train", "192", "--limit-test", "64", "--batch-size", "64", "--seed", "2", "--num-threads", "1"]
needs_data = pytest.mark.skipif(
    FOUND is None, reason="FashionMNIST not found (apt-get install dataset-fashion-mnist, or set $FASHION_MNIST_DIR)")


@pytest.fixture(autouse=True)
def data_dir_in_environment(monkeypatch):
    if FOUND is not None:
        monkeypatch.setenv(fm.ENV_VAR, str(FOUND[0].parent.resolve()))


def tiny(num_classes: int = 10) -> nn.Sequential:
    """For 16x16 images: a convolution followed by pooling (not an activation), then one linear layer."""
    return nn.Sequential(nn.Conv2d(1, 3, kernel_size=3, padding=1), nn.MaxPool2d(kernel_size=2, stride=2),
                         nn.Flatten(), nn.Linear(3 * 8 * 8, num_classes))


@pytest.fixture
def with_tiny(monkeypatch):
    monkeypatch.setattr(engine.models, "tiny", tiny, raising=False)
    monkeypatch.setattr(engine.models, "__all__", [*engine.models.__all__, "tiny"])


def history(run_dir):
    return read_checkpoint(run_dir / "checkpoint.npz", meta_only=True)["meta"]["history"]


# ------------------------------------------------------------------ the CLI
@needs_data
def test_model_lenet_is_train_lenets_run(tmp_path):
    from engine.train_lenet import main as train_lenet

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    code, _, err = run_cli(tmp_path / "a", *SLICE, "--epochs", "1", entry=train_lenet)
    assert code == 0, err
    code, out, err = run_cli(tmp_path / "b", "--model", "lenet", *SLICE, "--epochs", "1", entry=general.main)
    assert code == 0, err
    assert out.startswith("LeNet (sigmoid, avg pool, 61,706 parameters)")
    ours, theirs = history(tmp_path / "b" / "runs" / "exp1"), history(tmp_path / "a" / "runs" / "exp1")
    assert metrics(ours) == metrics(theirs)  # same steps, same seed: the same numbers
    config = json.loads((tmp_path / "b" / "runs" / "exp1" / "config.json").read_text())
    assert config["model"] == "lenet" and config["resize"] is None


@needs_data
def test_any_factory_trains_on_resized_images_with_logs_figures_and_resume(tmp_path, with_tiny):
    argv = ["--model", "tiny", "--resize", "16", *SLICE, "--lr", "0.1"]
    (tmp_path / "whole").mkdir()
    code, out, err = run_cli(tmp_path / "whole", *argv, "--epochs", "2", entry=general.main)
    assert code == 0, err
    assert out.startswith("tiny (") and "resized to 16x16 (bilinear)" in out
    whole = tmp_path / "whole" / "runs" / "exp1"
    assert {"checkpoint.npz", "config.json", "metrics.csv", "curves.png", "confusion_matrix.png",
            "kernels.png"} <= {p.name for p in whole.iterdir()}
    config = json.loads((whole / "config.json").read_text())
    assert config["model"] == "tiny" and config["resize"] == 16 and config["activation"] is None
    assert config["parameters"] == 3 * 9 + 3 + 3 * 64 * 10 + 10

    (tmp_path / "split").mkdir()
    code, _, err = run_cli(tmp_path / "split", *argv, "--epochs", "1", entry=general.main)
    assert code == 0, err
    checkpoint = tmp_path / "split" / "runs" / "exp1" / "checkpoint.npz"
    code, out, err = run_cli(tmp_path / "split", "--resume", str(checkpoint), "--epochs", "2", entry=general.main)
    assert code == 0, err
    resumed, uninterrupted = metrics(history(checkpoint.parent)), metrics(history(whole))
    for row, want in zip(resumed, uninterrupted):
        assert row["epoch"] == want["epoch"]
        np.testing.assert_allclose([row[k] for k in METRICS], [want[k] for k in METRICS], rtol=1e-6)

    code, _, err = run_cli(tmp_path / "split", "--resume", str(checkpoint), "--epochs", "3", "--resize", "20",
                           entry=general.main)
    assert code == 1 and "--resize 20 (the checkpoint has 16)" in err, err


def test_an_unknown_model_is_one_line_listing_the_available_ones(tmp_path):
    code, out, err = run_cli(tmp_path, "--model", "nope", *SLICE, entry=general.main)
    assert code == 2 and out == ""
    one_line_error(err, "error: --model nope: no such model; available: ")
    assert "lenet" in err.split("available: ")[1].strip().split(", ")
    assert not (tmp_path / "runs").exists()


@needs_data
@pytest.mark.parametrize("case", ["lenet's flags on another model", "input too small"])
def test_a_model_that_cannot_work_as_asked_is_one_line_exit_2(tmp_path, with_tiny, case):
    if case == "input too small":  # tiny's linear layer wants 16x16 images
        argv, expected = ["--model", "tiny"], "error: --model tiny cannot take 1x28x28 images: "
    else:
        argv, expected = ["--model", "tiny", "--resize", "16", "--pool", "max"], \
            "error: --pool applies to --model lenet only (got --model tiny)"
    code, out, err = run_cli(tmp_path, *argv, *SLICE, entry=general.main)
    assert code == 2, err
    one_line_error(err, expected)
    assert not (tmp_path / "runs").exists()


def test_the_kernels_figure_finds_the_first_conv_and_its_activation():
    lenet = engine.models.lenet()
    assert first_conv_and_activation(lenet) == (lenet[0], lenet[1])
    model = nn.Sequential(nn.Sequential(tiny()), nn.ReLU())
    conv, after = first_conv_and_activation(model)
    assert conv is model[0][0][0]
    x = engine.randn(1, 1, 4, 4)
    assert after(x) is x  # a pooling layer follows: the maps are the convolution's own


# ------------------------------------------------------------------ resize
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("size", [96, 224, 14, 33, 28])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_resize_is_torchs_interpolate(mode, size, dtype):
    images = np.random.default_rng(size).random((3, 1, 28, 28)).astype(dtype)
    options = {"align_corners": False} if mode == "bilinear" else {}
    expected = torch.nn.functional.interpolate(torch.from_numpy(images), size=(size, size), mode=mode,
                                               **options).numpy()
    resized = resize_images(images, size, mode)
    assert resized.dtype == dtype and resized.shape == (3, 1, size, size)
    np.testing.assert_allclose(resized, expected, rtol=0, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_resize_rows_are_convex_weights_and_bad_arguments_are_named():
    weights = interpolation_matrix(28, 96)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert (weights >= 0).all()
    with pytest.raises(ValueError, match="resize mode must be one of bilinear, nearest, got 'bicubic'"):
        resize_images(np.zeros((1, 28, 28)), 96, "bicubic")
    with pytest.raises(ValueError, match="size_out must be a positive integer, got 0"):
        ResizedLoader(None, 0)
    with pytest.raises(ValueError, match=r"expected images of shape \(..., H, W\), got shape \(5,\)"):
        resize_images(np.zeros(5), 3)


def test_the_resized_loader_keeps_the_targets_length_and_order():
    from engine.data import DataLoader

    X = np.random.default_rng(0).random((10, 1, 28, 28)).astype(np.float32)
    y = np.arange(10)
    loader = ResizedLoader(DataLoader((X, y), batch_size=4, shuffle=True, seed=1), 12)
    assert len(loader) == 3 and loader.num_samples == 10
    batches = list(loader.batches(0))
    plain = list(loader.loader.batches(0))
    for (Xr, yr), (Xp, yp) in zip(batches, plain):
        assert Xr.shape == (len(yp), 1, 12, 12)
        np.testing.assert_array_equal(yr.numpy(), yp.numpy())
        np.testing.assert_allclose(Xr.numpy(), resize_images(Xp.numpy(), 12), rtol=1e-6)


def test_zoo_models_train_with_the_books_rate_unless_told_otherwise():
    from engine.train_lenet import BOOK_SGD_LR, default_lr

    assert default_lr("sgd", "lenet") == 0.9  # the seed's
    assert default_lr("sgd", "resnet18") == 0.01 and default_lr("sgd", "nin") == 0.05
    assert default_lr("adam", "resnet18") == 0.001
    import engine.models

    assert set(BOOK_SGD_LR) == set(engine.models.__all__) - {"lenet"}
