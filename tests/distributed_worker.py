"""The per-rank programs of tests/test_distributed.py: ``mpiexec -n 2 python distributed_worker.py SCENARIO OUT``.

Scenarios: ``train`` (broadcast, one step's averaged gradients, then many SGD steps; each rank saves
its arrays to OUT/rank<r>.npz), ``raise`` (rank 1 raises at step 3), ``stall`` (rank 1 stops
responding at step 3), ``die`` (rank 1 exits at step 3 without a word), ``sigint`` (wait for
Ctrl-C), ``cuda`` (a model on cuda, with the CUDA emulator as cupy) and ``config`` (the ranks pass
different configurations).
"""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

import engine
from engine import nn
from engine.distributed import ConfigMismatch, DistributedContext, shard
from engine.models import lenet
from engine.training.loop import evaluate

SEED, STEPS, GRAD_BATCH, STEP_BATCH, EVAL_BATCH, LR = 7, 30, 256, 64, 100, 0.1


def random_images(n: int = 499):
    """``(X, y)``: n images (n, 1, 28, 28) float32 and labels (n,) int64, the same in every process."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)


def gradient_step(model, loader, dist: DistributedContext, epoch: int = 0):
    """Gradients of the mean cross-entropy over the first batch of ``epoch``, averaged over ranks."""
    X, y = next(loader.batches(epoch))
    model.zero_grad()
    nn.CrossEntropyLoss()(model(X), y).backward()
    dist.average_gradients(model, samples=len(y))


def train(model, loader, dist: DistributedContext, steps: int):
    optimizer = engine.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    done = 0
    for epoch in range(steps):
        for X, y in loader.batches(epoch):
            if done == steps:
                return
            optimizer.zero_grad()
            nn.CrossEntropyLoss()(model(X), y).backward()
            dist.average_gradients(model, samples=len(y))
            optimizer.step()
            done += 1


def state(model, prefix: str):
    return {f"{prefix}/{name}": p.detach().numpy().copy() for name, p in model.named_parameters()}


def scenario_train(dist: DistributedContext, out: str):
    engine.manual_seed(SEED + dist.rank)  # a different initialisation on each rank: the broadcast must fix it
    model = lenet()
    arrays = state(model, "before")
    dist.broadcast_module(model)
    arrays.update(state(model, "init"))
    data = random_images()
    gradient_step(model, dist.data_loader(data, GRAD_BATCH, shuffle=True, seed=SEED), dist)
    arrays.update({f"grad/{name}": p.grad.numpy() for name, p in model.named_parameters()})
    train(model, dist.data_loader(data, STEP_BATCH, shuffle=True, seed=SEED), dist, STEPS)
    arrays.update(state(model, "trained"), local_rank=dist.local_rank)
    loss, accuracy, confusion = dist.reduce_evaluation(
        evaluate(model, dist.data_loader(data, EVAL_BATCH).batches(0), num_classes=10))
    arrays.update({"eval/loss": loss, "eval/accuracy": accuracy, "eval/confusion": confusion})
    np.savez(f"{out}/rank{dist.rank}.npz", **arrays)


class HostCollectives:
    """Stands in for NCCL on the CUDA emulator, whose "device" arrays are host memory: reduces them over MPI."""

    def __init__(self, comm):
        from mpi4py import MPI

        self.comm, self.mpi, self.calls = comm, MPI, []

    def allreduce_sum_(self, array, what):
        self.calls.append((what, type(array).__module__))
        self.comm.Allreduce(self.mpi.IN_PLACE, array.view(np.ndarray), op=self.mpi.SUM)

    def broadcast_(self, array, root, what):
        self.calls.append((what, type(array).__module__))
        self.comm.Bcast(array.view(np.ndarray), root=root)


def linear_inputs():
    return np.random.default_rng(1).standard_normal((8, 10)).astype(np.float32)


def scenario_cuda(dist: DistributedContext, out: str):
    """With ``import cupy`` the CUDA emulator: a model on cuda goes through the GPU collectives."""
    dist._nccl = HostCollectives(dist.comm)  # what _nccl_collectives() would create on a GPU machine
    engine.manual_seed(SEED + dist.rank)
    model = nn.Linear(10, 3).to("cuda")
    dist.broadcast_module(model)
    X = engine.from_numpy(shard(linear_inputs(), dist.rank, dist.size)).to("cuda")
    (model(X) ** 2).mean().backward()
    dist.average_gradients(model, samples=len(X))
    arrays = {f"grad/{name}": p.grad.cpu().numpy() for name, p in model.named_parameters()}
    arrays.update({f"device/{name}": str(p.grad.device) for name, p in model.named_parameters()})
    np.savez(f"{out}/rank{dist.rank}.npz", calls=np.array(dist._nccl.calls), **arrays)


def small_steps(dist: DistributedContext, fail_at: int, failure, timeout: float = 30.0):
    model = nn.Linear(10, 2)
    dist.broadcast_module(model)  # under the start's timeout: ranks may start seconds apart on a busy machine
    dist.timeout = timeout
    X = engine.randn(8, 10)
    for step in range(1, 11):
        if dist.rank == 1 and step == fail_at:
            failure()
        model.zero_grad()
        model(X).sum().backward()
        dist.average_gradients(model)
    print(f"rank {dist.rank} finished all steps", flush=True)


def say(line: str) -> None:
    """One line on stdout in one write (mpiexec forwards the ranks' writes as they come)."""
    os.write(sys.stdout.fileno(), (line + "\n").encode())


def stop_together_on_ctrl_c(dist: DistributedContext):
    """mpiexec passes Ctrl-C (SIGINT) to every rank; ``dist.any`` makes them all stop after the same step,
    even a rank that never sees the signal (here rank 1 ignores it)."""
    requested = []
    if dist.rank == 1:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, lambda signum, frame: requested.append(signum))
    dist.barrier()
    say(f"rank {dist.rank} ready")
    for step in range(1, 401):  # 20 s at most
        time.sleep(0.05)
        if dist.any(bool(requested)):
            say(f"rank {dist.rank} stopped after step {step}")
            return


def injected_failure():
    raise RuntimeError("injected failure at step 3")


def main(scenario: str, out: str):
    engine.set_num_threads(1)
    dist = DistributedContext(timeout=30.0)
    with dist:
        if scenario == "train":
            scenario_train(dist, out)
        elif scenario == "raise":
            small_steps(dist, 3, injected_failure)
        elif scenario == "die":
            small_steps(dist, 3, lambda: os._exit(3))
        elif scenario == "stall":
            small_steps(dist, 3, lambda: time.sleep(120), timeout=2.0)
        elif scenario == "cuda":
            scenario_cuda(dist, out)
        elif scenario == "sigint":
            stop_together_on_ctrl_c(dist)
        elif scenario == "config":
            try:
                dist.check_same_config({"lr": 0.1 if dist.rank == 0 else 0.2, "epochs": 1})
            except ConfigMismatch as exc:
                if dist.is_main:
                    print(f"error: {exc}", file=sys.stderr)
                return 2
            print("configuration accepted", flush=True)
        else:
            raise SystemExit(f"unknown scenario {scenario!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
