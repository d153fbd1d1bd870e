"""engine.distributed: data-parallel training on 2 MPI ranks against the 1-process run, and its faults.

The 2-rank cases run ``mpiexec -n 2`` on tests/distributed_worker.py (one thread per rank, bounded
timeouts) and are skipped, with the reason, when mpi4py or mpiexec is missing. The rest (sharding,
dispatch to NCCL with a fake, the lone-process behaviour) run in this process.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import distributed_worker as worker
import numpy as np
import pytest

import engine
from engine.data import DataLoader
from engine.distributed import DistributedContext, MPIUnavailable, ShardedDataLoader
from engine.distributed.config_check import describe_differences
from engine.distributed.context import collectives_for
from engine.distributed.mpi_collectives import Watchdog
from engine.distributed.nccl_collectives import NcclCollectives
from engine.distributed.world import LAUNCHER_VARIABLES, world_comm
from engine.models import lenet
from engine.training.loop import evaluate

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))


def _mpi4py_missing() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return True
    return False


needs_mpi = pytest.mark.skipif(MPIEXEC is None or _mpi4py_missing(),
                               reason="needs mpiexec and mpi4py (bash scripts/install_mpi.sh installs them)")


def worker_command(scenario: str, out: Path, pythonpath=(ROOT,)):
    """``mpiexec -n 2`` on the worker, and its environment (one thread per rank)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES + ("ENGINE_BACKEND",)}
    env.update(PYTHONPATH=os.pathsep.join(map(str, pythonpath)), NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return [MPIEXEC, "-n", "2", sys.executable, str(TESTS / "distributed_worker.py"), scenario, str(out)], env


def run_ranks(scenario: str, out: Path, timeout: float = 60.0, pythonpath=(ROOT,)):
    """Run the worker on 2 ranks; returns (completed process, seconds it took)."""
    command, env = worker_command(scenario, out, pythonpath)
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    return result, time.monotonic() - started


# --------------------------------------------------------------------------- 2 ranks against 1 process
@pytest.fixture(scope="module")
def two_rank_training(tmp_path_factory):
    out = tmp_path_factory.mktemp("distributed")
    result, _ = run_ranks("train", out, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return [dict(np.load(out / f"rank{r}.npz")) for r in (0, 1)]


def one_process_model():
    engine.set_num_threads(1)
    engine.manual_seed(worker.SEED)
    return lenet()


@needs_mpi
def test_broadcast_gives_every_rank_the_parameters_of_rank_0(two_rank_training):
    rank0, rank1 = two_rank_training
    assert (rank0["local_rank"], rank1["local_rank"]) == (0, 1)  # both on this machine
    names = [k.split("/", 1)[1] for k in rank0 if k.startswith("before/")]
    assert any(not np.array_equal(rank0[f"before/{n}"], rank1[f"before/{n}"]) for n in names)  # seeded apart
    for n in names:
        np.testing.assert_array_equal(rank1[f"init/{n}"], rank0[f"before/{n}"], err_msg=n)
        np.testing.assert_array_equal(rank0[f"init/{n}"], rank0[f"before/{n}"], err_msg=n)


@needs_mpi
def test_two_ranks_of_128_give_the_gradients_of_one_process_of_256(two_rank_training):
    model = one_process_model()
    data = worker.random_images()
    worker.gradient_step(model, DataLoader(data, worker.GRAD_BATCH, shuffle=True, seed=worker.SEED),
                         DistributedContext())
    for name, p in model.named_parameters():
        expected = p.grad.numpy()
        for rank, arrays in enumerate(two_rank_training):
            # float32 sums over the batch in another order: rtol 1e-5 of each element, and of the tensor's scale
            np.testing.assert_allclose(arrays[f"grad/{name}"], expected, rtol=1e-5,
                                       atol=1e-5 * np.abs(expected).max(), err_msg=f"rank {rank}: {name}")


@needs_mpi
def test_parameters_stay_identical_across_ranks_and_follow_the_one_process_run(two_rank_training):
    rank0, rank1 = two_rank_training
    model = one_process_model()
    data = worker.random_images()  # 499 samples: the last batch of 64 splits 25/26 (weighted average)
    worker.train(model, DataLoader(data, worker.STEP_BATCH, shuffle=True, seed=worker.SEED), DistributedContext(),
                 worker.STEPS)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(rank0[f"trained/{name}"], rank1[f"trained/{name}"], err_msg=name)
        assert not np.array_equal(rank0[f"trained/{name}"], rank0[f"init/{name}"]), f"{name} did not train"
        np.testing.assert_allclose(rank0[f"trained/{name}"], p.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=name)


@needs_mpi
def test_evaluation_on_two_shards_gives_the_metrics_of_one_process(two_rank_training):
    model = one_process_model()
    for name, p in model.named_parameters():
        p._data[...] = two_rank_training[0][f"trained/{name}"]
    data = worker.random_images()  # 499 samples in batches of 100: the last one splits 49/50
    loss, accuracy, confusion = evaluate(model, DataLoader(data, worker.EVAL_BATCH).batches(0), num_classes=10)
    for arrays in two_rank_training:
        np.testing.assert_array_equal(arrays["eval/confusion"], confusion)
        assert arrays["eval/accuracy"] == accuracy
        np.testing.assert_allclose(arrays["eval/loss"], loss, rtol=1e-6)


@needs_mpi
def test_gpu_arrays_take_the_gpu_collectives_and_give_the_full_batch_gradients(tmp_path):
    # the CUDA emulator is cupy in the ranks; NCCL's stand-in reduces its (host-memory) arrays over MPI
    result, _ = run_ranks("cuda", tmp_path, pythonpath=(TESTS / "cuda_emulator" / "pythonpath", ROOT))
    assert result.returncode == 0, result.stderr[-3000:]
    engine.manual_seed(worker.SEED)
    model = engine.nn.Linear(10, 3)
    (model(engine.from_numpy(worker.linear_inputs())) ** 2).mean().backward()
    for rank in (0, 1):
        arrays = np.load(tmp_path / f"rank{rank}.npz")
        assert arrays["calls"].tolist() == [["the parameter broadcast", "cupy"], ["the gradient allreduce", "cupy"]]
        for name, p in model.named_parameters():
            assert str(arrays[f"device/{name}"]) == "cuda:0"
            np.testing.assert_allclose(arrays[f"grad/{name}"], p.grad.numpy(), rtol=1e-5, atol=1e-7,
                                       err_msg=f"rank {rank}: {name}")


# --------------------------------------------------------------------------- faults
@needs_mpi
def test_a_rank_that_raises_stops_the_others_with_its_error(tmp_path):
    result, seconds = run_ranks("raise", tmp_path)
    assert result.returncode != 0
    assert "rank 1 of 2 failed: RuntimeError: injected failure at step 3; stopping all ranks" in result.stderr
    assert "finished all steps" not in result.stdout
    assert seconds < 30


@needs_mpi
def test_a_rank_that_exits_stops_the_others(tmp_path):
    result, seconds = run_ranks("die", tmp_path)
    assert result.returncode != 0
    assert "finished all steps" not in result.stdout
    assert seconds < 30


@needs_mpi
def test_a_rank_that_stops_responding_makes_the_others_time_out(tmp_path):
    result, seconds = run_ranks("stall", tmp_path)  # rank 1 sleeps 120 s; the timeout is 2 s
    assert result.returncode != 0
    assert ("engine.distributed: rank 0 of 2: the gradient allreduce did not complete within 2 s; another rank "
            "has stopped, hangs or is far behind") in result.stderr
    assert seconds < 30


@needs_mpi
def test_ctrl_c_stops_every_rank_after_the_same_step(tmp_path):
    command, env = worker_command("sigint", tmp_path)

    def default_sigint():  # a shell that started pytest in the background may have left SIGINT ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=default_sigint, start_new_session=True) as job:
        try:
            seen = ""  # mpiexec may interleave the ranks' lines
            while not ("rank 0 ready" in seen and "rank 1 ready" in seen):
                line = job.stdout.readline()
                assert line, f"the ranks ended before they were ready: {seen!r} {job.stderr.read()}"
                seen += line
            job.send_signal(signal.SIGINT)  # mpiexec passes it to every rank
            out, err = job.communicate(timeout=30)
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
    assert job.returncode == 0, err
    stops = re.findall(r"rank (\d) stopped after step (\d+)", seen + out)
    assert sorted(rank for rank, _ in stops) == ["0", "1"] and len({step for _, step in stops}) == 1, out


@needs_mpi
def test_ranks_with_different_configurations_are_refused(tmp_path):
    result, _ = run_ranks("config", tmp_path)
    assert result.returncode == 2
    assert "the ranks were started with different configurations (lr: rank 0 = 0.1, rank 1 = 0.2)" in result.stderr
    assert "configuration accepted" not in result.stdout


def test_describe_differences_names_each_differing_key():
    text = describe_differences([{"lr": 0.1, "seed": 1}, {"lr": 0.1, "seed": 2, "extra": True}])
    assert text == "extra: rank 0 = \"<missing>\", rank 1 = true; seed: rank 0 = 1, rank 1 = 2"


# --------------------------------------------------------------------------- a lone process
def test_a_lone_process_is_rank_0_of_1_and_nothing_changes():
    dist = DistributedContext()
    assert (dist.rank, dist.size, dist.is_main, dist.local_rank) == (0, 1, True, 0)
    model = one_process_model()
    model(engine.randn(4, 1, 28, 28)).sum().backward()
    grads = [p.grad for p in model.parameters()]
    dist.average_gradients(model, samples=4)
    dist.broadcast_module(model)
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))
    assert type(dist.data_loader(worker.random_images(), 8)) is DataLoader
    assert dist.reduce_metrics({"loss": 2.5, "counts": np.arange(3)}, op="sum")["loss"] == 2.5
    assert dist.shard([1, 2, 3]) == [1, 2, 3] and dist.any(True) and not dist.any(False)
    dist.check_same_config({"lr": 0.1})
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        DistributedContext(timeout=0)


