"""The Tensor: an array (numpy or cupy) plus what autograd needs (requires_grad, grad, grad_fn)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from engine import autograd
from engine.device import array_device, array_module, device, dtype_name, float32, int64
from engine.functions import elementwise as ew
from engine.functions import linalg, reduction
from engine.functions import shape as shape_ops
from engine.functions.activation import ReLU, Sigmoid, Tanh


class Tensor:
    """A multi-dimensional array that records the ops applied to it when ``requires_grad`` is set.

    Create tensors with ``engine.tensor``, ``engine.zeros`` and friends rather than this class.
    """

    __array_priority__ = 1000  # numpy defers `ndarray op Tensor` to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data._data
        self._data = data
        self.requires_grad = bool(requires_grad)
        self.grad: Optional[Tensor] = None
        self.grad_fn = None
        self._version = 0  # bumped by in-place ops; autograd checks it for saved tensors

    @classmethod
    def _wrap(cls, array) -> "Tensor":
        if isinstance(array, np.generic):  # numpy turns 0-d results into scalars; keep an array
            array = np.asarray(array)
        t = cls.__new__(cls)
        t._data, t.requires_grad, t.grad, t.grad_fn, t._version = array, False, None, None, 0
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
        """The same storage, detached from the graph (writes to it bypass autograd)."""
        return Tensor._wrap(self._data)

    @data.setter
    def data(self, value):
        value = value._data if isinstance(value, Tensor) else value
        if tuple(value.shape) != tuple(self._data.shape):
            raise ValueError(f"data: new value has shape {tuple(value.shape)}, tensor has shape {self.shape}")
        self._data = value

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
        return Tensor._wrap(self._data)

    def clone(self) -> "Tensor":
        return _Clone.apply(self)

    def requires_grad_(self, mode: bool = True) -> "Tensor":
        if self.grad_fn is not None and not mode:
            raise RuntimeError("requires_grad_(False) is only allowed on leaf tensors")
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
            out = _ToDevice.apply(out, device(target_device)) if device(target_device) != self.device else out
        if target_dtype is not None and np.dtype(target_dtype) != out.dtype:
            out = _Cast.apply(out, np.dtype(target_dtype))
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
            grad = array_module(self._data).ones_like(self._data)
        else:
            if isinstance(gradient, Tensor):
                check_same_device("backward", (self, gradient))
            grad = gradient._data if isinstance(gradient, Tensor) else \
                array_module(self._data).asarray(_to_module(gradient, self._data))
            if tuple(grad.shape) != tuple(self._data.shape):
                raise ValueError(f"backward: gradient shape {tuple(grad.shape)} does not match tensor shape "
                                 f"{tuple(self._data.shape)}")
            grad = grad.astype(self.dtype, copy=False)
        autograd.run_backward(self, grad, retain_graph=retain_graph)

    def zero_(self) -> "Tensor":
        self._check_inplace("zero_")
        self._data[...] = 0
        return self

    def fill_(self, value) -> "Tensor":
        self._check_inplace("fill_")
        self._data[...] = value
        return self

    def copy_(self, src) -> "Tensor":
        self._check_inplace("copy_")
        src = src._data if isinstance(src, Tensor) else src
        self._data[...] = _to_module(src, self._data)
        return self

    def _check_inplace(self, op):
        self._version += 1
        if self.requires_grad and autograd.is_grad_enabled():
            kind = "a leaf Variable that requires grad" if self.grad_fn is None else "a tensor in the graph"
            raise RuntimeError(f"{op}: {kind} is being used in an in-place operation; "
                               "wrap it in engine.no_grad() or use tensor.data")

    # ------------------------------------------------------------------ arithmetic
    def _operand(self, other, op):
        """``other`` as a Tensor on self's device; a python scalar takes self's dtype when it fits."""
        if isinstance(other, Tensor):
            if other.device != self.device:
                raise RuntimeError(f"{op}: expected both tensors on the same device, got {self.device} "
                                   f"and {other.device}")
            return other
        xp = array_module(self._data)
        if isinstance(other, (bool, int, float)):
            if self.dtype.kind == "f" or (isinstance(other, int) and self.dtype.kind in "iu"):
                dtype = self.dtype
            elif isinstance(other, float):
                dtype = float32
            else:
                dtype = np.bool_ if isinstance(other, bool) else int64
            return Tensor._wrap(xp.asarray(other, dtype=dtype))
        return Tensor._wrap(_to_module(other, self._data) if not np.isscalar(other) else xp.asarray(other))

    def _binary(self, fn, other, op, reverse=False):
        other = self._operand(other, op)
        a, b = (other, self) if reverse else (self, other)
        check_broadcast(op, a.shape, b.shape)
        a, b = _promote(a, b)
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
        a, b = _promote(a, b)
        out = linalg.MatMul.apply(a, b)
        if self.ndim == 1:
            out = out.reshape(*out.shape[:-2], out.shape[-1])
        if other.ndim == 1:
            out = out.reshape(*out.shape[:-1])
        return out

    def __rmatmul__(self, other):
        return self._operand(other, "matmul").__matmul__(self)

    def _inplace(self, other, op, ufunc):
        self._check_inplace(op)
        other = self._operand(other, op)
        check_broadcast(op, self.shape, other.shape)
        ufunc(self._data, other._data, out=self._data, casting="same_kind")
        return self

    def __iadd__(self, other):
        return self._inplace(other, "add_", array_module(self._data).add)

    def __isub__(self, other):
        return self._inplace(other, "sub_", array_module(self._data).subtract)

    def __imul__(self, other):
        return self._inplace(other, "mul_", array_module(self._data).multiply)

    def __itruediv__(self, other):
        if self.dtype.kind != "f":
            raise RuntimeError(f"div_: result type float can't be cast to the tensor's dtype {self.dtype}")
        return self._inplace(other, "div_", array_module(self._data).divide)

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
        return Tensor._wrap(getattr(array_module(self._data), ufunc_name)(self._data, other._data))

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
        xp = array_module(self._data)
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
        values = reduction.MaxAlongDim.apply(self, axis, keepdim, take_min)
        indices = Tensor._wrap(values.grad_fn.indices if values.grad_fn else
                               _argextreme(self._data, axis, keepdim, take_min))
        return MaxResult(values, indices)

    def max(self, dim=None, keepdim=False):
        """Largest element, or ``(values, indices)`` along ``dim``."""
        return self._extreme(dim, keepdim, False, "max")

    def min(self, dim=None, keepdim=False):
        """Smallest element, or ``(values, indices)`` along ``dim``."""
        return self._extreme(dim, keepdim, True, "min")

    def argmax(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor._wrap(array_module(self._data).asarray(self._data.argmax()))
        (axis,) = reduction.normalize_dims(dim, self.ndim, "argmax")
        return Tensor._wrap(_argextreme(self._data, axis, keepdim, False))

    def argmin(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor._wrap(array_module(self._data).asarray(self._data.argmin()))
        (axis,) = reduction.normalize_dims(dim, self.ndim, "argmin")
        return Tensor._wrap(_argextreme(self._data, axis, keepdim, True))

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape):
        shape = _shape_args(shape)
        try:
            target = _infer_shape(self._data.size, shape)
        except ValueError:
            raise ValueError(f"reshape: shape {tuple(shape)} is invalid for input of size {self.numel()} "
                             f"(shape {self.shape})") from None
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
        dims = _shape_args(dims)
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

    def __setitem__(self, index, value):
        self._check_inplace("__setitem__")
        value = value._data if isinstance(value, Tensor) else value
        self._data[_raw_index(index)] = _to_module(value, self._data)

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


# ---------------------------------------------------------------------- helpers used across the engine
class _ToDevice(autograd.Function):
    def forward(self, a, target):
        self.source = array_device(a)
        return _move(a, target)

    def backward(self, gy):
        return _move(gy, self.source)


class _Cast(autograd.Function):
    def forward(self, a, dtype):
        self.source = a.dtype
        return a.astype(dtype)

    def backward(self, gy):
        return gy.astype(self.source) if self.source.kind == "f" else None


class _Clone(autograd.Function):
    def forward(self, a):
        return a.copy()

    def backward(self, gy):
        return gy


def _is_cuda_array(array) -> bool:
    return array_device(array).type == "cuda"


def _move(array, target: device):
    if target.type == "cpu":
        return array.get() if _is_cuda_array(array) else array
    from engine import cuda

    cp = cuda.require_cupy()
    count = cp.cuda.runtime.getDeviceCount()
    if target.index >= count:
        raise RuntimeError(f"cannot move a tensor to {target}: CuPy sees {count} CUDA device(s)")
    with cp.cuda.Device(target.index):
        return cp.asarray(array)  # a copy on this device, from the host or from another GPU


def _to_module(value, like):
    """``value`` as an array of ``like``'s module (numpy or cupy)."""
    xp = array_module(like)
    if xp is np and _is_cuda_array(value):
        return value.get()
    return xp.asarray(value) if not np.isscalar(value) else value


