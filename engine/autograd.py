"""Reverse-mode automatic differentiation: Variable, Function, the graph walk, no_grad.

A :class:`Variable` is what autograd needs of a tensor: its array, ``requires_grad``, ``grad``,
``grad_fn`` and the version counter of its memory (shared by views, bumped by in-place writes).
``engine.tensor.Tensor`` is a Variable with the user-facing API; this module never imports it.

A Function's ``forward`` takes raw arrays and returns one array or a tuple of arrays; its
``backward`` takes one gradient per output (None for an output nothing depended on) and returns one
gradient per input (None where not needed). Subclasses save what backward needs with
``save_for_backward`` and consult ``needs_input_grad``. When a Function is applied, it records an
*edge* per input (the Function that produced it, or the leaf itself), so later in-place changes to
an input tensor's history do not change this graph.
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


class VersionCounter:
    """How many in-place writes a piece of memory has had; one object shared by all its views."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0

    def bump(self) -> None:
        self.value += 1


def memory_root(array):
    """The array that owns ``array``'s memory (itself, or the end of its chain of ``.base``)."""
    root = array
    while getattr(root, "base", None) is not None and type(root.base) is type(root):
        root = root.base
    return root


class Variable:
    """The graph state of a tensor. Subclasses define ``_wrap`` (a new tensor around an array)."""

    _data: Any
    requires_grad: bool
    grad: Optional["Variable"]
    grad_fn: Optional["Function"]
    _output_index: int  # which output of grad_fn this is
    _version_counter: VersionCounter
    _is_view: bool  # shares memory with the tensor it was computed from

    @staticmethod
    def _wrap(array) -> "Variable":  # pragma: no cover - abstract
        raise NotImplementedError("a Variable subclass must define _wrap(array)")

    @property
    def _version(self) -> int:
        return self._version_counter.value

    device: Any  # where _data lives (engine.device), defined by the subclass

    def _accumulate_grad(self, grad) -> None:
        """Add ``grad`` (an array shaped like this leaf) into ``self.grad``."""
        if tuple(grad.shape) != tuple(self._data.shape):
            raise RuntimeError(f"gradient shape {tuple(grad.shape)} does not match tensor shape "
                               f"{tuple(self._data.shape)}")
        if grad.dtype != self._data.dtype:
            grad = grad.astype(self._data.dtype)
        if self.grad is None:
            self.grad = self._wrap(grad.copy())
        else:
            self.grad._data = self.grad._data + grad

    def _edge(self):
        """Where a gradient for this tensor goes: (Function, output index), (leaf, None), or None."""
        if not self.requires_grad:
            return None
        if self.grad_fn is not None:
            return (self.grad_fn, self._output_index)
        return (self, None)


def check_same_device(op: str, inputs) -> None:
    """Raise RuntimeError naming ``op`` when the Variables among ``inputs`` are on different devices."""
    devices = {t.device for t in inputs if isinstance(t, Variable)}
    if len(devices) > 1:
        names = " and ".join(sorted(str(d) for d in devices))
        raise RuntimeError(f"{op}: expected all tensors on the same device, got tensors on {names}")