def test_a_bad_timeout_variable_is_named(monkeypatch):
    monkeypatch.setenv("ENGINE_DIST_TIMEOUT", "ten")
    with pytest.raises(ValueError, match="ENGINE_DIST_TIMEOUT must be a number of seconds, got 'ten'"):
        DistributedContext()


def test_a_lone_process_does_not_import_mpi4py():
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env["PYTHONPATH"] = str(ROOT)
    code = "import sys, engine.distributed as d; d.DistributedContext(); print('mpi4py' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


def test_mpiexec_without_mpi4py_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # `from mpi4py import MPI` now raises ImportError
    with pytest.raises(MPIUnavailable, match=r"mpiexec started this process but MPI for Python cannot be loaded "
                                             r".*bash scripts/install_mpi.sh"):
        world_comm({"PMI_SIZE": "2", "PMI_RANK": "0"})


# --------------------------------------------------------------------------- sharding
@pytest.mark.parametrize("size, n, batch", [(2, 499, 64), (3, 100, 30), (4, 64, 64)])
def test_the_ranks_shards_of_each_batch_are_the_one_process_batch(size, n, batch):
    data = (np.arange(n, dtype=np.float32).reshape(n, 1), np.arange(n, dtype=np.int64))
    single = DataLoader(data, batch, shuffle=True, seed=3)
    ranks = [ShardedDataLoader(data, batch, shuffle=True, seed=3, rank=r, size=size) for r in range(size)]
    assert all(len(r) == len(single) and r.num_samples == single.num_samples for r in ranks)
    for epoch in (0, 1):
        for b, (X, y) in enumerate(single.batches(epoch)):
            shards = [next(loader.batches(epoch, start=b)) for loader in ranks]
            assert all(abs(len(s[1]) - len(y) / size) < 1 for s in shards)
            np.testing.assert_array_equal(np.concatenate([s[1].numpy() for s in shards]), y.numpy())
            np.testing.assert_array_equal(np.concatenate([s[0].numpy() for s in shards]), X.numpy())


