"""The GPU check (issue 12), prepared on a CPU machine and run in one go on a GPU machine.

    python3 scripts/gpu_check.py prepare   # CPU side: FashionMNIST into .device_data/, tensorboardX wheel into .whl/
    python3 scripts/gpu_check.py           # GPU machine: every step below within one deadline

Both folders are git-ignored, so the device tool must carry them: carry [".device_data", ".whl"].
What comes back is two files in $OUT: ``summary.txt`` (each step's status, time and key lines) and
``gpu_check.tar.gz`` (every log, JUnit XML, run folder and benchmark table, and the CuPy kernel cache:
unpack its ``cupy_cache/`` into ``.device_data/`` before a rerun and the rerun compiles nothing).

The whole check has one deadline (``GPU_CHECK_DEADLINE``, default 420 s). A step starts only when at least
its ``min_s`` is left, and runs for at most its budget or what is left; pytest steps also stop any single test
after ``PER_TEST_TIMEOUT_S`` (when pytest-timeout is installed). ``GPU_CHECK_STEPS="engine bench"`` runs only
those steps (a rerun of what failed). The nvcc compile tests are left out: CI runs them.

Steps, in order (``cpu-train`` runs in the background from the start, on CPU cores the GPU steps leave idle):
    env        nvidia-smi; Python, NumPy, Numba, CuPy, torch/cuDNN versions; whether the engine sees the GPU
    cpu-train  train_lenet --device cpu, 2 epochs: the metrics the cuda run must reproduce
    kernels    tests/test_kernels.py's cupy cases (``-m gpu``; float32 and float64, against torch and reference)
    engine     every other ``gpu``-marked case: the suite's cupy cases, tests/cuda_emulator/engine_cuda_checks.py,
               and the LeNet parity test's cuda case (FASHION_MNIST_DIR points at the carried data)
    train      train_lenet --device cuda, 2 epochs (the second is warm), compared with cpu-train
    bench      python -m benchmarks.gpu_compare --epoch (kernels vs cuDNN, warm LeNet epochs on both sides)
    memcheck   compute-sanitizer memcheck on one call of every kernel at LeNet's shapes (scripts/gpu_sanitize.py)
    racecheck  the same under racecheck
"""

from __future__ import annotations

import csv
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
DATA_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
              "t10k-labels-idx1-ubyte.gz")
CARRY_LIMIT_BYTES = 64 * 2**20  # what the device tool takes along, working tree included
DEADLINE_S = 420.0
RESERVE_S = 10.0  # kept back from every step for writing the summary and the archive
PER_TEST_TIMEOUT_S = 90  # the longest: engine_cuda_checks trains LeNet on a slice in two subprocesses
EPOCHS = 2  # the first is cold (NVRTC compiles, autotuning), the second warm
ARCHIVE = "gpu_check.tar.gz"
SUMMARY = "summary.txt"
FILE_LIMIT_BYTES = 15 * 2**20  # the device tool brings back files of up to 16 MiB


@dataclass
class Step:
    """One command of the check: ``argv`` runs for at most ``budget_s``, and only with ``min_s`` left."""

    name: str
    argv: List[str]
    budget_s: float
    min_s: float
    pytest: bool = False  # its log ends with pytest's summary
    background: bool = False


@dataclass
class Result:
    name: str
    status: str  # "ok", "failed (exit N)", "timed out after N s", "skipped: ..."
    seconds: float = 0.0
    lines: List[str] = field(default_factory=list)  # what the summary shows of its log


# --- preparing the carried folders (CPU side) ----------------------------------------------------


