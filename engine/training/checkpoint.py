"""Training checkpoints as one ``.npz`` file (no pickle), written atomically.

Layout of the archive (every entry a plain array, so ``np.load(allow_pickle=False)`` reads it):

    meta                 0-d str: JSON with the epoch/step reached, the run's config, its metric
                         history, the optimizer's param_groups and its non-array state values
    model/<name>         one array per entry of ``model.state_dict()``
    optim/<i>/<key>      array-valued optimizer state of parameter ``i`` (e.g. momentum buffers)
    rng/engine           ``engine.get_rng_state()``
"""
from __future__ import annotations

import json
import os
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict

import numpy as np

import engine
from engine.data.atomic import atomic_open

FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model; the message says why."""


def to_numpy(value) -> np.ndarray:
    """A Tensor (any device) or array as a numpy array."""
    if isinstance(value, engine.Tensor):
        return np.asarray(value.detach().to("cpu").numpy())
    if type(value).__module__.startswith("cupy"):
        return value.get()
    return np.asarray(value)


def _is_array(value) -> bool:
    return isinstance(value, (engine.Tensor, np.ndarray)) or type(value).__module__.startswith("cupy")


def _json_default(value):
    if hasattr(value, "item"):  # numpy / engine scalars
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in a checkpoint's JSON")


def save_checkpoint(path: os.PathLike, model, optimizer, meta: Dict[str, Any]) -> None:
    """Write model + optimizer + engine RNG state + ``meta`` (JSON-able) to ``path`` atomically.

    The archive goes to a temp file in the same directory, is fsynced, then renamed over
    ``path``: an interruption leaves the previous checkpoint intact, never a partial one.
    """
    path = Path(path)
    arrays: Dict[str, np.ndarray] = {}
    for name, value in model.state_dict().items():
        arrays[f"model/{name}"] = to_numpy(value)
    optim = optimizer.state_dict()
    scalars: Dict[str, Dict[str, Any]] = {}
    for index, state in optim["state"].items():
        for key, value in state.items():
            if _is_array(value):
                arrays[f"optim/{index}/{key}"] = to_numpy(value)
            else:
                scalars.setdefault(str(index), {})[key] = value.item() if hasattr(value, "item") else value
    arrays["rng/engine"] = to_numpy(engine.get_rng_state())
    meta = dict(meta, format=FORMAT, optim_param_groups=optim["param_groups"], optim_scalars=scalars)
    arrays["meta"] = np.array(json.dumps(meta, default=_json_default))

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


def read_checkpoint(path: os.PathLike) -> Dict[str, Any]:
    """The checkpoint at ``path`` as ``{'meta', 'model', 'optimizer', 'rng'}`` (numpy arrays)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            entries = {name: archive[name] for name in archive.files}
        meta = json.loads(str(entries.pop("meta")))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint, the file is truncated or corrupt ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r}, expected {FORMAT}")
    model = OrderedDict((k[len("model/"):], v) for k, v in entries.items() if k.startswith("model/"))
    state: Dict[int, Dict[str, Any]] = {}
    for key, value in entries.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in meta["optim_scalars"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer = {"state": state, "param_groups": meta["optim_param_groups"]}
    if "rng/engine" not in entries:
        raise CheckpointError(f"{path}: checkpoint lacks the RNG state")
    return {"meta": meta, "model": model, "optimizer": optimizer, "rng": entries["rng/engine"]}


def load_checkpoint(path: os.PathLike, model, optimizer=None) -> Dict[str, Any]:
    """Restore ``model`` (and ``optimizer`` and the engine RNG) from ``path``; returns its meta."""
    ckpt = read_checkpoint(path)
    expected = {name: tuple(to_numpy(v).shape) for name, v in model.state_dict().items()}
    found = {name: tuple(v.shape) for name, v in ckpt["model"].items()}
    if expected != found:
        raise CheckpointError(
            f"{path}: the checkpoint's model does not fit this one (checkpoint: {found}, model: {expected})")
    model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    engine.set_rng_state(ckpt["rng"])
    return ckpt["meta"]