def test_sharding_refuses_a_batch_that_does_not_split_across_ranks():
    data = (np.zeros((10, 1), np.float32), np.zeros(10, np.int64))
    with pytest.raises(ValueError, match="batch_size .* must be divisible by the 3 ranks, got 4"):
        ShardedDataLoader(data, 4, rank=0, size=3)
    with pytest.raises(ValueError, match="the last batch has 1 samples, fewer than the 3 ranks"):
        ShardedDataLoader(data, 3, rank=0, size=3)
    ShardedDataLoader(data, 3, drop_last=True, rank=0, size=3)


# --------------------------------------------------------------------------- GPU arrays go to NCCL
class FakeCupyArray:
    """Stands for a cupy array: its type's module is 'cupy...' (how the engine recognises GPU arrays)."""

    def __init__(self, size, dtype="float32", pointer=0xC0FFEE):
        self.size, self.dtype = size, np.dtype(dtype)
        self.data = type("Memory", (), {"ptr": pointer})()
        self.device = type("Device", (), {"id": 0})()


FakeCupyArray.__module__ = "cupy._core.core"


class FakeNccl:
    """The parts of cupy.cuda.nccl that NcclCollectives uses, recording the calls."""

    NCCL_FLOAT16, NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = 6, 7, 8, 0
    calls = []

    @staticmethod
    def get_unique_id():
        return (1, 2, 3)

    class NcclCommunicator:
        def __init__(self, ndev, unique_id, rank):
            FakeNccl.calls.append(("init", ndev, unique_id, rank))

        def allReduce(self, send, receive, count, dtype, op, stream):  # noqa: N802 (NCCL's name)
            FakeNccl.calls.append(("allReduce", send, receive, count, dtype, op, stream))

        def bcast(self, buffer, count, dtype, root, stream):
            FakeNccl.calls.append(("bcast", buffer, count, dtype, root, stream))


