"""The training loop: epochs of SGD steps, per-epoch evaluation, checkpoints, Ctrl-C, divergence.

A run's position is ``(epoch, step)``: ``epoch`` epochs are complete and ``step`` batches of the
next one are done. Checkpoints store that position, so resuming replays exactly the batches that
were left (the loader's order depends only on the seed and the epoch).
"""
from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

import engine
from engine import nn
from engine.training.checkpoint import NonFiniteState, is_finite_number, is_int, save_checkpoint
from engine.training.runlog import COLUMNS


class Diverged(RuntimeError):
    """The training loss, an evaluation loss or the parameters became NaN or infinite.

    ``what`` says which (``"the training loss became nan"``); ``where`` the position
    (``"step 3"``, ``"a step up to 50"``, ``"the end of the epoch"``). On several ranks it is
    raised on all of them at the same step (the losses it tests are reduced across ranks).
    """

    raised_on_all_ranks = True

    def __init__(self, epoch: int, what: str, where: str):
        self.epoch = epoch
        super().__init__(f"{what} at epoch {epoch}, {where}")


class Interrupted(RuntimeError):
    """Ctrl-C stopped training after a complete step; the position is in the checkpoint.

    On several ranks every rank stops after the same step (the request is shared, ``dist.any``)."""

    raised_on_all_ranks = True

    def __init__(self, epoch: int, step: int, checkpoint: Optional[Path]):
        self.epoch, self.step, self.checkpoint = epoch, step, checkpoint
        super().__init__(f"interrupted at epoch {epoch}, step {step}")


class StopFlag:
    """While active, the first Ctrl-C (SIGINT) only sets ``requested`` (the loop stops at the end
    of the current step, in a consistent state); a second one raises KeyboardInterrupt at once."""

    def __init__(self):
        self.requested = False
        self._installed, self._previous = False, None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            self._previous = signal.signal(signal.SIGINT, self._handler)
            self._installed = True
        return self

    def __exit__(self, *exc):
        if self._installed:
            # None means the previous handler was not set from Python: fall back to the default
            signal.signal(signal.SIGINT, self._previous if self._previous is not None else signal.SIG_DFL)
            self._installed = False
        return False


def evaluate(model, batches, num_classes: int, stop: Optional[StopFlag] = None):
    """Mean loss, accuracy and confusion matrix ``[true, predicted]`` of ``model`` over ``batches``.

    Sums stay on the model's device; the host reads them once at the end. Returns None when
    ``stop`` was requested before the pass finished.
    """
    criterion = nn.CrossEntropyLoss(reduction="sum")
    model.eval()
    loss_sum, confusion, classes = 0.0, 0.0, None
    with engine.no_grad():
        for X, y in batches:
            if stop is not None and stop.requested:
                return None
            if classes is None:
                classes = engine.arange(num_classes, device=y.device)
            logits = model(X)
            loss_sum = criterion(logits, y).double() + loss_sum
            # one-hot(true)^T @ one-hot(predicted): the batch's confusion counts, without leaving the device
            true = (y.unsqueeze(1) == classes).float()
            predicted = (logits.argmax(dim=1).unsqueeze(1) == classes).float()
            confusion = true.T @ predicted + confusion
    model.train()
    confusion = confusion.cpu().numpy().round().astype(np.int64)
    count = int(confusion.sum())
    return float(loss_sum.item()) / count, float(np.trace(confusion)) / count, confusion


