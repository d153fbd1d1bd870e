"""Devices and dtypes: ``engine.device('cpu' | 'cuda')`` and the dtype names torch users expect."""
from __future__ import annotations

import numpy as np

float32 = np.dtype("float32")
float64 = np.dtype("float64")
float16 = np.dtype("float16")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")
float = float32  # noqa: A001  (torch.float is float32)
double = float64
long = int64

_DTYPE_NAMES = {float32: "float32", float64: "float64", float16: "float16", int32: "int32",
                int64: "int64", uint8: "uint8", bool_: "bool"}


def dtype_name(dtype) -> str:
    """``engine.float32`` style name of a numpy dtype, as used in reprs and errors."""
    dtype = np.dtype(dtype)
    return "engine." + _DTYPE_NAMES.get(dtype, dtype.name)


class device:  # noqa: N801  (named like torch.device)
    """Where a tensor lives: ``device('cpu')``, ``device('cuda')`` or ``device('cuda:0')``."""

    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index=None):
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        if not isinstance(spec, str):
            raise TypeError(f"device must be a string like 'cpu' or 'cuda', got {spec!r}")
        kind, _, idx = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device type must be 'cpu' or 'cuda', got {spec!r}")
        if idx:
            if not idx.isdigit():
                raise ValueError(f"device index must be a non-negative int, got {spec!r}")
            index = int(idx)
        if kind == "cpu" and index not in (None, 0):
            raise ValueError(f"the cpu device has no index {index}")
        self.type = kind
        self.index = (index or 0) if kind == "cuda" else None

    def __eq__(self, other):
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


def is_cuda_array(array) -> bool:
    """True for a cupy array (checked by its type's module, so cupy need not be imported)."""
    kind = type(array)
    return kind is not np.ndarray and kind.__module__.startswith("cupy")


_CPU = device("cpu")  # shared: a training step asks for the device of ~60 arrays


def array_device(array) -> device:
    """The device an array lives on (cupy arrays are on cuda)."""
    if is_cuda_array(array):
        return device("cuda", array.device.id)
    return _CPU


def cupy_module():
    """The cupy module, or a RuntimeError saying why cuda cannot be used here."""
    try:
        import cupy  # optional: only machines with a GPU have it
    except ImportError:
        raise RuntimeError("cuda was requested but CuPy is not installed (pip install cupy-cuda12x, "
                           "or cupy-cuda13x for CUDA 13 drivers)") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, driver too old, ...
        raise RuntimeError(f"cuda was requested but no CUDA device is usable ({type(exc).__name__}: {exc})") \
            from None
    if count == 0:
        raise RuntimeError("cuda was requested but CuPy sees no GPU")
    return cupy


def move(array, target: device):
    """``array`` on device ``target``: itself when it is there already, else a copy."""
    target = device(target)
    if target.type == "cpu":
        return array.get() if is_cuda_array(array) else array
    cupy = cupy_module()
    count = cupy.cuda.runtime.getDeviceCount()
    if target.index >= count:
        raise RuntimeError(f"cannot move a tensor to {target}: CuPy sees {count} CUDA device(s)")
    if is_cuda_array(array) and array.device.id == target.index:
        return array
    with cupy.cuda.Device(target.index):
        return cupy.asarray(array)  # a copy on this device, from the host or from another GPU


def like(value, array):
    """``value`` (a scalar, list, numpy or cupy array) as an array on ``array``'s device."""
    if np.isscalar(value):
        return value
    if is_cuda_array(array):
        return move(value, array_device(array))
    return value.get() if is_cuda_array(value) else np.asarray(value)
