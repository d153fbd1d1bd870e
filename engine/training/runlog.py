"""A training run's directory ``runs/expN/``: config JSON, metrics CSV and TensorBoard scalars."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional

from engine.data.atomic import atomic_open

INSTALL_CLI = "pip install 'convengine[cli]' (in a checkout: bash scripts/install.sh)"
# One row per epoch, in this order, in metrics.csv (and the checkpoint's history). epoch_seconds:
# training + evaluation; train_seconds: the training steps only; images_per_second: of those steps.
COLUMNS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_seconds", "train_seconds",
           "images_per_second")
# metrics.csv column -> TensorBoard tag (the seed's three under metrics/, like add_scalars('metrics', ...)).
TAGS = {
    "train_loss": "metrics/train_loss", "train_acc": "metrics/train_acc", "test_acc": "metrics/test_acc",
    "test_loss": "metrics/test_loss", "lr": "train/lr", "epoch_seconds": "time/epoch_seconds",
    "train_seconds": "time/train_seconds",
    "images_per_second": "time/images_per_second",
}


def new_run_dir(root: os.PathLike = "runs") -> Path:
    """Create and return ``root/expN`` with N one more than the largest existing (exp1 first)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        numbers = [int(m.group(1)) for p in root.iterdir() if (m := re.fullmatch(r"exp(\d+)", p.name))]
        run = root / f"exp{max(numbers, default=0) + 1}"
        try:
            run.mkdir()  # fails if a concurrent run took this number: try the next one
            return run
        except FileExistsError:
            continue


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def import_tensorboardx():
    """tensorboardX's modules for writing events, imported without letting it import torch; None when
    tensorboardX is not installed.

    tensorboardX imports torch whenever it is installed (seconds of start-up, and a dependency
    the engine must not have); a ``None`` entry in ``sys.modules`` makes that import fail, which
    tensorboardX handles.
    """
    hide_torch = "torch" not in sys.modules  # already imported by someone else (e.g. tests): nothing to avoid
    if hide_torch:
        sys.modules["torch"] = None
    try:
        from tensorboardX import summary
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event, SessionLog
    except ImportError:
        return None
    finally:
        if hide_torch:
            del sys.modules["torch"]
    return SimpleNamespace(scalar=summary.scalar, EventsWriter=EventsWriter, Event=Event, SessionLog=SessionLog)


class EventFile:
    """TensorBoard scalars written synchronously: after :meth:`flush` they are on disk (fsynced).

    (tensorboardX's SummaryWriter queues events for a background thread, so its ``flush()`` can
    return before they are written and a kill -9 loses them.) ``purge_step``: TensorBoard hides
    the events of earlier files from that step on (what a resumed run redoes).
    """

    def __init__(self, tbx, directory: Path, purge_step: Optional[int]):
        self.tbx = tbx
        # a unique suffix: a resumed run never reuses (and truncates) the file of a run started in the same
        # second, even in the same process (the tests run the CLI in-process)
        self.writer = tbx.EventsWriter(str(directory / "events"), f".{os.getpid()}.{uuid.uuid4().hex[:8]}")
        if purge_step is not None:
            self.writer.write_event(tbx.Event(step=purge_step, wall_time=time.time(),
                                              session_log=tbx.SessionLog(status=tbx.SessionLog.START)))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.write_event(self.tbx.Event(step=step, wall_time=time.time(), summary=self.tbx.scalar(tag, value)))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class RunLog:
    """Writes one run's logs into ``run_dir``.

    ``config.json`` (the run's settings), ``metrics.csv`` (rewritten whole from the history each
    epoch, so a resumed run has each epoch once) and TensorBoard scalars (``events.*``; skipped,
    with one warning line, when tensorboardX is not installed).
    ``start_epoch`` > 0 (resuming) purges TensorBoard events logged after it by the interrupted run.
    """

    def __init__(self, run_dir: os.PathLike, start_epoch: int = 0, warn=None):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        tbx = import_tensorboardx()
        self.events = None
        if tbx is None:
            (warn or _warn)(f"warning: tensorboardX is not installed, so no TensorBoard events are written "
                            f"(everything else is); install it with: {INSTALL_CLI}")
        else:
            self.events = EventFile(tbx, self.dir, start_epoch + 1 if start_epoch else None)

    def write_config(self, config: Dict[str, Any]) -> None:
        write_text_atomic(self.dir / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")

    def log_epoch(self, row: Dict[str, float], history: List[Dict[str, float]]) -> None:
        """TensorBoard scalars of ``row`` at step ``row['epoch']`` (on disk when this returns); metrics.csv
        from ``history``."""
        if self.events is not None:
            for column, tag in TAGS.items():
                self.events.add_scalar(tag, row[column], row["epoch"])
            self.events.flush()
        write_text_atomic(self.dir / "metrics.csv", metrics_csv(history))

    def close(self) -> None:
        if self.events is not None:
            self.events.close()


def _warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def metrics_csv(history: List[Dict[str, float]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items() if k in COLUMNS})
    return out.getvalue()


def read_metrics_csv(path: os.PathLike) -> List[Dict[str, float]]:
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def find_latest_checkpoint(root: os.PathLike = "runs", name: str = "checkpoint.npz") -> Optional[Path]:
    """The checkpoint of the highest-numbered ``root/expN`` that has one."""
    root = Path(root)
    if not root.is_dir():
        return None
    runs = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := re.fullmatch(r"exp(\d+)", p.name)))
    for _, run in reversed(runs):
        if (run / name).is_file():
            return run / name
    return None
