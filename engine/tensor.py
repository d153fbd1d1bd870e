"""The Tensor: an array (numpy or cupy) with the user-facing API, over autograd's Variable.

Every op is a Function from ``engine.functions`` applied with ``Function.apply``; this module
only checks arguments, promotes dtypes and picks the Function. In-place ops (``+=``, ``x[i] = v``,
``mul_``) write into the array and make the written Function the tensor's new history.
"""
from __future__ import annotations

import numpy as np

from engine import autograd
from engine.autograd import VersionCounter
from engine.backend import backend_for
from engine.device import array_device, device, dtype_name, float32, int64, like
from engine.functions import elementwise as ew
from engine.functions import linalg, reduction
from engine.functions import shape as shape_ops
from engine.functions.activation import ReLU, Sigmoid, Tanh
from engine.functions.checks import check_broadcast, check_same_device, infer_shape, promote, shape_args
from engine.functions.conversion import Cast, Clone, ToDevice
from engine.functions.inplace import InplaceArithmetic, SetItem


class Tensor(autograd.Variable):
    """A multi-dimensional array that records the ops applied to it when ``requires_grad`` is set.

    Create tensors with ``engine.tensor``, ``engine.zeros`` and friends rather than this class.
    """

    __array_priority__ = 1000  # numpy defers `ndarray op Tensor` to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data._data
        _init_state(self, data)
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _wrap(array) -> "Tensor":
        """A new plain Tensor (never a subclass) around ``array``, with no history."""
        if isinstance(array, np.generic):  # numpy turns 0-d results into scalars; keep an array
            array = np.asarray(array)
        t = Tensor.__new__(Tensor)
        _init_state(t, array)
        return t

    # ------------------------------------------------------------------ properties
    @property
    def shape(self):
        return Size(self._data.shape)

    def size(self, dim=None):
        return self.shape if dim is None else self._data.shape[dim]

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def device(self) -> device:
        return array_device(self._data)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def data(self) -> "Tensor":
        """The same storage, detached from the graph (writes to it are not recorded, but bump its version)."""
        return self.detach()

    @data.setter
    def data(self, value):
        value = value._data if isinstance(value, Tensor) else value
        if tuple(value.shape) != tuple(self._data.shape):
            raise ValueError(f"data: new value has shape {tuple(value.shape)}, tensor has shape {self.shape}")
        self._data = value
        self._version_counter = VersionCounter()  # new memory: what was saved from the old one stays valid

    @property
    def T(self) -> "Tensor":  # noqa: N802
        return self.permute(*reversed(range(self.ndim)))

    # ------------------------------------------------------------------ conversion
    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on a tensor that requires grad. Use tensor.detach().numpy().")
        if self.device.type != "cpu":
            raise TypeError(f"can't convert a {self.device} tensor to numpy; use tensor.cpu() first")
        return self._data

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted to a Python scalar, "
                             f"got shape {self.shape}")
        return self._data.reshape(()).item()

    def tolist(self):
        return self._data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of a tensor with {self._data.size} values is ambiguous")
        return bool(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        array = self.numpy() if self.grad_fn is None else self.detach().numpy()
        return array if dtype is None else array.astype(dtype)

    def detach(self) -> "Tensor":
        """The same memory (and version counter) without history."""
        t = Tensor._wrap(self._data)
        t._version_counter, t._is_view = self._version_counter, True
        return t

    def clone(self) -> "Tensor":
        return Clone.apply(self)

    def requires_grad_(self, mode: bool = True) -> "Tensor":
        if self.grad_fn is not None and not mode:
            raise RuntimeError("requires_grad_(False) is only allowed on leaf tensors")
        if mode and self.dtype.kind not in "fc":
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, got "
                               f"{dtype_name(self.dtype)}")
        self.requires_grad = bool(mode)
        return self

    def to(self, *args, **kwargs) -> "Tensor":
        """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``; returns self when nothing changes."""
        target_device, target_dtype = None, kwargs.pop("dtype", None)
        target_device = kwargs.pop("device", None)
        if kwargs:
            raise TypeError(f"to() got unexpected arguments {sorted(kwargs)}")
        for arg in args:
            if isinstance(arg, (str, device)):
                target_device = arg
            else:
                target_dtype = arg
        out = self
        if target_device is not None:
            out = ToDevice.apply(out, device(target_device)) if device(target_device) != self.device else out
        if target_dtype is not None and np.dtype(target_dtype) != out.dtype:
            out = Cast.apply(out, np.dtype(target_dtype))
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        return self.to("cuda")

    def float(self) -> "Tensor":
        return self.to(np.float32)

    def double(self) -> "Tensor":
        return self.to(np.float64)

    def long(self) -> "Tensor":
        return self.to(np.int64)

    def type(self, dtype) -> "Tensor":
        return self.to(dtype)

    # ------------------------------------------------------------------ autograd
    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; this tensor "
                                   f"has shape {self.shape}: pass backward(gradient=...)")
            grad = backend_for(self._data).xp.ones_like(self._data)
        else:
            if isinstance(gradient, Tensor):
                check_same_device("backward", (self, gradient))
            grad = gradient._data if isinstance(gradient, Tensor) else \
                backend_for(self._data).xp.asarray(like(gradient, self._data))
            if tuple(grad.shape) != tuple(self._data.shape):
                raise ValueError(f"backward: gradient shape {tuple(grad.shape)} does not match tensor shape "
                                 f"{tuple(self._data.shape)}")
            grad = grad.astype(self.dtype, copy=False)
        autograd.run_backward(self, grad, retain_graph=retain_graph)

    # ------------------------------------------------------------------ in-place writes
    def zero_(self) -> "Tensor":
        return self._write_in_place("zero_", SetItem, 0, Ellipsis)

    def fill_(self, value) -> "Tensor":
        return self._write_in_place("fill_", SetItem, value, Ellipsis)

    def copy_(self, src) -> "Tensor":
        if isinstance(src, Tensor):  # from any device, like torch
            check_broadcast("copy_", self.shape, src.shape)
            src = src.to(self.device, self.dtype)
        else:
            src = like(src, self._data)
        return self._write_in_place("copy_", SetItem, src, Ellipsis)

    def __setitem__(self, index, value):
        if isinstance(value, Tensor):  # from any device, like torch
            value = value.to(self.device, self.dtype)
        else:
            value = like(value, self._data)
        self._write_in_place("__setitem__", SetItem, value, _raw_index(index))

    def _write_in_place(self, op, function, *args) -> "Tensor":
        """Run ``function`` (which writes into this tensor's array) and bump the memory's version.

        With grad mode on and gradients involved, the write is recorded: ``function`` becomes this
        tensor's history. Under ``no_grad`` (optimizer steps, ``nn.init``) it is a plain write.
        """
        tracked = autograd.is_grad_enabled() and (
            self.requires_grad or any(isinstance(a, Tensor) and a.requires_grad for a in args))
        if tracked and self.requires_grad and self.grad_fn is None:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an in-place "
                               "operation; wrap it in engine.no_grad() or use tensor.data")
        if tracked and self._is_view:
            raise RuntimeError(f"{op}: in-place writes into a view (an indexed, reshaped or transposed tensor) "
                               "are not recorded by autograd when gradients flow through them; clone() the "
                               "view or write into the tensor it was taken from")
        if tracked:
            result = function.apply(self, *args)
            self.grad_fn, self._output_index, self.requires_grad = result.grad_fn, 0, True
        else:
            function().forward(self._data, *(a._data if isinstance(a, Tensor) else a for a in args))
        self._version_counter.bump()
        return self

    @staticmethod
    def _write_flat_in_place(tensors, write) -> None:
        """``write(arrays)`` writes into the 1-D views of ``tensors``' arrays (C-contiguous ones only) under
        ``no_grad``, then each memory's version is bumped: an optimizer's one kernel over many parameters."""
        if autograd.is_grad_enabled():
            raise RuntimeError("_write_flat_in_place: only under no_grad (an optimizer step)")
        arrays = []
        for t in tensors:
            if not t._data.flags.c_contiguous:
                raise ValueError(f"_write_flat_in_place: a tensor of shape {tuple(t.shape)} is not contiguous")
            arrays.append(t._data.reshape(-1))
        write(tuple(arrays))
        for t in tensors:
            t._version_counter.bump()

    # ------------------------------------------------------------------ arithmetic
    def _operand(self, other, op):
        """``other`` as a Tensor on self's device; a python scalar takes self's dtype when it fits."""
        if isinstance(other, Tensor):
            if other.device != self.device:
                raise RuntimeError(f"{op}: expected both tensors on the same device, got {self.device} "
                                   f"and {other.device}")
            return other
        xp = backend_for(self._data).xp
        if isinstance(other, (bool, int, float)):
            if self.dtype.kind == "f" or (isinstance(other, int) and self.dtype.kind in "iu"):
                dtype = self.dtype
            elif isinstance(other, float):
                dtype = float32
            else:
                dtype = np.bool_ if isinstance(other, bool) else int64
            return Tensor._wrap(xp.asarray(other, dtype=dtype))
        return Tensor._wrap(xp.asarray(like(other, self._data)))

    def _binary(self, fn, other, op, reverse=False):
        other = self._operand(other, op)
        a, b = (other, self) if reverse else (self, other)
        check_broadcast(op, a.shape, b.shape)
        a, b = promote(a, b)
        return fn.apply(a, b)

    def __add__(self, other):
        return self._binary(ew.Add, other, "add")

    def __radd__(self, other):
        return self._binary(ew.Add, other, "add", reverse=True)

    def __sub__(self, other):
        return self._binary(ew.Sub, other, "sub")

    def __rsub__(self, other):
        return self._binary(ew.Sub, other, "sub", reverse=True)

    def __mul__(self, other):
        return self._binary(ew.Mul, other, "mul")

    def __rmul__(self, other):
        return self._binary(ew.Mul, other, "mul", reverse=True)

    def __truediv__(self, other):
        if self.dtype.kind != "f" and not (isinstance(other, Tensor) and other.dtype.kind == "f"):
            return self.to(float32)._binary(ew.Div, other, "div")
        return self._binary(ew.Div, other, "div")

    def __rtruediv__(self, other):
        if self.dtype.kind != "f":
            return self.to(float32)._binary(ew.Div, other, "div", reverse=True)
        return self._binary(ew.Div, other, "div", reverse=True)

    def __pow__(self, other):
        return self._binary(ew.Pow, other, "pow")

    def __rpow__(self, other):
        return self._binary(ew.Pow, other, "pow", reverse=True)

    def __neg__(self):
        return ew.Neg.apply(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ew.Abs.apply(self)

    def abs(self):
        return ew.Abs.apply(self)

    def __matmul__(self, other):
        other = self._operand(other, "matmul")
        if self.ndim == 0 or other.ndim == 0:
            raise ValueError(f"matmul: both arguments need at least 1 dimension, got shapes "
                             f"{self.shape} and {other.shape}")
        a = self.reshape(1, -1) if self.ndim == 1 else self
        b = other.reshape(-1, 1) if other.ndim == 1 else other
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: shapes {self.shape} and {other.shape} cannot be multiplied "
                             f"({a.shape[-1]} != {b.shape[-2]})")
        check_broadcast("matmul", a.shape[:-2], b.shape[:-2])
        a, b = promote(a, b)
        out = linalg.MatMul.apply(a, b)
        if self.ndim == 1:
            out = out.reshape(*out.shape[:-2], out.shape[-1])
        if other.ndim == 1:
            out = out.reshape(*out.shape[:-1])
        return out

    def __rmatmul__(self, other):
        return self._operand(other, "matmul").__matmul__(self)

    def _inplace(self, other, op):
        other = self._operand(other, op + "_")
        check_broadcast(op + "_", self.shape, other.shape)
        if not np.can_cast(other.dtype, self.dtype, "same_kind"):
            raise RuntimeError(f"{op}_: result type {dtype_name(other.dtype)} can't be cast to the tensor's "
                               f"dtype {dtype_name(self.dtype)}")
        if other.requires_grad and other.dtype != self.dtype:
            other = other.to(self.dtype)
        return self._write_in_place(op + "_", InplaceArithmetic, other, op)

    def __iadd__(self, other):
        return self._inplace(other, "add")

    def __isub__(self, other):
        return self._inplace(other, "sub")

    def __imul__(self, other):
        return self._inplace(other, "mul")

    def __itruediv__(self, other):
        if self.dtype.kind != "f":
            raise RuntimeError(f"div_: result type float can't be cast to the tensor's dtype {self.dtype}")
        return self._inplace(other, "div")

    def add_(self, other, alpha=1):
        return self.__iadd__(other * alpha if alpha != 1 else other)

    def sub_(self, other, alpha=1):
        return self.__isub__(other * alpha if alpha != 1 else other)

    def mul_(self, other):
        return self.__imul__(other)

    # ------------------------------------------------------------------ comparisons (no grad)
    def _compare(self, other, ufunc_name):
        other = self._operand(other, ufunc_name)
        check_broadcast(ufunc_name, self.shape, other.shape)
        return Tensor._wrap(getattr(backend_for(self._data).xp, ufunc_name)(self._data, other._data))

    def __eq__(self, other):  # noqa: D105
        return self._compare(other, "equal")

    def __ne__(self, other):
        return self._compare(other, "not_equal")

    def __lt__(self, other):
        return self._compare(other, "less")

    def __le__(self, other):
        return self._compare(other, "less_equal")

    def __gt__(self, other):
        return self._compare(other, "greater")

    def __ge__(self, other):
        return self._compare(other, "greater_equal")

    __hash__ = object.__hash__

    def equal(self, other) -> bool:
        """True when ``other`` has the same shape and the same values (like ``torch.equal``)."""
        if not isinstance(other, Tensor):
            raise TypeError(f"equal(): argument 'other' must be a Tensor, got {type(other).__name__}")
        check_same_device("equal", (self, other))
        return self.shape == other.shape and bool((self._data == other._data).all())

    def allclose(self, other, rtol=1e-5, atol=1e-8) -> bool:
        check_same_device("allclose", (self, other))
        xp = backend_for(self._data).xp
        return bool(xp.allclose(self._data, other._data, rtol=rtol, atol=atol))

    # ------------------------------------------------------------------ math
    def exp(self):
        return ew.Exp.apply(self._as_float())

    def log(self):
        return ew.Log.apply(self._as_float())

    def sqrt(self):
        return ew.Sqrt.apply(self._as_float())

    def sigmoid(self):
        return Sigmoid.apply(self._as_float())

    def relu(self):
        return ReLU.apply(self)

    def tanh(self):
        return Tanh.apply(self._as_float())

    def _as_float(self):
        return self if self.dtype.kind == "f" else self.to(float32)

    def sum(self, dim=None, keepdim=False, dtype=None):
        dims = reduction.normalize_dims(dim, self.ndim, "sum")
        source = self if dtype is None else self.to(dtype)
        if source.dtype.kind == "b":
            source = source.to(int64)
        return reduction.Sum.apply(source, dims, keepdim)

    def mean(self, dim=None, keepdim=False):
        if self.dtype.kind != "f":
            raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be floating point, "
                               f"got {dtype_name(self.dtype)}")
        return reduction.Mean.apply(self, reduction.normalize_dims(dim, self.ndim, "mean"), keepdim)

    def _extreme(self, dim, keepdim, take_min, op):
        if dim is None:
            return reduction.MaxAll.apply(self, take_min)
        (axis,) = reduction.normalize_dims(dim, self.ndim, op)
        return MaxResult(*reduction.MaxAlongDim.apply(self, axis, keepdim, take_min))

    def max(self, dim=None, keepdim=False):
        """Largest element, or ``(values, indices)`` along ``dim``."""
        return self._extreme(dim, keepdim, False, "max")

    def min(self, dim=None, keepdim=False):
        """Smallest element, or ``(values, indices)`` along ``dim``."""
        return self._extreme(dim, keepdim, True, "min")

    def argmax(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor._wrap(backend_for(self._data).xp.asarray(self._data.argmax()))
        (axis,) = reduction.normalize_dims(dim, self.ndim, "argmax")
        return Tensor._wrap(reduction.arg_extreme(self._data, axis, keepdim, False))

    def argmin(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor._wrap(backend_for(self._data).xp.asarray(self._data.argmin()))
        (axis,) = reduction.normalize_dims(dim, self.ndim, "argmin")
        return Tensor._wrap(reduction.arg_extreme(self._data, axis, keepdim, True))

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        target = infer_shape(self._data.size, shape_args(shape), "reshape", self.shape)
        if target == self._data.shape:
            return self
        return shape_ops.Reshape.apply(self, target)

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:start] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def unsqueeze(self, dim):
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dim = dim % self.ndim
        if self.shape[dim] != 1:
            return self
        return self.reshape(self.shape[:dim] + self.shape[dim + 1:])

    def permute(self, *dims):
        dims = shape_args(dims)
        if sorted(d % self.ndim for d in dims) != list(range(self.ndim)) if self.ndim else dims:
            raise ValueError(f"permute: dims {tuple(dims)} is not a permutation of the {self.ndim} dims "
                             f"of a tensor of shape {self.shape}")
        return shape_ops.Permute.apply(self, tuple(d % self.ndim for d in dims))

    def transpose(self, dim0, dim1):
        axes = list(range(self.ndim))
        (d0,), (d1,) = (reduction.normalize_dims(d, self.ndim, "transpose") for d in (dim0, dim1))
        axes[d0], axes[d1] = axes[d1], axes[d0]
        return shape_ops.Permute.apply(self, tuple(axes))

    def t(self):
        return self.T

    def contiguous(self):
        return self

    def __getitem__(self, index):
        index = _raw_index(index)
        return shape_ops.GetItem.apply(self, index)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    # ------------------------------------------------------------------ printing
    def __repr__(self):
        from engine._format import format_tensor

        return format_tensor(self)

    __str__ = __repr__

    def __format__(self, spec):
        if self.ndim == 0 or (spec and self._data.size == 1):
            return format(self.item(), spec)
        return format(repr(self), spec)


class Size(tuple):
    """A tensor's shape: a tuple that prints like ``engine.Size([2, 3])``."""

    def __repr__(self):
        return f"engine.Size({list(self)})"

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n

    def __getitem__(self, item):
        result = super().__getitem__(item)
        return Size(result) if isinstance(item, slice) else result

    def __add__(self, other):
        return Size(tuple(self) + tuple(other))


class MaxResult(tuple):
    """``(values, indices)`` returned by ``max(dim)`` / ``min(dim)``, like torch's named tuple."""

    def __new__(cls, values, indices):
        return super().__new__(cls, (values, indices))

    @property
    def values(self):
        return self[0]

    @property
    def indices(self):
        return self[1]


# ---------------------------------------------------------------------- helpers
def _init_state(t: Tensor, array) -> None:
    t._data, t.requires_grad, t.grad, t.grad_fn = array, False, None, None
    t._output_index, t._version_counter, t._is_view = 0, VersionCounter(), False


def _raw_index(index):
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    return index


# ---------------------------------------------------------------------- axis= (added with the modern CNNs)
def _accepting_axis(method):
    """``method`` also taking ``axis=`` as an alias of ``dim``, as torch does (``argmax(axis=1)``)."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, axis=None, **kwargs):
        if axis is not None:
            if args or "dim" in kwargs:
                raise TypeError(f"{method.__name__}(): got both dim and axis; axis is an alias of dim")
            kwargs["dim"] = axis
        return method(self, *args, **kwargs)

    return wrapper


for _name in ("sum", "mean", "max", "min", "argmax", "argmin"):
    setattr(Tensor, _name, _accepting_axis(getattr(Tensor, _name)))
del _name
