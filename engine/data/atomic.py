"""Atomic file writes: readers see the old file or the whole new one, never a partial one."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_open(path: os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Write to a temp file in ``path``'s directory; on success fsync it and rename it over ``path``
    (``os.replace`` is atomic on POSIX and Windows); on any error, Ctrl-C included, delete it.

    >>> with atomic_open("checkpoint.npz") as f:
    ...     f.write(data)
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
