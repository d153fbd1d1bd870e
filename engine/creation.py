"""Creating tensors: ``tensor``, ``from_numpy``, ``zeros``/``ones``/``empty``/``full``/``arange``/``rand``/``randn``."""
from __future__ import annotations

import numpy as np

from engine import backend, random
from engine.device import array_device, float32, int64, move
from engine.device import device as Device
from engine.functions.checks import shape_args
from engine.tensor import Tensor


def _place(array, device, requires_grad) -> Tensor:
    target = Device(device) if device is not None else backend.get_default_device()
    t = Tensor._wrap(move(array, target))
    return t.requires_grad_() if requires_grad else t


def _size(shape, size):
    """The shape given positionally (``zeros(2, 3)``, ``zeros((2, 3))``) or as ``size=(2, 3)``."""
    if size is not None:
        if shape:
            raise TypeError(f"got the shape both positionally {shape} and as size={size!r}")
        shape = (size,)
    return shape_args(shape)


def _float_dtype(dtype):
    return float32 if dtype is None else np.dtype(dtype)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, scalars, numpy arrays or a Tensor).

    Python floats become float32 (the default dtype), ints int64, bools bool; numpy arrays keep their dtype.

    >>> engine.tensor([[1.0, -1.0]]).shape
    engine.Size([1, 2])
    """
    if isinstance(data, Tensor):
        data = data.detach().cpu().numpy()
    if array_device(data).type == "cuda":  # a cupy array
        data = data.get()
    if isinstance(data, np.ndarray):
        array = np.array(data, dtype=dtype, copy=True)
    else:
        try:
            array = np.array(data)
        except OverflowError:
            array = np.array(data, dtype=object)
        if array.dtype == object or (array.dtype.kind == "u" and dtype is None):
            _refuse_unrepresentable(data, array)
        if dtype is not None:
            array = array.astype(dtype)
        elif array.dtype.kind == "f":
            array = array.astype(float32)
        elif array.dtype.kind in "iu":
            array = array.astype(int64)
    return _place(array, device, requires_grad)


def _refuse_unrepresentable(data, array) -> None:
    """Python ints beyond int64 (numpy would make them uint64 or objects) and other objects: refuse."""
    integers = [v for v in array.reshape(-1).tolist() if isinstance(v, int) and not isinstance(v, bool)]
    too_big = [v for v in integers if not -2**63 <= v < 2**63]
    if too_big:
        raise ValueError(f"tensor: value {too_big[0]} overflows int64 (torch: Overflow when unpacking long long)")
    if array.dtype == object:
        raise TypeError(f"tensor: could not convert data of type {type(data).__name__} to a tensor")


def as_tensor(data, dtype=None, device=None) -> Tensor:
    if isinstance(data, Tensor) and (dtype is None or data.dtype == np.dtype(dtype)):
        return data if device is None else data.to(device)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``array`` (changes to one show in the other)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(array)


def zeros(*shape, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _place(np.zeros(_size(shape, size), dtype=_float_dtype(dtype)), device, requires_grad)


def ones(*shape, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _place(np.ones(_size(shape, size), dtype=_float_dtype(dtype)), device, requires_grad)


def empty(*shape, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _place(np.empty(_size(shape, size), dtype=_float_dtype(dtype)), device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    if dtype is None:
        dtype = float32 if isinstance(fill_value, float) else (np.bool_ if isinstance(fill_value, bool) else int64)
    return _place(np.full(shape_args((size,)), fill_value, dtype=dtype), device, requires_grad)


def zeros_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return _place(np.zeros(t.shape, dtype=dtype or t.dtype), t.device, requires_grad)


def ones_like(t: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return _place(np.ones(t.shape, dtype=dtype or t.dtype), t.device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive); int64 when all arguments are ints, else float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = int64 if all(isinstance(v, int) for v in (start, end, step)) else float32
    return _place(np.arange(start, end, step).astype(dtype), device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _place(np.linspace(start, end, steps).astype(_float_dtype(dtype)), device, requires_grad)


def rand(*shape, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1) from the engine's generator (seed it with ``engine.manual_seed``)."""
    array = random.generator().random(_size(shape, size)).astype(_float_dtype(dtype))
    return _place(array, device, requires_grad)


def randn(*shape, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples from the engine's generator."""
    array = random.generator().standard_normal(_size(shape, size)).astype(_float_dtype(dtype))
    return _place(array, device, requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None) -> Tensor:
    if high is None:
        low, high = 0, low
    array = random.generator().integers(low, high, size=shape_args((size,))).astype(dtype or int64)
    return _place(array, device, False)


def normal(mean=0.0, std=1.0, size=None, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Normal samples from the engine's generator: ``normal(0, 1, (3, 3))`` with float mean and std
    and a ``size``, or elementwise from Tensor ``mean`` and/or ``std`` (broadcast; ``size`` not allowed)."""
    tensors = [v for v in (mean, std) if isinstance(v, Tensor)]
    if tensors:
        if size is not None:
            raise TypeError("normal: size is only allowed when mean and std are numbers")
        means = mean._data if isinstance(mean, Tensor) else mean
        stds = std._data if isinstance(std, Tensor) else std
        shape = np.broadcast_shapes(np.shape(means), np.shape(stds))
        first = tensors[0]
        dtype = dtype or first.dtype
        device = device or first.device
        means = means.get() if array_device(means).type == "cuda" else means
        stds = stds.get() if array_device(stds).type == "cuda" else stds
    else:
        if size is None:
            raise TypeError("normal: with number mean and std, pass size (e.g. normal(0, 1, (3, 3)))")
        shape, means, stds = shape_args((size,)), mean, std
    if np.any(np.asarray(stds) < 0):
        raise ValueError(f"normal: std must be >= 0, got {std!r}")
    array = (random.generator().standard_normal(shape) * stds + means).astype(_float_dtype(dtype))
    return _place(array, device, requires_grad)