def prepare(source: Path, root: Path = ROOT, wheel: bool = True, python: str = sys.executable) -> int:
    """Copy the four FashionMNIST .gz files into ``root/.device_data/fashion-mnist`` and (``wheel``)
    download the installed tensorboardX's wheel into ``root/.whl``; print the sizes. Returns an exit status."""
    missing = [name for name in DATA_FILES if not (source / name).is_file()]
    if missing:
        print(f"prepare: {source} lacks {', '.join(missing)} (apt-get install dataset-fashion-mnist, or pass "
              f"--source DIR)", file=sys.stderr)
        return 1
    data = root / ".device_data" / "fashion-mnist"
    data.mkdir(parents=True, exist_ok=True)
    for name in DATA_FILES:
        partial = data / f".{name}.partial"
        shutil.copyfile(source / name, partial)
        os.replace(partial, data / name)
    if wheel:
        from importlib.metadata import PackageNotFoundError, version

        try:
            requirement = f"tensorboardX=={version('tensorboardX')}"  # the version the tests run with here
        except PackageNotFoundError:
            requirement = "tensorboardX>=2.6"  # setup.cfg's
        wheels = root / ".whl"
        for old in wheels.glob("tensorboard[xX]-*.whl"):
            old.unlink()  # one version only: two stop the offline install
        command = [python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(wheels),
                   requirement]
        if subprocess.run(command).returncode != 0:
            print("prepare: pip could not download the tensorboardX wheel", file=sys.stderr)
            return 1
    carried = sum(p.stat().st_size for d in (".device_data", ".whl") for p in (root / d).rglob("*") if p.is_file())
    for path in sorted(p for d in (".device_data", ".whl") for p in (root / d).rglob("*") if p.is_file()):
        print(f"{path.stat().st_size:>10}  {path.relative_to(root)}")
    print(f"{carried / 2**20:.1f} MiB to carry (the device tool takes {CARRY_LIMIT_BYTES // 2**20} MiB with the "
          f"working tree)")
    return 0 if carried < CARRY_LIMIT_BYTES else 1


def install_wheels(python: str, wheels: List[str], target: Path) -> subprocess.CompletedProcess:
    """Install ``wheels`` into ``target`` offline (no index, no dependencies: the machine has them)."""
    command = [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
               "--upgrade", "--target", str(target), *wheels]
    return subprocess.run(command, capture_output=True, text=True)


# --- the steps -------------------------------------------------------------------------------------


def step_environment(site: Path, root: Path = ROOT) -> Dict[str, str]:
    """The environment every step runs in: the repository (then the carried wheels) first on the path,
    unbuffered output, the carried data, one CuPy kernel cache shared by every step."""
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_BACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(site)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONUNBUFFERED"] = "1"
    env["FASHION_MNIST_DIR"] = str(root / ".device_data" / "fashion-mnist")
    env["CUPY_CACHE_DIR"] = str(root / ".device_data" / "cupy_cache")
    env["MPLBACKEND"] = "Agg"
    return env


def _has(python: str, module: str, env: Dict[str, str]) -> bool:
    probe = subprocess.run([python, "-c", f"import {module}"], env=env, capture_output=True)
    return probe.returncode == 0


