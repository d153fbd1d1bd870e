"""scripts/gpu_check.py and scripts/gpu_sanitize.py, the GPU check prepared here: what the CPU can verify of it
(the deadline, what comes back, the environment of the steps, the carried data and wheels, the summary)."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
import tarfile
import time
import zipfile

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check = _load("gpu_check")
sanitize = _load("gpu_sanitize")


def sleeper(name, seconds, budget, min_s, **kw):
    return check.Step(name, [sys.executable, "-c", f"import time; print('{name}'); time.sleep({seconds})"],
                      budget, min_s, **kw)


@pytest.fixture
def dirs(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    return work, out


def test_steps_run_within_one_deadline_and_the_late_ones_are_skipped(dirs, monkeypatch):
    work, out = dirs
    monkeypatch.setattr(check, "RESERVE_S", 0.5)
    steps = [sleeper("first", 0.0, 30, 1), sleeper("slow", 30, 1.5, 1), sleeper("needs-more", 0, 30, 20),
             sleeper("last", 0, 30, 0.2)]
    started = time.monotonic()
    results = check.run_steps(steps, check.Clock(6.0), work, dict(os.environ), out, root=ROOT)
    assert time.monotonic() - started < 6.0
    status = {r.name: r.status for r in results}
    assert status["first"] == "ok"
    assert status["slow"] == "timed out after 2 s"  # its budget, 1.5 s, rounded
    assert status["needs-more"].startswith("skipped: needs 20 s, ")
    assert status["last"] == "ok"
    assert (work / "first.txt").read_text().splitlines()[-1] == "first"


def test_a_background_step_is_stopped_at_the_deadline(dirs, monkeypatch):
    work, out = dirs
    monkeypatch.setattr(check, "RESERVE_S", 0.5)
    steps = [sleeper("beside", 60, 300, 1, background=True), sleeper("fore", 0, 30, 0.1)]
    started = time.monotonic()
    results = check.run_steps(steps, check.Clock(3.0), work, dict(os.environ), out, root=ROOT)
    assert time.monotonic() - started < 4.0
    assert [(r.name, r.status.split()[0]) for r in results] == [("fore", "ok"), ("beside", "timed")]


def test_a_step_that_cannot_start_is_reported_and_the_next_runs(dirs):
    work, out = dirs
    steps = [check.Step("memcheck", ["no-such-sanitizer-here", "--tool", "memcheck"], 30, 0), sleeper("next", 0, 30, 0)]
    results = check.run_steps(steps, check.Clock(60), work, dict(os.environ), out, root=ROOT)
    assert results[0].status.startswith("could not start: [Errno 2] No such file or directory")
    assert results[1].status == "ok"


def test_selected_steps_only(dirs):
    work, out = dirs
    steps = [sleeper("a", 0, 30, 0), sleeper("b", 0, 30, 0)]
    results = check.run_steps(steps, check.Clock(60), work, dict(os.environ), out, selected=["b"], root=ROOT)
    assert [r.name for r in results] == ["b"]


def test_two_files_come_back_whatever_the_steps_wrote(dirs, tmp_path):
    work, out = dirs
    for i in range(20):
        (work / f"log{i}.txt").write_text(f"log {i}\n")
    (work / "runs" / "cuda" / "exp1").mkdir(parents=True)
    (work / "runs" / "cuda" / "exp1" / "metrics.csv").write_text("epoch\n1\n")
    root = tmp_path / "repo"
    (root / ".device_data" / "cupy_cache").mkdir(parents=True)
    (root / ".device_data" / "cupy_cache" / "kern.cubin").write_bytes(b"\0" * 10)
    check.write_outputs([check.Result("env", "ok", 1.0, ["python 3.12"])], work, out, root=root)
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.tar.gz", "summary.txt"]
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"gpu_check/log19.txt", "gpu_check/runs/cuda/exp1/metrics.csv", "gpu_check/summary.txt",
            "cupy_cache/kern.cubin"} <= names
    assert "== env: ok in 1 s\n   python 3.12" in (out / "summary.txt").read_text()


def test_the_steps_see_the_carried_data_unbuffered_with_one_kernel_cache(tmp_path):
    env = check.step_environment(tmp_path / "site")
    assert env["FASHION_MNIST_DIR"] == str(ROOT / ".device_data" / "fashion-mnist")
    assert env["CUPY_CACHE_DIR"] == str(ROOT / ".device_data" / "cupy_cache")
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONPATH"].split(os.pathsep)[:2] == [str(ROOT), str(tmp_path / "site")]
    assert "ENGINE_BACKEND" not in env


def test_the_pytest_steps_have_per_test_timeouts_and_no_nvcc_tests(tmp_path):
    env = check.step_environment(tmp_path / "site")
    steps = {s.name: s for s in check.build_steps(sys.executable, tmp_path, env)}
    assert list(steps) == ["env", "cpu-train", "kernels", "engine", "train", "bench", "memcheck", "racecheck"]
    for name in ("kernels", "engine"):
        argv = " ".join(steps[name].argv)
        assert "test_cupy_compile" not in argv.replace("--ignore=" + str(ROOT / "tests" / "test_cupy_compile.py"), "")
        assert ("--timeout=60" in argv) == check._has(sys.executable, "pytest_timeout", env)
    assert "engine_cuda_checks.py" in " ".join(steps["engine"].argv)
    assert steps["train"].argv[-4:] == ["--device", "cuda", "--logdir", str(tmp_path / "runs" / "cuda")]
    assert sum(s.budget_s for s in steps.values() if not s.background) < 2 * check.DEADLINE_S


def _four_files(folder):
    folder.mkdir(parents=True)
    for name in check.DATA_FILES:
        (folder / name).write_bytes(name.encode())


def test_prepare_copies_the_four_files_into_the_carried_folder(tmp_path, capsys):
    _four_files(tmp_path / "source")
    root = tmp_path / "repo"
    assert check.prepare(tmp_path / "source", root=root, wheel=False) == 0
    copied = root / ".device_data" / "fashion-mnist"
    assert sorted(p.name for p in copied.iterdir()) == sorted(check.DATA_FILES)
    assert (copied / check.DATA_FILES[0]).read_bytes() == check.DATA_FILES[0].encode()
    assert "MiB to carry" in capsys.readouterr().out


def test_prepare_names_the_missing_files(tmp_path, capsys):
    (tmp_path / "source").mkdir()
    assert check.prepare(tmp_path / "source", root=tmp_path / "repo", wheel=False) == 1
    assert "lacks train-images-idx3-ubyte.gz" in capsys.readouterr().err


def test_the_real_dataset_fits_the_carry_limit():
    source = pathlib.Path("/usr/share/datasets/fashion-mnist")
    if not all((source / name).is_file() for name in check.DATA_FILES):
        pytest.skip(f"FashionMNIST .gz files not in {source}")
    size = sum((source / name).stat().st_size for name in check.DATA_FILES)
    assert size < check.CARRY_LIMIT_BYTES / 2  # the rest is for the working tree, the wheels and the kernel cache


def _wheel(folder, name="gpucheckprobe"):
    """A minimal pure-Python wheel of package ``name`` (what pip needs: the module, METADATA, WHEEL, RECORD)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/__init__.py", "VALUE = 42\n")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", f"{name}/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return path


