"""Refusing ranks started with different configurations (a hash of the configuration compared at start)."""
from __future__ import annotations

import hashlib
import json
from typing import Any, List, Mapping


class ConfigMismatch(ValueError):
    """Ranks were started with different configurations; raised on every rank at once."""

    raised_on_all_ranks = True


def config_digest(config: Mapping[str, Any]) -> bytes:
    """SHA-256 of the configuration's canonical JSON (keys sorted; non-JSON values by their str())."""
    text = json.dumps(dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).digest()


def describe_differences(configs: List[Mapping[str, Any]]) -> str:
    """``"lr: rank 0 = 0.1, rank 1 = 0.2; ..."`` for every key whose value is not the same on all ranks."""
    keys = sorted(set().union(*configs), key=str)
    parts = []
    for key in keys:
        values = [json.dumps(c.get(key, "<missing>"), sort_keys=True, default=str) for c in configs]
        if len(set(values)) > 1:
            parts.append(f"{key}: " + ", ".join(f"rank {r} = {v}" for r, v in enumerate(values)))
    return "; ".join(parts)
