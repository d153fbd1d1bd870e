"""Training checkpoints as one ``.npz`` file (no pickle), written atomically, read with bounds.

Layout of the archive (every entry a plain, uncompressed ``.npy`` array):

    meta                 0-d str: JSON with the epoch/step reached, the run's config, its metric
                         history, the optimizer's param_groups and its non-array state values
    model/<name>         one array per entry of ``model.state_dict()``
    optim/<i>/<key>      array-valued optimizer state of parameter ``i`` (e.g. momentum buffers)
    rng/engine           ``engine.get_rng_state()``

Reading never trusts the file: only these names are read (anything else is ignored, never
inflated), each entry's ``.npy`` header is checked against the entry's size (and, when a model
and optimizer are given, against their shapes) before its data is read, and the JSON metadata is
checked key by key, so a damaged file gives one :class:`CheckpointError` naming what is wrong.
"""
from __future__ import annotations

import json
import math
import os
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

import engine
from engine.data.atomic import atomic_open
from engine.device import is_cuda_array

FORMAT = 1
META_MAX_BYTES = 64 << 20  # the JSON metadata: a few KiB per hundred epochs
_OPTIM_ENTRY = re.compile(r"optim/(\d+)/(\w+)")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model; the message says why."""


class DoesNotFit(ValueError):
    """An entry's shape is not the model's or the optimizer's."""


class NonFiniteState(ValueError):
    """A model or optimizer holds NaN or infinite values: it must not be saved."""


def to_numpy(value) -> np.ndarray:
    """A Tensor (any device) or array as a numpy array."""
    if isinstance(value, engine.Tensor):
        return np.asarray(value.detach().to("cpu").numpy())
    if is_cuda_array(value):
        return value.get()
    return np.asarray(value)


def _is_array(value) -> bool:
    return isinstance(value, (engine.Tensor, np.ndarray)) or is_cuda_array(value)


def _json_default(value):
    if hasattr(value, "item"):  # numpy / engine scalars
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in a checkpoint's JSON")


def non_finite_entries(arrays: Dict[str, np.ndarray]) -> list:
    """The names of the floating-point arrays holding a NaN or an infinity."""
    return [name for name, a in arrays.items() if a.dtype.kind in "fc" and not np.isfinite(a).all()]


def save_checkpoint(path: os.PathLike, model, optimizer, meta: Dict[str, Any]) -> None:
    """Write model + optimizer + engine RNG state + ``meta`` (JSON-able) to ``path`` atomically.

    The archive goes to a temp file in the same directory, is fsynced, then renamed over
    ``path``: an interruption leaves the previous checkpoint intact, never a partial one.
    Raises :class:`NonFiniteState` (writing nothing) when a parameter or buffer is not finite.
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
    bad = non_finite_entries(arrays)
    if bad:
        raise NonFiniteState(f"not finite: {', '.join(bad)}")
    arrays["rng/engine"] = to_numpy(engine.get_rng_state())
    meta = dict(meta, format=FORMAT, optim_param_groups=optim["param_groups"], optim_scalars=scalars)
    arrays["meta"] = np.array(json.dumps(meta, default=_json_default))

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)


# ----------------------------------------------------------------------------- reading
def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, shape: Optional[Tuple[int, ...]] = None,
                max_bytes: Optional[int] = None) -> np.ndarray:
    """One ``.npy`` entry, its header checked (plain dtype, size, ``shape``) before the data is read."""
    name = info.filename[:-len(".npy")]
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"entry {name!r} is compressed (checkpoints store arrays uncompressed)")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        found, fortran, dtype = read_header(f)
        if dtype.hasobject:
            raise ValueError(f"entry {name!r} holds Python objects")
        nbytes = math.prod(found) * dtype.itemsize
        if f.tell() + nbytes != info.file_size:
            raise ValueError(f"entry {name!r}: its header announces {nbytes} bytes of data, the entry has "
                             f"{info.file_size - f.tell()}")
        if shape is not None and tuple(found) != tuple(shape):
            raise DoesNotFit(f"entry {name!r} has shape {tuple(found)}, expected {tuple(shape)}")
        if max_bytes is not None and nbytes > max_bytes:
            raise ValueError(f"entry {name!r} is {nbytes} bytes, more than the {max_bytes} allowed")
        data = bytearray(nbytes)
        if f.readinto(data) != nbytes:
            raise ValueError(f"entry {name!r} is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(found, order="F" if fortran else "C")


def read_checkpoint(path: os.PathLike, model_shapes: Optional[Dict[str, Tuple[int, ...]]] = None,
                    param_shapes: Optional[list] = None, meta_only: bool = False) -> Dict[str, Any]:
    """The checkpoint at ``path`` as ``{'meta', 'model', 'optimizer', 'rng'}`` (numpy arrays).

    ``model_shapes`` ({name: shape}) and ``param_shapes`` (the optimizer's parameters' shapes, in
    order) are checked before each entry is read; ``meta_only`` reads the metadata alone.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename[:-len(".npy")]: info for info in archive.infolist()
                     if info.filename.endswith(".npy")}
            if "meta" not in infos:
                raise ValueError("it has no 'meta' entry")
            meta = json.loads(str(_read_entry(archive, infos["meta"], shape=(), max_bytes=META_MAX_BYTES)))
            check_meta(meta)
            if meta_only:
                return {"meta": meta}
            model = _read_model(archive, infos, model_shapes)
            optimizer = _read_optimizer(archive, infos, meta, param_shapes)
            if "rng/engine" not in infos:
                raise ValueError("it lacks the RNG state ('rng/engine')")
            rng = _read_entry(archive, infos["rng/engine"], max_bytes=1 << 16)
    except CheckpointError:
        raise
    except DoesNotFit as exc:
        raise CheckpointError(f"{path}: the checkpoint does not fit this model and optimizer ({exc})") from exc
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint, the file is truncated, corrupt or not a "
                              f"checkpoint ({exc})") from exc
    return {"meta": meta, "model": model, "optimizer": optimizer, "rng": rng}