def pytest_argv(python: str, work: Path, name: str, plugins: Dict[str, bool], workers: int = 4) -> List[str]:
    """pytest with a per-test timeout, xdist workers and a JUnit file, as far as ``plugins`` has them."""
    argv = [python, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", f"--junitxml={work / name}.xml"]
    if plugins.get("pytest_timeout"):
        argv.append(f"--timeout={PER_TEST_TIMEOUT_S}")
    if plugins.get("xdist") and workers > 1:
        argv += ["-n", str(workers)]
    return argv


ENV_PROBE = """
import platform, sys
print('python', sys.version.split()[0], platform.machine())
for name in ('numpy', 'numba', 'cupy', 'torch', 'tensorboardX'):
    try:
        module = __import__(name)
        print(name, module.__version__)
    except Exception as exc:
        print(name, 'NOT USABLE:', type(exc).__name__, exc)
try:
    import cupy
    rt = cupy.cuda.runtime
    print('cuda runtime', rt.runtimeGetVersion(), 'driver', rt.driverGetVersion(), 'devices', rt.getDeviceCount())
except Exception as exc:
    print('cupy cuda NOT USABLE:', type(exc).__name__, exc)
try:
    import torch
    print('torch cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name(0))
except Exception as exc:
    print('torch cuda NOT USABLE:', type(exc).__name__, exc)
from engine import backend
from engine.data import fashion_mnist
print('engine cupy backend available:', backend.is_available('cupy'), '; cpu backend:', backend.cpu_backend().NAME)
print('FashionMNIST train split:', fashion_mnist.find_split('train'))
"""


def build_steps(python: str, work: Path, env: Dict[str, str], root: Path = ROOT) -> List[Step]:
    tests = root / "tests"
    runs = work / "runs"
    lenet = [python, "-m", "engine.train_lenet", "--epochs", str(EPOCHS), "--quiet"]
    sanitize = [python, str(root / "scripts" / "gpu_sanitize.py")]
    sanitizer = shutil.which("compute-sanitizer") or "compute-sanitizer"
    cpu_threads = max(1, (os.cpu_count() or 2) // 2)
    plugins = {name: _has(python, name, env) for name in ("pytest_timeout", "xdist")}
    return [
        Step("env", ["bash", "-c", f"nvidia-smi; {python} - <<'EOF'\n{ENV_PROBE}\nEOF"], 30, 5),
        Step("cpu-train", lenet + ["--device", "cpu", "--num-threads", str(cpu_threads),
                                   "--logdir", str(runs / "cpu")], 300, 60, background=True),
        Step("kernels", pytest_argv(python, work, "kernels", plugins) + [str(tests / "test_kernels.py"), "-m", "gpu"],
             120, 40, pytest=True),
        Step("engine", pytest_argv(python, work, "engine", plugins) + [
            str(tests), str(tests / "cuda_emulator" / "engine_cuda_checks.py"), "-m", "gpu",
            *(f"--ignore={tests / name}" for name in ("test_kernels.py", "test_cuda_emulator.py",
                                                      "test_cupy_compile.py", "test_gpu_check.py"))],
             150, 40, pytest=True),
        Step("train", lenet + ["--device", "cuda", "--logdir", str(runs / "cuda")], 70, 30),
        Step("bench", [python, "-m", "benchmarks.gpu_compare", "--epoch", "--out", str(work / "gpu_compare.md")],
             80, 40),
        Step("memcheck", [sanitizer, "--tool", "memcheck", "--error-exitcode", "1", *sanitize, "--batch", "32"],
             45, 20),
        Step("racecheck", [sanitizer, "--tool", "racecheck", "--error-exitcode", "1", *sanitize, "--batch", "4"],
             45, 20),
    ]


# --- running within the deadline ------------------------------------------------------------------


class Clock:
    """Seconds left before the check's deadline."""

    def __init__(self, deadline_s: float):
        self.end = time.monotonic() + deadline_s

    def left(self) -> float:
        return self.end - time.monotonic()


def _stop(process: subprocess.Popen) -> None:
    """Stop ``process`` and everything it started (it leads its own process group)."""
    for sig, wait_s in ((signal.SIGTERM, 5), (signal.SIGKILL, None)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
            process.wait(wait_s)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def start(step: Step, work: Path, env: Dict[str, str], root: Path = ROOT) -> subprocess.Popen:
    log = open(work / f"{step.name}.txt", "w")
    log.write(f"$ {' '.join(step.argv)}\n")
    log.flush()
    try:
        return subprocess.Popen(step.argv, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        log.close()


def finish(step: Step, process: subprocess.Popen, limit_s: float, started: float, work: Path) -> Result:
    """Wait up to ``limit_s`` from ``started`` for ``process``; stop it when over."""
    try:
        rc = process.wait(max(0.0, limit_s - (time.monotonic() - started)))
        status = "ok" if rc == 0 else f"failed (exit {rc})"
    except subprocess.TimeoutExpired:
        _stop(process)
        status = f"timed out after {limit_s:.0f} s"
    seconds = time.monotonic() - started
    return Result(step.name, status, seconds, key_lines(step, (work / f"{step.name}.txt").read_text(errors="replace")))


def run_steps(steps: List[Step], clock: Clock, work: Path, env: Dict[str, str], out: Path,
              selected: Optional[List[str]] = None, root: Path = ROOT, first: List[Result] = ()) -> List[Result]:
    """Run ``steps`` (those named in ``selected``, when given) in order within ``clock``'s deadline,
    the background ones beside the others; after each, rewrite the summary and the archive (which
    also show ``first``). Returns the steps' results."""
    results: List[Result] = []
    background = []
    for step in steps:
        if selected is not None and step.name not in selected:
            continue
        left = clock.left() - RESERVE_S
        if left < step.min_s:
            results.append(Result(step.name, f"skipped: needs {step.min_s:.0f} s, {max(left, 0):.0f} s left"))
            continue
        limit = min(step.budget_s, left)
        try:
            process, started = start(step, work, env, root), time.monotonic()
        except OSError as exc:  # e.g. compute-sanitizer not installed
            results.append(Result(step.name, f"could not start: {exc}"))
            continue
        if step.background:
            background.append((step, process, limit, started))
            continue
        results.append(finish(step, process, limit, started, work))
        write_outputs(list(first) + results, work, out, root)
    for step, process, limit, started in background:  # never past the deadline
        limit = min(limit, time.monotonic() - started + max(0.0, clock.left() - RESERVE_S))
        results.append(finish(step, process, limit, started, work))
        write_outputs(list(first) + results, work, out, root)
    return results


# --- what the summary shows -------------------------------------------------------------------------

PYTEST_RESULT = re.compile(r"^(FAILED|ERROR) ")
PYTEST_SUMMARY = re.compile(r"\d+ (passed|failed|skipped|error|errors|deselected)\b.* in [\d.]+s")


def key_lines(step: Step, log: str, limit: int = 15) -> List[str]:
    """The lines of a step's log worth reading first: pytest's failures and totals, the sanitizer's error
    summary, the environment's versions, or the log's last lines."""
    lines = log.splitlines()
    if step.name == "env":
        return [line for line in lines if re.match(r"(python|numpy|numba|cupy|torch|tensorboardX|cuda runtime|"
                                                   r"engine|FashionMNIST|\| NVIDIA|\|.*MiB)", line)][:limit]
    if step.pytest:
        failures = [line for line in lines if PYTEST_RESULT.match(line)]
        totals = [line for line in lines if PYTEST_SUMMARY.search(line)]
        shown = failures[:limit] + ([f"... and {len(failures) - limit} more"] if len(failures) > limit else [])
        return shown + (totals[-1:] or lines[-5:])
    if step.name in ("memcheck", "racecheck"):
        errors = [line for line in lines if "ERROR SUMMARY" in line or "RACECHECK SUMMARY" in line]
        return (errors or lines[-5:])[-limit:]
    if step.name == "bench":  # one line per op as it is timed: what there is, should the step run out of time
        return lines[1:][-60:]
    return lines[-5:]


def read_metrics(run_root: Path) -> List[Dict[str, str]]:
    """The rows of metrics.csv in the one run folder under ``run_root`` (empty when there is none)."""
    found = sorted(run_root.glob("exp*/metrics.csv"))
    if not found:
        return []
    with open(found[-1]) as f:
        return list(csv.DictReader(f))


def compare_training(cuda: List[Dict[str, str]], cpu: List[Dict[str, str]], rel: float = 1e-3) -> List[str]:
    """Lines setting the cuda run's metrics beside the CPU run's (same seed), epoch by epoch, and its epoch times."""
    if not cuda:
        return ["no cuda metrics.csv (the train step did not finish an epoch)"]
    lines = []
    for i, row in enumerate(cuda):
        line = (f"epoch {row['epoch']}: cuda train {float(row['train_seconds']):.2f} s "
                f"({float(row['images_per_second']):.0f} images/s), epoch with evaluation "
                f"{float(row['epoch_seconds']):.2f} s{' (warm)' if i > 0 else ' (cold: compiles, autotuning)'}")
        if i < len(cpu):
            diffs = {k: abs(float(row[k]) - float(cpu[i][k])) / max(abs(float(cpu[i][k])), 1e-12)
                     for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
            worst = max(diffs, key=diffs.get)
            verdict = "matches" if diffs[worst] <= rel else "DIFFERS from"
            line += (f"; {verdict} the cpu run (largest rel. diff {diffs[worst]:.1e} in {worst}: cuda {row[worst]}, "
                     f"cpu {cpu[i][worst]}; cpu train {float(cpu[i]['train_seconds']):.2f} s)")
        else:
            line += "; no cpu row to compare with"
        lines.append(line)
    return lines


def summary_text(results: List[Result], work: Path) -> str:
    lines = [f"GPU check, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; every log in {ARCHIVE}", ""]
    for r in results:
        lines.append(f"== {r.name}: {r.status}" + (f" in {r.seconds:.0f} s" if r.seconds else ""))
        lines += [f"   {line}" for line in r.lines]
    done = {r.name for r in results if r.seconds}
    if "train" in done:
        lines += ["", "== train vs cpu-train"]
        lines += [f"   {line}" for line in compare_training(read_metrics(work / "runs" / "cuda"),
                                                             read_metrics(work / "runs" / "cpu"))]
    table = work / "gpu_compare.md"
    if table.is_file():
        lines += ["", "== bench table (benchmarks/gpu_compare.py)", table.read_text()]
    return "\n".join(lines) + "\n"


def total(clock: Clock, deadline_s: float) -> Result:
    return Result("total", f"{deadline_s - clock.left():.0f} s of the {deadline_s:.0f} s deadline")


def _write_atomically(path: Path, write) -> None:
    partial = path.with_name(f".{path.name}.partial")
    write(partial)
    os.replace(partial, path)


def write_outputs(results: List[Result], work: Path, out: Path, root: Path = ROOT) -> None:
    """$OUT/summary.txt and $OUT/gpu_check.tar.gz (the work folder and the CuPy kernel cache): two files."""
    text = summary_text(results, work)
    _write_atomically(out / SUMMARY, lambda p: p.write_text(text))
    (work / SUMMARY).write_text(text)

    cache = root / ".device_data" / "cupy_cache"

    def pack(path, with_cache=True):
        with tarfile.open(path, "w:gz") as tar:
            tar.add(work, arcname="gpu_check")
            if with_cache and cache.is_dir():
                tar.add(cache, arcname="cupy_cache")

    _write_atomically(out / ARCHIVE, pack)
    if (out / ARCHIVE).stat().st_size > FILE_LIMIT_BYTES:  # it would not come back: the logs matter more
        _write_atomically(out / ARCHIVE, lambda p: pack(p, with_cache=False))


def set_up(python: str, env: Dict[str, str], site: Path, root: Path = ROOT) -> Result:
    """Install the carried wheels offline when tensorboardX is missing; check the carried data is there."""
    lines, ok = [], True
    wheels = sorted(glob.glob(str(root / ".whl" / "*.whl")))
    if _has(python, "tensorboardX", env):
        lines.append("tensorboardX already importable")
    elif wheels:
        installed = install_wheels(python, wheels, site)
        ok = installed.returncode == 0
        lines.append(f"offline install of {', '.join(Path(w).name for w in wheels)} into {site}: "
                     f"exit {installed.returncode}")
        lines += installed.stderr.splitlines()[-5:]
    else:
        ok = False
        lines.append("tensorboardX missing and no wheels in .whl/ (run `python3 scripts/gpu_check.py prepare`)")
    missing = [name for name in DATA_FILES if not (Path(env["FASHION_MNIST_DIR"]) / name).is_file()]
    if missing:
        ok = False
        lines.append(f"no carried data: {env['FASHION_MNIST_DIR']} lacks {', '.join(missing)}")
    return Result("setup", "ok" if ok else "incomplete", 0.0, lines)


def main(argv: List[str]) -> int:
    if argv[:1] == ["prepare"]:
        source = Path(argv[2]) if argv[1:2] == ["--source"] else Path("/usr/share/datasets/fashion-mnist")
        return prepare(source)
    deadline = float(os.environ.get("GPU_CHECK_DEADLINE", DEADLINE_S))
    clock = Clock(deadline)
    python = os.environ.get("GPU_CHECK_PYTHON", sys.executable)
    out = Path(os.environ.get("OUT") or ROOT / "gpu_check_out")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    site = work / "site"
    env = step_environment(site)
    results = [set_up(python, env, site)]
    selected = os.environ.get("GPU_CHECK_STEPS", "").split() or None
    results += run_steps(build_steps(python, work, env), clock, work, env, out, selected, first=results)
    write_outputs(results + [total(clock, deadline)], work, out)
    shutil.rmtree(work, ignore_errors=True)  # all of it is in the archive
    print((out / SUMMARY).read_text())
    return 0 if all(r.status == "ok" for r in results) else 1  # a step skipped for time is not a pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
