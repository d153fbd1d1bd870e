"""Train any model of :mod:`engine.models` on FashionMNIST: ``python -m engine.train --model NAME``.

The steps, outputs and exit statuses are :mod:`engine.train_lenet`'s (the run directory with logs,
metrics, checkpoints and figures; ``--resume``; Ctrl-C; ``mpiexec -n K``); this entry point adds
``--model NAME`` (a factory of ``engine.models``, called with ``num_classes=10``) and ``--resize N``
(the 28x28 images resized to NxN bilinearly, batch by batch, see :mod:`engine.data.resize`), e.g.
``python -m engine.train --model resnet18 --resize 96``. ``--activation`` and ``--pool`` apply to
``--model lenet`` only. An unknown name is one line listing the available ones (exit 2).
"""
from __future__ import annotations

import sys
from typing import List, Optional

from engine import train_lenet

DESCRIPTION = ("Train a model of engine.models (the book's networks) on FashionMNIST with this engine: "
               "the same logs, checkpoints, resume, progress and figures as python -m engine.train_lenet.")


def build_parser():
    return train_lenet.build_parser(prog="python -m engine.train", description=DESCRIPTION, any_model=True)


def main(argv: Optional[List[str]] = None) -> int:
    return train_lenet.main(argv, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