def _read_model(archive, infos, shapes) -> "OrderedDict[str, np.ndarray]":
    found = [name[len("model/"):] for name in infos if name.startswith("model/")]
    if shapes is not None and sorted(found) != sorted(shapes):
        raise CheckpointError(f"{archive.filename}: the checkpoint's model does not fit this one (checkpoint "
                              f"entries: {sorted(found)}, model: {sorted(shapes)})")
    return OrderedDict((name, _read_entry(archive, infos["model/" + name], None if shapes is None else shapes[name]))
                       for name in found)


def _read_optimizer(archive, infos, meta, param_shapes) -> Dict[str, Any]:
    state: Dict[int, Dict[str, Any]] = {}
    for name, info in infos.items():
        match = _OPTIM_ENTRY.fullmatch(name)
        if match is None:
            continue
        index = int(match[1])
        shape = None
        if param_shapes is not None:
            if index >= len(param_shapes):
                raise DoesNotFit(f"entry {name!r}: the optimizer has {len(param_shapes)} parameters")
            shape = param_shapes[index]
        state.setdefault(index, {})[match[2]] = _read_entry(archive, info, shape)
    for index, values in meta["optim_scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["optim_param_groups"]}


# ----------------------------------------------------------------------------- metadata checks
def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_meta(meta) -> None:
    """Raise ValueError naming the first of this module's metadata keys that is missing or wrong."""
    if not isinstance(meta, dict):
        raise ValueError(f"its metadata is a JSON {type(meta).__name__}, expected an object")
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint format {meta.get('format')!r}, expected {FORMAT}")
    for key in ("optim_param_groups", "optim_scalars"):
        if key not in meta:
            raise ValueError(f"its metadata lacks {key!r}")
    groups, scalars = meta["optim_param_groups"], meta["optim_scalars"]
    if not isinstance(groups, list) or not all(
            isinstance(g, dict) and is_finite_number(g.get("lr")) and isinstance(g.get("params"), list)
            and all(is_int(i) for i in g["params"]) for g in groups):
        raise ValueError(f"its optimizer param groups are {groups!r}, expected objects with 'lr' and 'params'")
    if not isinstance(scalars, dict) or not all(
            k.isdigit() and isinstance(v, dict) and all(is_finite_number(x) for x in v.values())
            for k, v in scalars.items()):
        raise ValueError(f"its optimizer scalars are {scalars!r}, expected {{index: {{name: number}}}}")


# ----------------------------------------------------------------------------- restoring
def load_checkpoint(path: os.PathLike, model, optimizer=None) -> Dict[str, Any]:
    """Restore ``model`` (and ``optimizer`` and the engine RNG) from ``path``; returns its meta.

    Every entry is checked against the model's and the optimizer's shapes before it is read.
    """
    model_shapes = {name: tuple(v.shape) for name, v in model.state_dict().items()}
    param_shapes = None
    if optimizer is not None:
        param_shapes = [tuple(p.shape) for group in optimizer.param_groups for p in group["params"]]
    ckpt = read_checkpoint(path, model_shapes, param_shapes)
    try:
        model.load_state_dict(ckpt["model"])
        if optimizer is not None:
            optimizer.load_state_dict(ckpt["optimizer"])
        engine.set_rng_state(ckpt["rng"])
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise CheckpointError(f"{path}: the checkpoint does not fit this model and optimizer ({exc})") from exc
    return ckpt["meta"]