def test_carried_wheels_install_offline_and_the_steps_import_them(tmp_path):
    wheel = _wheel(tmp_path / "whl")
    site = tmp_path / "site"
    installed = check.install_wheels(sys.executable, [str(wheel)], site)
    assert installed.returncode == 0, installed.stderr
    env = check.step_environment(site)
    probe = subprocess.run([sys.executable, "-c", "import gpucheckprobe; print(gpucheckprobe.VALUE)"], env=env,
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "42", probe.stderr


def test_set_up_says_what_is_missing(tmp_path, monkeypatch):
    env = check.step_environment(tmp_path / "site", root=tmp_path)
    monkeypatch.setattr(check, "_has", lambda python, module, env: False)
    result = check.set_up(sys.executable, env, tmp_path / "site", root=tmp_path)
    assert result.status == "incomplete"
    assert any("no wheels in .whl/" in line for line in result.lines)
    assert any("lacks train-images-idx3-ubyte.gz" in line for line in result.lines)


PYTEST_LOG = """\
..F.s
FAILED tests/test_kernels.py::test_conv2d_matches_torch_and_reference[cupy-x] - AssertionError: forward
ERROR tests/test_kernels.py::test_fills_the_contract[cupy] - RuntimeError
1 failed, 3 passed, 1 skipped, 1 error in 2.50s
"""


def test_the_summary_shows_pytest_failures_and_totals():
    step = check.Step("kernels", [], 1, 1, pytest=True)
    lines = check.key_lines(step, PYTEST_LOG)
    assert lines == PYTEST_LOG.splitlines()[1:]


def test_the_summary_shows_every_benchmark_row_so_far():
    log = "$ python -m benchmarks.gpu_compare\nGPU: H200\n" + "".join(f"conv2d row {i}\n" for i in range(30))
    lines = check.key_lines(check.Step("bench", [], 1, 1), log)
    assert lines[0] == "GPU: H200" and lines[-1] == "conv2d row 29" and len(lines) == 31


def test_the_summary_shows_the_sanitizer_verdict():
    log = "========= COMPUTE-SANITIZER\nfloat32 conv2d_forward conv1 direct\n========= ERROR SUMMARY: 0 errors\n"
    assert check.key_lines(check.Step("memcheck", [], 1, 1), log) == ["========= ERROR SUMMARY: 0 errors"]


def _row(epoch, loss, acc, seconds):
    return {"epoch": str(epoch), "train_loss": str(loss), "train_acc": str(acc), "test_loss": str(loss),
            "test_acc": str(acc), "epoch_seconds": str(seconds + 1), "train_seconds": str(seconds),
            "images_per_second": str(60000 / seconds)}


def test_the_cuda_run_is_compared_with_the_cpu_run_epoch_by_epoch():
    cpu = [_row(1, 0.9, 0.6, 30.0), _row(2, 0.5, 0.8, 29.0)]
    same = check.compare_training([_row(1, 0.90001, 0.6, 9.0), _row(2, 0.5, 0.8, 2.0)], cpu)
    assert "(cold" in same[0] and "(warm)" in same[1]
    assert all("matches the cpu run" in line for line in same)
    assert "cuda train 2.00 s (30000 images/s)" in same[1]
    other = check.compare_training([_row(1, 0.9, 0.6, 9.0), _row(2, 0.6, 0.8, 2.0)], cpu)
    assert "DIFFERS from the cpu run (largest rel. diff 2.0e-01 in train_loss" in other[1]
    assert check.compare_training([], cpu) == ["no cuda metrics.csv (the train step did not finish an epoch)"]


def test_the_sanitizer_script_calls_every_kernel_of_the_contract(capsys):
    import reference

    assert sanitize.run(reference, np, 2, dtypes=(np.float64,)) == 0
    assert "called all" in capsys.readouterr().out


def test_the_sanitizer_script_notices_a_kernel_left_out(monkeypatch, capsys):
    import reference

    every = sanitize.calls
    monkeypatch.setattr(sanitize, "calls", lambda *a: {k: v for k, v in every(*a).items() if "tanh" not in k})
    assert sanitize.run(reference, np, 1, dtypes=(np.float64,)) == 1
    assert "not called: tanh_backward, tanh_forward" in capsys.readouterr().err


# --- benchmarks/gpu_compare.py's warm epochs (their mechanics, on the CPU) --------------------------------------


def test_a_warm_epoch_is_the_second_one():
    from benchmarks.gpu_compare import time_warm_epoch

    events = []

    def epoch(e):
        events.append(f"epoch {e}")
        return 2.5

    result = time_warm_epoch(epoch, lambda: events.append("sync"))
    assert events == ["epoch 0", "sync", "epoch 1"]
    assert result["summed_loss"] == 2.5 and result["seconds"] >= 0


def test_engine_and_torch_lenet_epochs_train_the_same_model():
    torch = pytest.importorskip("torch")
    from benchmarks.gpu_compare import engine_lenet_epoch, epoch_lines, torch_lenet_epoch

    rng = np.random.default_rng(0)
    images = rng.random((300, 1, 28, 28)).astype(np.float32)  # a full batch and a partial one
    labels = rng.integers(0, 10, 300).astype(np.int64)
    ours, theirs = engine_lenet_epoch(images, labels, "cpu"), torch_lenet_epoch(torch, images, labels, "cpu")
    for result in (ours, theirs):
        assert result["seconds"] > 0 and 1.0 < result["mean_loss"] < 4.0  # about ln(10) on random labels
    line = epoch_lines(ours, theirs, 300)[0]
    assert line.startswith("LeNet epoch, warm (the second of two; 300 images") and "engine/torch" in line


def test_an_archive_too_big_to_come_back_leaves_the_kernel_cache_out(dirs, tmp_path, monkeypatch):
    work, out = dirs
    (work / "kernels.txt").write_text("log\n")
    root = tmp_path / "repo"
    (root / ".device_data" / "cupy_cache").mkdir(parents=True)
    (root / ".device_data" / "cupy_cache" / "big.cubin").write_bytes(np.random.default_rng(0).bytes(200_000))
    monkeypatch.setattr(check, "FILE_LIMIT_BYTES", 100_000)
    check.write_outputs([], work, out, root=root)
    with tarfile.open(out / "gpu_check.tar.gz") as tar:
        names = tar.getnames()
    assert "gpu_check/kernels.txt" in names and not any(n.startswith("cupy_cache") for n in names)
    assert (out / "gpu_check.tar.gz").stat().st_size < 100_000