def _argextreme(array, axis, keepdim, take_min):
    idx = array.argmin(axis=axis) if take_min else array.argmax(axis=axis)
    return array_module(array).expand_dims(idx, axis) if keepdim else idx


def _raw_index(index):
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, tuple):
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    return index


def _shape_args(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _infer_shape(size, shape):
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if shape.count(-1) > 1 or any(s < -1 for s in shape) or (-1 not in shape and known != size) \
            or (-1 in shape and (known == 0 or size % known)):
        raise ValueError("bad shape")
    return tuple(size // known if s == -1 else s for s in shape)


def _promote(a: Tensor, b: Tensor):
    """Cast two operands to one dtype the way torch does: a float beats an int, and between two
    floats a 0-d tensor (a wrapped scalar) takes the other's dtype; else float32 + float64 -> float64."""
    if a.dtype == b.dtype:
        return a, b
    a_float, b_float = a.dtype.kind == "f", b.dtype.kind == "f"
    if a_float != b_float:
        target = a.dtype if a_float else b.dtype
    elif a.ndim == 0 and b.ndim > 0:
        target = b.dtype
    elif b.ndim == 0 and a.ndim > 0:
        target = a.dtype
    else:
        target = np.result_type(a.dtype, b.dtype)
    return a.to(target), b.to(target)


def check_broadcast(op, shape_a, shape_b):
    """Raise ValueError naming ``op`` and both shapes when they don't broadcast."""
    for x, y in zip(reversed(tuple(shape_a)), reversed(tuple(shape_b))):
        if x != y and x != 1 and y != 1:
            raise ValueError(f"{op}: shapes {tuple(shape_a)} and {tuple(shape_b)} cannot be broadcast together "
                             f"(size {x} vs {y})")


def check_same_device(op, inputs):
    devices = {t.device for t in inputs if isinstance(t, Tensor)}
    if len(devices) > 1:
        names = " and ".join(sorted(str(d) for d in devices))
        raise RuntimeError(f"{op}: expected all tensors on the same device, got tensors on {names}")


def as_float_tensors(op, **named):
    """Check that each named argument is a float Tensor (None allowed for ``bias``), all one dtype."""
    out, dtypes = [], {}
    for name, value in named.items():
        if value is None and name == "bias":
            out.append(None)
            continue
        if not isinstance(value, Tensor):
            raise TypeError(f"{op}: argument '{name}' must be a Tensor, got {type(value).__name__}")
        if value.dtype.kind != "f":
            raise TypeError(f"{op}: argument '{name}' must be a floating point tensor, got "
                            f"{dtype_name(value.dtype)} with shape {value.shape}")
        dtypes[name] = value.dtype
        out.append(value)
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{k} is {dtype_name(v)}" for k, v in dtypes.items())
        raise TypeError(f"{op}: arguments must have the same dtype, but {listing}")
    check_same_device(op, out)
    return out


def batched(t: Tensor, op: str):
    """A 4-D view of a (N,C,H,W) or unbatched (C,H,W) input, and a function undoing the batching."""
    if t.ndim == 4:
        return t, lambda y: y
    if t.ndim == 3:
        return t.reshape((1,) + tuple(t.shape)), lambda y: y.reshape(tuple(y.shape)[1:])
    raise ValueError(f"{op}: input must be 4-D (N, C, H, W) or 3-D (C, H, W), got input shape {tuple(t.shape)}")


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
