from collections import OrderedDict

from engine.nn import fusion
from engine.nn.module import Module


class Sequential(Module):
    """Modules applied in order; indexable (``net[0]``, ``net[1:3]``), iterable, with ``len``.

    ``Sequential(OrderedDict(name=module, ...))`` names the children; ``add_module(name, m)`` appends one.
    """

    def __init__(self, *modules: Module):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential: entry {name!r} is not a Module: {type(module).__name__}")
                self.add_module(name, module)
            return
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: argument {i} is not a Module: {type(module).__name__}")
            self.add_module(str(i), module)

    def __getitem__(self, index):
        items = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*items[index])
        return items[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self)), module)
        return self

    def forward(self, input):
        """Each module in turn; a conv-activation-pool run may go as one fused kernel (engine.nn.fusion)."""
        modules = list(self._modules.values())
        i, layout = 0, None  # layout: the last fused run's output in the next fused conv's input layout
        run = fusion.fusable_run(modules, 0)
        while i < len(modules):
            fused = after = None
            if run is not None:
                after = fusion.fusable_run(modules, i + fusion.RUN_LENGTH)
                fused = fusion.run_fused(*run, input, layout, None if after is None else after[0])
            if fused is None:
                input, i, layout = modules[i](input), i + 1, None
                run = fusion.fusable_run(modules, i)
            else:
                (input, layout), i, run = fused, i + fusion.RUN_LENGTH, after
        return input


class Flatten(Module):
    """Flatten dims ``start_dim..end_dim`` (default: all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# --- ModuleList (added with the modern CNNs)
class ModuleList(Module):
    """A list of sub-modules, registered so that ``parameters()``, ``to()`` and ``train()`` see them."""

    def __init__(self, modules=None):
        super().__init__()
        for module in modules or ():
            self.append(module)

    def append(self, module: Module) -> "ModuleList":
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: can only hold Modules, got {type(module).__name__}")
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules) -> "ModuleList":
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index):
        items = list(self._modules.values())
        return ModuleList(items[index]) if isinstance(index, slice) else items[index]

    def __setitem__(self, index, module: Module) -> None:
        names = list(self._modules)
        self.add_module(names[index], module)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