class Trainer:
    """Runs epochs of training on ``train_loader`` with per-epoch evaluation.

    ``history`` holds one metrics row per completed epoch (``runlog.COLUMNS``); ``on_epoch_end(row)`` is called
    before each epoch's checkpoint is written. ``loss_read_every``: how often (in steps) the loop reads the
    running loss from the device and checks it is finite (1 on CPU, where reading is free; more on a GPU,
    where a read waits for the queued steps; the ops inside a step may read more, e.g. cross_entropy's range check).

    ``dist``: a :class:`~engine.distributed.DistributedContext` when training on several ranks: the loader then
    yields this rank's share of each global batch, gradients are averaged after ``backward``, the running loss,
    evaluations and Ctrl-C requests are combined over the ranks, and only the rank given a ``checkpoint_path``
    (rank 0) writes. None (or a context of size 1): one process, nothing is exchanged.
    """

    def __init__(self, model, optimizer, train_loader, train_eval_batches, test_eval_batches, *,
                 num_classes: int, reporter, checkpoint_path: Optional[Path], meta: Dict[str, Any],
                 loss_read_every: int = 1, on_epoch_end=None, dist=None):
        self.model, self.optimizer = model, optimizer
        self.train_loader = train_loader
        self.train_eval_batches, self.test_eval_batches = train_eval_batches, test_eval_batches
        self.num_classes = num_classes
        self.reporter = reporter
        self.checkpoint_path = checkpoint_path
        self.meta = meta  # JSON-able run description stored in every checkpoint (config, run dir)
        self.loss_read_every = max(1, loss_read_every)
        self.on_epoch_end = on_epoch_end
        self.dist = dist if dist is not None and dist.size > 1 else None
        self.criterion = nn.CrossEntropyLoss(reduction="none")
        self.epoch, self.step, self.partial_seconds = 0, 0, 0.0
        self.history: List[Dict[str, float]] = []
        self.last_confusion: Optional[np.ndarray] = None

    # -------------------------------------------------------------- state
    @staticmethod
    def check_position(meta: Dict[str, Any]) -> None:
        """Raise ValueError naming the first key of a checkpoint's position (what :meth:`save` adds:
        epoch, step, partial_seconds, history) that is missing or of the wrong type."""
        wanted = {"epoch": "an integer >= 0", "step": "an integer >= 0", "partial_seconds": "a number >= 0",
                  "history": "a list of metrics rows"}
        for key, kind in wanted.items():
            if key not in meta:
                raise ValueError(f"its metadata lacks {key!r}")
            value = meta[key]
            ok = (isinstance(value, list) if key == "history" else
                  (is_int(value) if key in ("epoch", "step") else is_finite_number(value)) and value >= 0)
            if not ok:
                raise ValueError(f"its metadata has {key!r} = {value!r}, expected {kind}")
        for i, row in enumerate(meta["history"]):
            if not (isinstance(row, dict) and set(COLUMNS) <= set(row)
                    and all(is_finite_number(row[k]) for k in COLUMNS)):
                raise ValueError(f"its history row {i} is {row!r}, expected finite numbers for {', '.join(COLUMNS)}")
        if len(meta["history"]) != meta["epoch"]:
            raise ValueError(f"its history has {len(meta['history'])} rows for {meta['epoch']} epochs")

    def restore(self, meta: Dict[str, Any]) -> None:
        """Continue from a checkpoint's position (model/optimizer already loaded)."""
        self.epoch, self.step = int(meta["epoch"]), int(meta["step"])
        self.partial_seconds = float(meta["partial_seconds"])
        self.history = list(meta["history"])

    def save(self) -> Optional[Path]:
        """Write the checkpoint; raises Diverged (and writes nothing) when the state is not finite."""
        if self.checkpoint_path is None:
            return None
        meta = dict(self.meta, epoch=self.epoch, step=self.step, partial_seconds=self.partial_seconds,
                    history=self.history)
        try:
            save_checkpoint(self.checkpoint_path, self.model, self.optimizer, meta)
        except NonFiniteState as exc:
            epoch, where = (self.epoch + 1, f"step {self.step}") if self.step else (self.epoch, "the end of the epoch")
            raise Diverged(epoch, f"the model's state became non-finite ({exc})", where) from None
        return self.checkpoint_path

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -------------------------------------------------------------- loop
    def run(self, epochs: int) -> List[Dict[str, float]]:
        """Train until ``epochs`` epochs are complete. Raises Interrupted (after saving) or Diverged."""
        self.reporter.start(self.epoch)
        try:
            with StopFlag() as stop:
                while self.epoch < epochs:
                    self._run_epoch(stop)
        finally:
            self.reporter.stop()
        return self.history

    def _run_epoch(self, stop: StopFlag) -> None:
        epoch = self.epoch + 1  # 1-based for people
        steps = len(self.train_loader)
        self.reporter.epoch_start(epoch, self.step)
        started = time.perf_counter()
        self.model.train()
        running, running_steps, images = 0.0, 0, 0
        device_sum, pending = None, 0  # losses summed on the device between host reads
        for X, y in self.train_loader.batches(self.epoch, start=self.step):
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(X), y).mean()
            self.step += 1
            images += len(y)
            device_sum = loss.detach() if device_sum is None else device_sum + loss.detach()
            pending += 1
            if pending == self.loss_read_every or self.step == steps:
                total = self._mean_over_ranks(device_sum.item())
                if not math.isfinite(total):  # checked before the step: parameters stay finite
                    where = f"step {self.step}" if pending == 1 else f"a step up to {self.step}"
                    raise Diverged(epoch, f"the training loss became {total}", where)
                running, running_steps, device_sum, pending = running + total, running_steps + pending, None, 0
            loss.backward()
            if self.dist is not None:  # weighted by the shard sizes: exactly the gradient of the global mean loss
                self.dist.average_gradients(self.model, samples=len(y))
            self.optimizer.step()
            elapsed = time.perf_counter() - started
            self.reporter.steps(self.step, images * self.ranks / max(elapsed, 1e-9), running / max(running_steps, 1))
            if self._stop_requested(stop):
                self.partial_seconds += elapsed
                raise Interrupted(epoch, self.step, self._save_then_wait())
        engine.cuda.synchronize()  # GPU steps are asynchronous: the epoch's time must include the queued ones
        train_seconds = self.partial_seconds + time.perf_counter() - started
        self.reporter.evaluating()
        train = self._evaluate(self.train_eval_batches(), stop)
        test = self._evaluate(self.test_eval_batches(), stop) if train else None
        if test is None or self._stop_requested(stop):  # Ctrl-C during evaluation: the epoch's steps are done,
            self.partial_seconds = train_seconds         # evaluation is redone
            raise Interrupted(epoch, self.step, self._save_then_wait())
        for name, metrics in (("training-set", train), ("test-set", test)):
            if not math.isfinite(metrics[0]):  # the last step's update: nothing checked it yet
                raise Diverged(epoch, f"the {name} loss became {metrics[0]}", "the end of the epoch")
        row = {"epoch": epoch, "train_loss": train[0], "train_acc": train[1], "test_loss": test[0],
               "test_acc": test[1], "lr": self.lr(),
               "epoch_seconds": self.partial_seconds + time.perf_counter() - started,
               "train_seconds": train_seconds,  # the steps only, without the evaluation passes
               "images_per_second": self.train_loader.num_samples / train_seconds}
        self.history.append(row)
        self.last_confusion = test[2]
        self.epoch, self.step, self.partial_seconds = self.epoch + 1, 0, 0.0
        self.reporter.epoch_end(row)
        if self.on_epoch_end is not None:  # logs first: a resumed run purges what follows its checkpoint
            self.on_epoch_end(row)
        self._save_then_wait()

    # -------------------------------------------------------------- several ranks
    @property
    def ranks(self) -> int:
        return 1 if self.dist is None else self.dist.size

    def _mean_over_ranks(self, value: float) -> float:
        return value if self.dist is None else self.dist.reduce_metrics({"value": value})["value"]

    def _stop_requested(self, stop: StopFlag) -> bool:
        return stop.requested if self.dist is None else self.dist.any(stop.requested)

    def _evaluate(self, batches, stop: StopFlag):
        """``evaluate`` over ``batches`` (this rank's shard on several ranks, combined over them). Ranks
        finish the pass whatever their Ctrl-C state (a rank that left it would leave the others waiting);
        the caller asks them all afterwards."""
        if self.dist is None:
            return evaluate(self.model, batches, self.num_classes, stop)
        return self.dist.reduce_evaluation(evaluate(self.model, batches, self.num_classes))

    def _save_then_wait(self) -> Optional[Path]:
        """Save (the rank with a checkpoint path does); on several ranks, return when the file is written,
        so that no rank leaves (and no launcher ends the job) while rank 0 is still writing it."""
        if self.dist is None:
            return self.save()
        try:
            path, failure = self.save(), None
        except Diverged as exc:  # only rank 0 saves, so only it can find the state non-finite: tell the others
            path, failure = None, exc
        if self.dist.any(failure is not None):  # also the wait: rank 0 gets here once the file is written
            raise failure or Diverged(self.epoch, "the model's state became non-finite (found by rank 0)",
                                      f"step {self.step}" if self.step else "the end of the epoch")
        return path
