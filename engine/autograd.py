"""Reverse-mode automatic differentiation: the Function base class, the graph walk, no_grad.

A Function's ``forward`` takes raw arrays and returns one raw array; its ``backward`` takes the
gradient of that output and returns one gradient per input (``None`` where not needed). Subclasses
save what backward needs with ``save_for_backward`` and consult ``needs_input_grad``.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Dict, List, Optional, Tuple

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.grad_enabled = bool(mode)


@contextlib.contextmanager
def _grad_mode(mode: bool):
    previous = is_grad_enabled()
    set_grad_enabled(mode)
    try:
        yield
    finally:
        set_grad_enabled(previous)


class no_grad(contextlib.ContextDecorator):  # noqa: N801  (torch's name)
    """Context manager / decorator under which ops build no graph."""

    def __enter__(self):
        self._previous = is_grad_enabled()
        set_grad_enabled(False)

    def __exit__(self, *exc):
        set_grad_enabled(self._previous)
        return False


class enable_grad(no_grad):  # noqa: N801
    """Context manager / decorator that turns graph building back on."""

    def __enter__(self):
        self._previous = is_grad_enabled()
        set_grad_enabled(True)


class Function:
    """One differentiable op. Use ``MyOp.apply(*inputs, **params)`` to call it on Tensors."""

    def __init__(self):
        self.inputs: Tuple[Any, ...] = ()
        self.needs_input_grad: Tuple[bool, ...] = ()
        self.saved_tensors: Optional[Tuple[Any, ...]] = ()
        self._freed = False

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays

    def forward(self, *arrays, **params):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def backward(self, grad_output):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define backward")

    @classmethod
    def apply(cls, *inputs, **params):
        from engine.tensor import Tensor, check_same_device

        check_same_device(cls.__name__, inputs)
        fn = cls()
        fn.needs_input_grad = tuple(isinstance(t, Tensor) and t.requires_grad for t in inputs)
        arrays = [t._data if isinstance(t, Tensor) else t for t in inputs]
        output = fn.forward(*arrays, **params)
        result = Tensor._wrap(output)
        if is_grad_enabled() and any(fn.needs_input_grad):
            fn.inputs = inputs
            result.requires_grad = True
            result.grad_fn = fn
            fn._watch_saved(inputs + (result,))
        return result

    def _watch_saved(self, tensors) -> None:
        """Remember the version of every tensor whose array backward will read, to catch in-place edits."""
        saved = self.saved_tensors or ()
        self._saved_versions = [(t, t._version) for t in tensors
                                if hasattr(t, "_version") and any(a is t._data for a in saved)]

    def _check_saved_versions(self) -> None:
        for t, version in getattr(self, "_saved_versions", ()):
            if t._version != version:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation ({self.name}) has been modified "
                    f"by an in-place operation: a tensor of shape {tuple(t.shape)} is at version {t._version}, "
                    f"expected version {version}")

    @property
    def name(self) -> str:
        return type(self).__name__ + "Backward"

    def __repr__(self):
        return f"<{self.name}>"


def _topological_order(root: Function) -> List[Function]:
    """Functions reachable from ``root``, each before every Function that produced one of its inputs.

    An iterative depth-first post-order (no recursion limit); a Function is expanded once, when it is
    first popped, so one reached by paths of different lengths still comes after all its consumers.
    """
    order: List[Function] = []
    expanded = set()
    stack = [(root, False)]
    while stack:
        fn, children_done = stack.pop()
        if children_done:
            order.append(fn)
            continue
        if id(fn) in expanded:
            continue
        expanded.add(id(fn))
        stack.append((fn, True))
        for inp in fn.inputs:
            parent = getattr(inp, "grad_fn", None)
            if parent is not None and id(parent) not in expanded:
                stack.append((parent, False))
    order.reverse()
    return order


def run_backward(tensor, grad, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (an array shaped like ``tensor``) back to every leaf that requires grad."""
    from engine.tensor import Tensor

    if tensor.grad_fn is None:  # a leaf: its gradient is the seed itself
        _accumulate(tensor, grad)
        return
    pending: Dict[int, Any] = {id(tensor.grad_fn): grad}
    with _grad_mode(False):
        for fn in _topological_order(tensor.grad_fn):
            grad_out = pending.pop(id(fn), None)
            if grad_out is None:
                continue
            if fn._freed:
                raise RuntimeError(
                    f"Trying to backward through the graph a second time ({fn.name} was freed by an "
                    "earlier backward). Call .backward(retain_graph=True) the first time if you need "
                    "to backward twice."
                )
            fn._check_saved_versions()
            grads = fn.backward(grad_out)
            if not isinstance(grads, tuple):
                grads = (grads,)
            if not retain_graph:
                fn.saved_tensors = None
                fn._freed = True
            for inp, g in zip(fn.inputs, grads):
                if g is None or not isinstance(inp, Tensor) or not inp.requires_grad:
                    continue
                if inp.grad_fn is None:
                    _accumulate(inp, g)
                else:
                    key = id(inp.grad_fn)
                    pending[key] = g if key not in pending else pending[key] + g


def _accumulate(leaf, grad) -> None:
    from engine.tensor import Tensor

    if grad.shape != leaf.shape:
        raise RuntimeError(f"gradient shape {tuple(grad.shape)} does not match tensor shape {leaf.shape}")
    if grad.dtype != leaf._data.dtype:
        grad = grad.astype(leaf._data.dtype)
    if leaf.grad is None:
        leaf.grad = Tensor._wrap(grad.copy())
    else:
        leaf.grad._data = leaf.grad._data + grad
