"""Atomic file writes: readers see the old file or the whole new one, never a partial one."""
from __future__ import annotations

import glob
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_open(path: os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Write to a temp file in ``path``'s directory; on success fsync it and rename it over ``path``
    (``os.replace`` is atomic on POSIX and Windows); on any error, Ctrl-C included, delete it.
    An OSError that names no file (a full disk: ``write`` fails with ENOSPC) is re-raised naming ``path``.

    >>> with atomic_open("checkpoint.npz") as f:
    ...     f.write(data)
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    except OSError as exc:  # e.g. a read-only directory: name the file meant, not a random temp name
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename in (None, tmp):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def temporaries_of(path: os.PathLike) -> list:
    """The temp files :func:`atomic_open` makes for ``path`` (left behind only by a kill -9)."""
    path = Path(path)
    return [Path(p) for p in glob.glob(os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.*.tmp"))]


def remove_stale_temporaries(path: os.PathLike) -> int:
    """Delete the temporaries of ``path`` a killed writer left; returns how many were removed."""
    removed = 0
    for tmp in temporaries_of(path):
        try:
            tmp.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
