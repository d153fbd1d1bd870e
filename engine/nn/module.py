"""``Module``: the base class of layers and models, with torch's bookkeeping API."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterator, Tuple

import numpy as np

from engine import autograd
from engine.nn.parameter import Parameter
from engine.tensor import Tensor


class Module:
    """Base class: assign Parameters and sub-Modules as attributes, define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        params, modules = self.__dict__.get("_parameters"), self.__dict__.get("_modules")
        if params is None:
            raise AttributeError("cannot assign attributes before Module.__init__() is called")
        buffers = self.__dict__.get("_buffers", {})
        if name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer '{name}' (a Tensor or None is needed)")
            buffers[name] = value
            return
        params.pop(name, None)
        modules.pop(name, None)
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            modules[name] = value
        elif value is None and name in ("weight", "bias"):
            params[name] = None
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        for store in ("_parameters", "_modules", "_buffers"):
            items = self.__dict__.get(store, {})
            if name in items:
                return items[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._modules, self._buffers):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param) -> None:
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register ``tensor`` (or None) as state that is not a parameter: saved in ``state_dict``
        (when ``persistent``), moved by ``to``, not returned by ``parameters``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: buffer '{name}' must be a Tensor or None, got {type(tensor).__name__}")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"register_buffer: attribute '{name}' already exists")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if not persistent:
            object.__setattr__(self, "_non_persistent", self.__dict__.get("_non_persistent", set()) | {name})

    def named_buffers(self, prefix: str = "") -> Iterator[Tuple[str, Tensor]]:
        for module_name, module in self.named_modules(prefix):
            for name, b in module.__dict__.get("_buffers", {}).items():
                if b is not None:
                    yield (f"{module_name}.{name}" if module_name else name), b

    def buffers(self) -> Iterator[Tensor]:
        for _, b in self.named_buffers():
            yield b

    def _persistent_buffers(self):
        for module_name, module in self.named_modules():
            skip = module.__dict__.get("_non_persistent", set())
            for name, b in module.__dict__.get("_buffers", {}).items():
                if b is not None and name not in skip:
                    yield (f"{module_name}.{name}" if module_name else name), b

    def add_module(self, name: str, module: "Module") -> None:
        self._modules[name] = module

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---------------------------------------------------------------- traversal
    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator["Module"]:
        return (m for m in self._modules.values() if m is not None)

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def named_parameters(self, prefix: str = "") -> Iterator[Tuple[str, Parameter]]:
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def apply(self, fn) -> "Module":
        """Call ``fn`` on every sub-module (children first) and on self, like torch."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---------------------------------------------------------------- modes and gradients
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    # ---------------------------------------------------------------- devices and dtypes
    def to(self, *args, **kwargs) -> "Module":
        """Move (or cast) every parameter in place: ``to('cuda')``, ``to(engine.float64)``."""
        for p in self.parameters():
            if getattr(p, "uninitialized", False):  # a lazy layer's: it takes the input's dtype and device later
                continue
            moved = p.detach().to(*args, **kwargs)
            p.data = moved
            if p.grad is not None:
                p.grad = p.grad.to(*args, **kwargs)
        for b in self.buffers():  # like torch, a dtype only casts floating buffers (num_batches_tracked stays int)
            b.data = b.to(*args, **kwargs) if b.dtype.kind == "f" else b.to(*_devices_only(args, kwargs))
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    # ---------------------------------------------------------------- state
    def state_dict(self) -> Dict[str, Tensor]:
        """Name -> detached tensor (sharing storage) for every parameter, like torch."""
        state = OrderedDict((name, p.detach()) for name, p in self.named_parameters())
        state.update((name, b.detach()) for name, b in self._persistent_buffers())
        return state

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values (Tensors or numpy arrays) into the parameters; shapes must match."""
        own = dict(self.named_parameters())
        own.update(self._persistent_buffers())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, value in state_dict.items():
            if name not in own:
                continue
            value = value if isinstance(value, Tensor) else np.asarray(value)
            param = own[name]
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(f"load_state_dict: entry '{name}' has shape {tuple(param.shape)}, "
                                 f"the state dict has shape {tuple(value.shape)}")
            with autograd.no_grad():
                param.copy_(value.to(param.device) if isinstance(value, Tensor) else value)
        return missing, unexpected

    # ---------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _devices_only(args, kwargs):
    """The device arguments of a ``to(...)`` call (for buffers that keep their integer dtype)."""
    from engine.device import device as Device

    return [a for a in args if isinstance(a, (str, Device))] + ([kwargs["device"]] if "device" in kwargs else [])