class FakeMpiComm:
    def __init__(self):
        self.broadcasts = []

    def bcast(self, value, root):
        self.broadcasts.append((value, root))
        return value


def test_gpu_arrays_are_reduced_through_nccl_and_host_arrays_through_mpi():
    mpi, nccl = object(), object()
    assert collectives_for(FakeCupyArray(4), mpi, lambda: nccl) is nccl
    assert collectives_for(np.zeros(4, np.float32), mpi, lambda: nccl) is mpi


def test_nccl_collectives_share_rank_0s_unique_id_and_call_nccl_on_the_buffer():
    FakeNccl.calls.clear()
    comm = FakeMpiComm()
    collectives = NcclCollectives(comm, rank=0, size=2, nccl=FakeNccl, stream=lambda: 99)
    assert comm.broadcasts == [((1, 2, 3), 0)]
    collectives.allreduce_sum_(FakeCupyArray(10, "float32", pointer=1234), "gradients")
    collectives.broadcast_(FakeCupyArray(5, "float64", pointer=5678), root=0, what="parameters")
    assert FakeNccl.calls == [("init", 2, (1, 2, 3), 0), ("allReduce", 1234, 1234, 10, 7, 0, 99),
                              ("bcast", 5678, 5, 8, 0, 99)]
    with pytest.raises(TypeError, match="float16/32/64 arrays, got dtype int64"):
        collectives.allreduce_sum_(FakeCupyArray(3, "int64"), "gradients")


class RecordingComm:
    def __init__(self):
        self.aborted = threading.Event()

    def Get_rank(self):  # noqa: N802 (mpi4py's names)
        return 1

    def Get_size(self):  # noqa: N802
        return 2

    def Abort(self, code):  # noqa: N802
        self.aborted.set()


def test_the_watchdog_aborts_a_collective_that_outlives_the_timeout_and_spares_a_quick_one(capsys):
    comm = RecordingComm()
    watchdog = Watchdog(comm, timeout=0.2)
    with watchdog.guard("a quick allreduce"):
        pass
    time.sleep(0.4)
    assert not comm.aborted.is_set()
    with watchdog.guard("the gradient allreduce"):
        assert comm.aborted.wait(timeout=5)
    assert ("rank 1 of 2: the gradient allreduce did not complete within 0.2 s; another rank has stopped"
            in capsys.readouterr().err)