class Function:
    """One differentiable op. Use ``MyOp.apply(*inputs, **params)`` to call it on tensors."""

    def __init__(self):
        self.edges: Tuple[Any, ...] = ()
        self.needs_input_grad: Tuple[bool, ...] = ()
        self.saved_tensors: Optional[Tuple[Any, ...]] = ()
        self.num_outputs = 1
        self._saved_versions: List[Tuple[VersionCounter, int, tuple]] = []
        self._freed = False

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays

    def forward(self, *arrays, **params):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def backward(self, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define backward")

    @classmethod
    def apply(cls, *inputs, **params):
        """Run ``forward`` on the inputs' arrays; wrap each output array in a tensor; record the graph."""
        tensors = [t for t in inputs if isinstance(t, Variable)]
        if not tensors:
            raise TypeError(f"{cls.__name__}.apply needs at least one tensor among its inputs")
        check_same_device(cls.__name__, tensors)
        fn = cls()
        fn.needs_input_grad = tuple(isinstance(t, Variable) and t.requires_grad for t in inputs)
        output = fn.forward(*(t._data if isinstance(t, Variable) else t for t in inputs), **params)
        arrays = output if isinstance(output, tuple) else (output,)
        results = tuple(tensors[0]._wrap(a) for a in arrays)
        _share_versions_with_views(results, tensors)
        if is_grad_enabled() and any(fn.needs_input_grad):
            fn.edges = tuple(t._edge() if isinstance(t, Variable) else None for t in inputs)
            fn.num_outputs = len(results)
            for index, result in enumerate(results):
                if result._data.dtype.kind in "fc":  # integer outputs (indices) carry no gradient
                    result.requires_grad, result.grad_fn, result._output_index = True, fn, index
            fn._watch_saved(tensors + list(results))
        return results if isinstance(output, tuple) else results[0]

    def _watch_saved(self, tensors) -> None:
        """Remember the version of the memory of every array backward will read, to catch in-place edits."""
        saved_roots = {id(memory_root(a)) for a in (self.saved_tensors or ()) if hasattr(a, "shape")}
        watched = {}
        for t in tensors:
            if id(memory_root(t._data)) in saved_roots:
                watched[id(t._version_counter)] = (t._version_counter, t._version, tuple(t._data.shape))
        self._saved_versions = list(watched.values())

    def _check_saved_versions(self) -> None:
        for counter, version, shape in self._saved_versions:
            if counter.value != version:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation ({self.name}) has been modified "
                    f"by an inplace operation: a tensor of shape {shape} is at version {counter.value}, "
                    f"expected version {version}")

    @property
    def name(self) -> str:
        return type(self).__name__ + "Backward"

    def __repr__(self):
        return f"<{self.name}>"


def _share_versions_with_views(results, inputs) -> None:
    """An output that is a view of an input's memory shares that input's version counter."""
    roots = {id(memory_root(t._data)): t for t in inputs}
    for result in results:
        source = roots.get(id(memory_root(result._data)))
        if source is not None:
            result._version_counter, result._is_view = source._version_counter, True


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
        for edge in fn.edges:
            if edge is not None and edge[1] is not None and id(edge[0]) not in expanded:
                stack.append((edge[0], False))
    order.reverse()
    return order


def run_backward(tensor: Variable, grad, retain_graph: bool = False) -> None:
    """Propagate ``grad`` (an array shaped like ``tensor``) back to every leaf that requires grad."""
    if tensor.grad_fn is None:  # a leaf: its gradient is the seed itself
        tensor._accumulate_grad(grad)
        return
    root = tensor.grad_fn
    pending: Dict[int, List[Any]] = {id(root): [None] * root.num_outputs}
    pending[id(root)][tensor._output_index] = grad
    with _grad_mode(False):
        for fn in _topological_order(root):
            grads_out = pending.pop(id(fn), None)
            if grads_out is None:
                continue
            if fn._freed:
                raise RuntimeError(
                    f"Trying to backward through the graph a second time ({fn.name} was freed by an "
                    "earlier backward). Call .backward(retain_graph=True) the first time if you need "
                    "to backward twice."
                )
            fn._check_saved_versions()
            grads_in = fn.backward(*grads_out)
            if not isinstance(grads_in, tuple):
                grads_in = (grads_in,)
            if not retain_graph:
                fn.saved_tensors = None
                fn._freed = True
            for edge, g in zip(fn.edges, grads_in):
                if g is None or edge is None:
                    continue
                target, index = edge
                if index is None:
                    target._accumulate_grad(g)
                    continue
                slots = pending.setdefault(id(target), [None] * target.num_outputs)
                slots[index] = g if slots[index] is None else slots[index] + g
