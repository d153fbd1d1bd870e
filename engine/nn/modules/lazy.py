"""Lazy layers: ``LazyConv2d``, ``LazyLinear``, ``LazyBatchNorm1d``/``2d`` infer their input size at
the first forward, create and initialise their parameters then, and become the plain layer
(``type(m) is nn.Conv2d`` afterwards, as in torch, so ``net.apply(init_fn)`` finds them)."""
from engine.nn.module import Module
from engine.nn.modules.conv import Conv2d
from engine.nn.modules.linear import Linear
from engine.nn.modules.normalization import BatchNorm1d, BatchNorm2d
from engine.nn.parameter import Parameter
from engine.tensor import Tensor


class UninitializedParameter(Parameter):
    """A lazy layer's parameter before its first forward: any use of its values or shape raises,
    naming the layer. The same object becomes a plain Parameter when the layer materialises, so an
    optimizer built before the first forward still updates it."""

    uninitialized = True  # Module.to skips it

    def __init__(self, owner: str, name: str):
        self._owner, self._name = owner, name
        Tensor.__init__(self, None)  # the plain state, with _data (through the setter) None
        self.requires_grad = True

    @property
    def _data(self):
        raise ValueError(f"{self._owner}: parameter '{self._name}' is uninitialized: a lazy layer creates its "
                         "parameters at its first forward, from the input's shape; run a forward pass "
                         "(e.g. net(X) on one batch) before using them")

    @_data.setter
    def _data(self, value):
        self._array = value

    def materialize(self, array) -> None:
        """Become a Parameter holding ``array``."""
        self.__class__ = Parameter
        for name in ("_array", "_owner", "_name"):
            self.__dict__.pop(name, None)
        self.__dict__["_data"] = array

    def __repr__(self):
        return f"<UninitializedParameter {self._name} of {self._owner}>"


class _LazyModule(Module):
    """Holds the layer's arguments until the first forward tells it the input size (dim 1 of a
    batched input, dim 0 of an unbatched one), then builds ``cls_to_become`` in its place."""

    cls_to_become = Module
    size_argument = ""  # the constructor argument the input size fills (in_channels, ...)
    batched_ndim = ()  # ranks of a batched input, whose dim 1 is the inferred size (none: the last dim)
    unbatched_ndim = None  # rank of an unbatched input, whose dim 0 is the inferred size

    def __init__(self, arguments: dict, parameter_names):
        super().__init__()
        self._arguments = arguments
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items() if k not in ("dtype", "device"))
        self._label = f"{type(self).__name__}({shown})"
        for name in parameter_names:
            self._parameters[name] = UninitializedParameter(self._label, name)
        for name in ("weight", "bias"):
            if name not in parameter_names:
                self._parameters[name] = None

    def _inferred_size(self, input) -> int:
        if not isinstance(input, Tensor):
            raise TypeError(f"{self._label}: input must be a Tensor, got {type(input).__name__}")
        if not self.batched_ndim:  # Linear: the last dim
            if input.ndim == 0:
                raise ValueError(f"{self._label}: cannot infer in_features from a 0-d input")
            return input.shape[-1]
        if input.ndim in self.batched_ndim:
            return input.shape[1]
        if input.ndim == self.unbatched_ndim:
            return input.shape[0]
        ranks = self.batched_ndim + ((self.unbatched_ndim,) if self.unbatched_ndim else ())
        wanted = " or ".join(f"{d}D" for d in ranks)
        raise ValueError(f"{self._label}: expected {wanted} input to infer its size from, got input shape "
                         f"{tuple(input.shape)}")

    def forward(self, input):
        self._materialize(input)
        return self.forward(input)  # the class is now cls_to_become

    def _materialize(self, input) -> None:
        arguments = dict(self._arguments)
        arguments.setdefault("dtype", None)
        if arguments["dtype"] is None and input.dtype.kind == "f":
            arguments["dtype"] = input.dtype
        if arguments.get("device") is None:
            arguments["device"] = input.device
        real = self.cls_to_become(**{self.size_argument: self._inferred_size(input)}, **arguments)
        placeholders, training = dict(self._parameters), self.training
        self.__dict__.clear()
        self.__dict__.update(real.__dict__)
        for name, param in self._parameters.items():
            old = placeholders.get(name)
            if isinstance(old, UninitializedParameter) and param is not None:
                old.materialize(param._data)
                self._parameters[name] = old
        self.__class__ = self.cls_to_become
        self.train(training)

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self._arguments.items() if v is not None)


class LazyConv2d(_LazyModule):
    """``Conv2d`` whose ``in_channels`` is the input's channel count at the first forward."""

    cls_to_become, size_argument, batched_ndim, unbatched_ndim = Conv2d, "in_channels", (4,), 3

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1,
                 bias: bool = True, algo: str = "auto", dtype=None, device=None):
        super().__init__(dict(out_channels=out_channels, kernel_size=kernel_size, stride=stride, padding=padding,
                              dilation=dilation, groups=groups, bias=bias, algo=algo, dtype=dtype, device=device),
                         ("weight", "bias") if bias else ("weight",))


class LazyLinear(_LazyModule):
    """``Linear`` whose ``in_features`` is the input's last dim at the first forward."""

    cls_to_become, size_argument = Linear, "in_features"

    def __init__(self, out_features: int, bias: bool = True, dtype=None, device=None):
        super().__init__(dict(out_features=out_features, bias=bias, dtype=dtype, device=device),
                         ("weight", "bias") if bias else ("weight",))


class _LazyBatchNorm(_LazyModule):
    size_argument = "num_features"

    def __init__(self, eps: float = 1e-5, momentum=0.1, affine: bool = True, track_running_stats: bool = True,
                 dtype=None, device=None):
        super().__init__(dict(eps=eps, momentum=momentum, affine=affine, track_running_stats=track_running_stats,
                              dtype=dtype, device=device), ("weight", "bias") if affine else ())


class LazyBatchNorm1d(_LazyBatchNorm):
    """``BatchNorm1d`` whose ``num_features`` is dim 1 of the (N, C) or (N, C, L) input."""

    cls_to_become, batched_ndim = BatchNorm1d, (2, 3)


class LazyBatchNorm2d(_LazyBatchNorm):
    """``BatchNorm2d`` whose ``num_features`` is dim 1 of the (N, C, H, W) input."""

    cls_to_become, batched_ndim = BatchNorm2d, (4,)
