"""Shape ops: reshape, transpose/permute, indexing."""
from __future__ import annotations

from engine.autograd import Function
from engine.backend import backend_for


class Reshape(Function):
    def forward(self, a, shape):
        self.in_shape = a.shape
        return a.reshape(shape)

    def backward(self, gy):
        return gy.reshape(self.in_shape)


class Permute(Function):
    def forward(self, a, axes):
        self.axes = axes
        return a.transpose(axes)

    def backward(self, gy):
        inverse = [0] * len(self.axes)
        for i, axis in enumerate(self.axes):
            inverse[axis] = i
        return gy.transpose(inverse)


def _is_basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


class GetItem(Function):
    def forward(self, a, index):
        self.in_shape, self.dtype, self.index = a.shape, a.dtype, index
        return a[index]

    def backward(self, gy):
        xp = backend_for(gy).xp
        g = xp.zeros(self.in_shape, dtype=gy.dtype)
        if _is_basic_index(self.index):
            g[self.index] = gy
        else:  # advanced indexing may pick an element twice: accumulate
            xp.add.at(g, self.index, gy)
        return g
