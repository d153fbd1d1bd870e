"""Compile the CPU kernels that ``python -m engine.train_lenet`` uses, into Numba's on-disk cache.

``python -m engine.training.warmup`` (the last step of ``scripts/install.sh``): one training step of the default
LeNet on random data (batch 256, both convolution algorithms, as ``--conv-algo auto`` times them) and one
evaluation pass (batch 1000), so that a fresh install's first training step loads compiled kernels instead of
compiling them (tens of seconds on two cores). Needs no data set and writes nothing but the cache.
"""
from __future__ import annotations

import sys
import time

import numpy as np

import engine
from engine import nn, optim
from engine.models import lenet
from engine.training.loop import evaluate


def warm_up(batch_size: int = 256, eval_batch: int = 1000) -> float:
    """One training step and one evaluation pass of ``lenet()`` on random data; returns the seconds taken."""
    started = time.perf_counter()
    rng = np.random.default_rng(0)
    model = lenet()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    x = engine.tensor(rng.random((batch_size, 1, 28, 28), dtype=np.float32))
    y = engine.tensor(rng.integers(0, 10, batch_size))
    optimizer.zero_grad()
    nn.CrossEntropyLoss(reduction="none")(model(x), y).mean().backward()
    optimizer.step()
    x_eval = engine.tensor(rng.random((eval_batch, 1, 28, 28), dtype=np.float32))
    evaluate(model, [(x_eval, engine.tensor(rng.integers(0, 10, eval_batch)))], num_classes=10)
    return time.perf_counter() - started


def main() -> int:
    seconds = warm_up()
    print(f"compiled the training kernels into Numba's cache ({engine.get_backend()} backend, {seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
