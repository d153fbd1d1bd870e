"""``engine.cuda``: is a GPU usable, and waiting for it."""
from __future__ import annotations

from engine import backend


def is_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    return backend.is_available("cupy")


def require_cupy():
    """The cupy module, or a RuntimeError saying why cuda can't be used here."""
    try:
        return backend.load("cupy").xp
    except backend.BackendUnavailable as exc:
        raise RuntimeError(f"cuda was requested but cannot be used: {exc}") from None


def synchronize() -> None:
    """Wait for all queued GPU work (a no-op when no GPU is in use)."""
    if is_available():
        require_cupy().cuda.Device().synchronize()


def device_count() -> int:
    if not is_available():
        return 0
    return require_cupy().cuda.runtime.getDeviceCount()
