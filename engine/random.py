"""The engine's random number generator (one numpy Generator; cuda tensors are drawn on the host)."""
from __future__ import annotations

import json

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator (like ``torch.manual_seed``)."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: seed must be an int, got {seed!r}")
    _generator = np.random.default_rng(int(seed) % 2**64)  # negative seeds are fine, as in torch
    return _generator


def generator() -> np.random.Generator:
    return _generator


def get_rng_state() -> np.ndarray:
    """The generator's state as a uint8 array (JSON bytes), storable in an .npz file."""
    return np.frombuffer(json.dumps(_generator.bit_generator.state).encode(), dtype=np.uint8).copy()


def set_rng_state(state) -> None:
    """Restore a state from :func:`get_rng_state`."""
    raw = np.asarray(state, dtype=np.uint8).tobytes()
    try:
        decoded = json.loads(raw.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("set_rng_state: state is not one returned by get_rng_state()") from exc
    _generator.bit_generator.state = decoded
