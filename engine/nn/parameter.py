"""``Parameter``: a leaf tensor that a Module registers and an optimizer updates."""
from __future__ import annotations

from engine.creation import empty
from engine.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that requires grad by default and is registered when assigned to a Module attribute."""

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = empty(0)
        super().__init__(data._data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()
