"""A training run's directory ``runs/expN/``: config JSON, metrics CSV and TensorBoard scalars."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from engine.data.atomic import atomic_open

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


def import_summary_writer():
    """tensorboardX's SummaryWriter, imported without letting it import torch.

    tensorboardX imports torch whenever it is installed (seconds of start-up, and a dependency
    the engine must not have); a ``None`` entry in ``sys.modules`` makes that import fail, which
    tensorboardX handles.
    """
    if "torch" in sys.modules:  # already imported by someone else (e.g. tests): nothing to avoid
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class RunLog:
    """Writes one run's logs into ``run_dir``.

    ``config.json`` (the run's settings), ``metrics.csv`` (rewritten whole from the history each
    epoch, so a resumed run has each epoch once) and TensorBoard scalars (``events.*``).
    ``start_epoch`` > 0 (resuming) purges TensorBoard events logged after it by the interrupted run.
    """

    def __init__(self, run_dir: os.PathLike, start_epoch: int = 0):
        SummaryWriter = import_summary_writer()  # noqa: N806

        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(logdir=str(self.dir), purge_step=start_epoch + 1 if start_epoch else None)

    def write_config(self, config: Dict[str, Any]) -> None:
        write_text_atomic(self.dir / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")

    def log_epoch(self, row: Dict[str, float], history: List[Dict[str, float]]) -> None:
        """TensorBoard scalars of ``row`` at step ``row['epoch']``; metrics.csv from ``history``."""
        for column, tag in TAGS.items():
            self.writer.add_scalar(tag, row[column], row["epoch"])
        self.writer.flush()
        write_text_atomic(self.dir / "metrics.csv", metrics_csv(history))

    def close(self) -> None:
        self.writer.close()


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
