"""Which backend runs the kernels: the registry and the one place a backend is chosen.

CPU arrays (numpy) run on the selected CPU backend (``numba`` by default when it imports,
else ``reference``); GPU arrays (cupy) always run on ``cupy``. ``ENGINE_BACKEND`` or
:func:`set_backend` chooses; choosing ``cupy`` also makes ``cuda`` the default device for new tensors.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Dict, Optional

from kernels.contract import check_backend

MODULES = {"reference": "reference", "numba": "kernels.numba_cpu", "cupy": "kernels.cupy_gpu"}
CPU_PREFERENCE = ("numba", "reference")  # fastest first

_loaded: Dict[str, ModuleType] = {}
_load_errors: Dict[str, str] = {}
_cpu_name: Optional[str] = None
_default_device_type = "cpu"


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
    except Exception as exc:  # ImportError, or CuPy failing to find a driver
        _load_errors[name] = f"backend {name!r} is not available: {type(exc).__name__}: {exc}"
        raise BackendUnavailable(_load_errors[name]) from exc
    try:
        check_backend(module)
    except TypeError as exc:
        _load_errors[name] = f"backend {name!r} is not usable: {exc}"
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
    """Select the backend: ``'reference'`` or ``'numba'`` for CPU arrays, or ``'cupy'``.

    ``'cupy'`` makes ``cuda`` the default device of new tensors (CPU tensors keep the
    fastest CPU backend).
    """
    global _cpu_name, _default_device_type
    load(name)
    if name == "cupy":
        _default_device_type = "cuda"
    else:
        _cpu_name = name
        _default_device_type = "cpu"


def get_backend() -> str:
    """The name of the backend new tensors' ops run on."""
    return "cupy" if _default_device_type == "cuda" else cpu_backend().NAME


def cpu_backend() -> ModuleType:
    """The backend module that runs ops on numpy arrays."""
    global _cpu_name
    if _cpu_name is None:
        for name in CPU_PREFERENCE:
            if is_available(name):
                _cpu_name = name
                break
    return load(_cpu_name)


def cuda_backend() -> ModuleType:
    return load("cupy")


def default_device_type() -> str:
    return _default_device_type


def backend_for(array) -> ModuleType:
    """The backend that owns ``array``: cupy for a cupy array, the CPU backend otherwise."""
    if type(array).__module__.startswith("cupy"):
        return cuda_backend()
    return cpu_backend()


def _init_from_env() -> None:
    name = os.environ.get("ENGINE_BACKEND", "").strip().lower()
    if name:
        set_backend(name)


_init_from_env()


def contiguous(array):
    """``array`` as a C-contiguous array (the kernels' contract); a no-op when it already is."""
    if array is None or array.flags.c_contiguous:
        return array
    return array.copy(order="C")
