"""Which kernels run an op: the backend registry and the one dispatch every Function uses.

A backend is a package filling ``kernels.contract`` (its kernels and its array module ``xp``).
Every op finds its backend with :func:`backend_for` on one of its arrays: cupy arrays always run
on ``cupy``; numpy arrays run on the selected CPU backend (``numba`` when it imports, else
``reference``; ``ENGINE_BACKEND`` or :func:`set_backend` chooses). Generic array math (``+``,
``sum``, ``matmul``) uses the same backend's ``xp``, so choosing a backend swaps all of an op.

Which *device* new tensors go to is a separate choice: ``engine.set_default_device``.
``ENGINE_BACKEND`` is read at the first dispatch, not at import, so ``import engine`` never fails
because of it; :func:`check_environment` validates it up front for programs that want to.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Dict, Optional

from engine.device import device, is_cuda_array
from kernels.contract import check_backend

MODULES = {"reference": "reference", "numba": "kernels.numba_cpu", "cupy": "kernels.cupy_gpu"}
CPU_BACKENDS = ("numba", "reference")  # fastest first
ENV_VARIABLE = "ENGINE_BACKEND"

_loaded: Dict[str, ModuleType] = {}
_load_errors: Dict[str, str] = {}
_cpu_name: Optional[str] = None  # None: not chosen yet (the environment, then the fastest, decide)
_default_device = device("cpu")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot be used on this machine; the message says why."""


def load(name: str) -> ModuleType:
    """Import backend ``name`` once and check it fills the contract."""
    if name not in MODULES:
        raise ValueError(f"backend must be one of {sorted(MODULES)}, got {name!r}")
    if name in _loaded:
        return _loaded[name]
    if name in _load_errors:
        raise BackendUnavailable(_load_errors[name])
    try:
        module = importlib.import_module(MODULES[name])
        check_backend(module)
    except Exception as exc:  # ImportError, CuPy failing to find a driver, or a contract gap
        _load_errors[name] = f"backend {name!r} is not available: {type(exc).__name__}: {exc}"
        raise BackendUnavailable(_load_errors[name]) from exc
    _loaded[name] = module
    return module


def is_available(name: str) -> bool:
    """True when backend ``name`` imports and (for cupy) sees a CUDA device."""
    try:
        load(name)
    except BackendUnavailable:
        return False
    return True


def set_backend(name: str) -> None:
    """Select the kernels for CPU tensors: ``'numba'`` or ``'reference'``.

    ``'cupy'`` is accepted when a GPU is usable (cuda tensors always run on it) and changes nothing
    else; to create tensors on the GPU by default use ``engine.set_default_device('cuda')``.
    """
    global _cpu_name
    load(name)
    if name != "cupy":
        _cpu_name = name


def get_backend() -> str:
    """The name of the backend that ops on tensors of the default device run on."""
    return "cupy" if _default_device.type == "cuda" else cpu_backend().NAME


def cpu_backend() -> ModuleType:
    """The backend that runs ops on numpy arrays."""
    global _cpu_name
    if _cpu_name is None:
        _cpu_name = _cpu_choice_from_environment()
    return load(_cpu_name)


def cuda_backend() -> ModuleType:
    """The backend that runs ops on cupy arrays (BackendUnavailable, saying why, without a GPU)."""
    return load("cupy")


def _cpu_choice_from_environment() -> str:
    name = os.environ.get(ENV_VARIABLE, "").strip().lower()
    if name in CPU_BACKENDS:
        return name
    if name and name != "cupy":
        raise ValueError(f"{ENV_VARIABLE}={name!r}: must be one of {', '.join(sorted(MODULES))}")
    if name == "cupy":
        load("cupy")  # says why it cannot be used, if it cannot
    return next((n for n in CPU_BACKENDS if is_available(n)), CPU_BACKENDS[-1])


def check_environment() -> None:
    """Raise ValueError or BackendUnavailable (one line) when ``ENGINE_BACKEND`` cannot be honoured."""
    name = os.environ.get(ENV_VARIABLE, "").strip().lower()
    if name:
        if name not in MODULES:
            raise ValueError(f"{ENV_VARIABLE}={name!r}: must be one of {', '.join(sorted(MODULES))}")
        load(name)


def backend_for(array) -> ModuleType:
    """The backend that runs ops on ``array``: cupy for a cupy array, the CPU backend otherwise."""
    if is_cuda_array(array):
        return cuda_backend()
    return cpu_backend()


def set_default_device(target) -> None:
    """The device new tensors are created on when no ``device=`` is given (like torch's)."""
    global _default_device
    target = device(target)
    if target.type == "cuda":
        load("cupy")
    _default_device = target


def get_default_device() -> device:
    return _default_device


def contiguous(array):
    """``array`` as a C-contiguous array (the kernels' contract); a no-op when it already is."""
    if array is None or array.flags.c_contiguous:
        return array
    return array.copy(order="C")
