"""What the user sees while training: a rich progress bar on a terminal, plain lines elsewhere.

Three modes: ``quiet`` (only the final summary and errors), terminal (a live bar over epochs and
one over the current epoch's batches with images/s and the running loss, epoch lines printed
above them) and plain (not a TTY, e.g. CI logs: the epoch lines only, no control characters).
"""
from __future__ import annotations

import sys
from typing import Dict, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def format_epoch_line(row: Dict[str, float], epochs: int) -> str:
    width = len(str(epochs))
    return (f"epoch {row['epoch']:>{width}}/{epochs}  train loss {row['train_loss']:.4f}  "
            f"train acc {row['train_acc']:.4f}  test acc {row['test_acc']:.4f}  "
            f"{row['epoch_seconds']:.1f} s (train {row['train_seconds']:.1f} s, {row['images_per_second']:.0f} img/s)")


class Reporter:
    """Progress output of one training run (see the module docstring for the three modes)."""

    def __init__(self, epochs: int, steps_per_epoch: int, quiet: bool = False, console: Optional[Console] = None):
        self.epochs, self.steps_per_epoch, self.quiet = epochs, steps_per_epoch, quiet
        self.console = console or Console(highlight=False)
        self.live = not quiet and self.console.is_terminal
        self.progress: Optional[Progress] = None

    # -------------------------------------------------------------- lifecycle
    def start(self, first_epoch: int) -> None:
        if not self.live:
            return
        self.progress = Progress(
            TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, transient=True)  # the bars go; the epoch lines and summary stay
        self.progress.start()
        self.epoch_task = self.progress.add_task("epochs", total=self.epochs, completed=first_epoch, rate="", loss="")
        self.batch_task = self.progress.add_task("batches", total=self.steps_per_epoch, rate="", loss="")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    # -------------------------------------------------------------- events
    def epoch_start(self, epoch: int, start_step: int) -> None:
        """``epoch`` is 1-based; ``start_step`` > 0 when resuming mid-epoch."""
        if self.progress is not None:
            self.progress.reset(self.batch_task, total=self.steps_per_epoch, completed=start_step,
                                description=f"epoch {epoch}", rate="", loss="")

    def steps(self, done: int, images_per_second: float, running_loss: Optional[float]) -> None:
        if self.progress is not None:
            loss = "" if running_loss is None else f"loss {running_loss:.4f}"
            self.progress.update(self.batch_task, completed=done, rate=f"{images_per_second:,.0f} img/s", loss=loss)

    def evaluating(self) -> None:
        if self.progress is not None:
            self.progress.update(self.batch_task, rate="evaluating", loss="")

    def epoch_end(self, row: Dict[str, float]) -> None:
        if self.progress is not None:
            self.progress.update(self.epoch_task, completed=row["epoch"])
        self.info(format_epoch_line(row, self.epochs))

    def info(self, text: str) -> None:
        """A line shown unless quiet (above the bar on a terminal)."""
        if self.quiet:
            return
        self._print(text)

    def summary(self, text: str) -> None:
        """Shown in every mode."""
        self._print(text)

    def _print(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stdout, flush=True)
