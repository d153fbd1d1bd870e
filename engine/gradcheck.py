"""Finite-difference gradient checking (float64, central differences).

``gradcheck(fn, inputs)`` compares the autograd gradient of ``sum(fn(*inputs) * w)`` for a fixed
random ``w`` against central differences. With ``random_directions=k`` it instead checks k random
directional derivatives v . grad, which costs 2k evaluations whatever the input size.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from engine import autograd
from engine.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytical gradient disagrees with finite differences."""


def _scalarize(fn, inputs, weights):
    out = fn(*inputs)
    outputs = out if isinstance(out, (tuple, list)) else (out,)
    total = None
    for o, w in zip(outputs, weights):
        term = (o * Tensor._wrap(w).to(o.device)).sum()
        total = term if total is None else total + term
    return total


def gradcheck(fn: Callable, inputs: Sequence[Tensor], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, random_directions: int = None, seed: int = 0) -> bool:
    """Return True when autograd's gradients of ``fn`` match finite differences, else raise GradcheckError.

    Args:
        fn: maps the tensors in ``inputs`` to a tensor (or tuple of tensors).
        inputs: float64 tensors; those with ``requires_grad`` are checked.
        random_directions: None to check every element, or k to check k random directions.
    """
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} must be float64 for finite differences, got {inputs[i].dtype}")
    rng = np.random.default_rng(seed)
    with autograd.no_grad():
        probe = fn(*inputs)
    probes = probe if isinstance(probe, (tuple, list)) else (probe,)
    weights = [rng.standard_normal(tuple(p.shape)) for p in probes]

    for i in checked:
        inputs[i].grad = None
    _scalarize(fn, inputs, weights).backward()
    analytic = {i: (inputs[i].grad.cpu().numpy() if inputs[i].grad is not None else np.zeros(inputs[i].shape))
                for i in checked}

    def value():
        with autograd.no_grad():
            return float(_scalarize(fn, inputs, weights).item())

    for i in checked:
        data = inputs[i].detach()  # perturbed in place (same memory, on its device)
        if random_directions is None:
            numeric = np.zeros(data.shape)
            flat, flat_numeric = data.reshape(-1), numeric.reshape(-1)
            for k in range(flat.numel()):
                original = float(flat[k])
                _write(flat, k, original + eps)
                plus = value()
                _write(flat, k, original - eps)
                minus = value()
                _write(flat, k, original)
                flat_numeric[k] = (plus - minus) / (2 * eps)
            bad = ~np.isclose(analytic[i], numeric, rtol=rtol, atol=atol)
            if bad.any():
                where = np.argwhere(bad)[0]
                raise GradcheckError(
                    f"gradcheck: input {i} (shape {tuple(data.shape)}): {bad.sum()} of {bad.size} gradient entries "
                    f"differ; "
                    f"first at index {tuple(int(k) for k in where)}: analytic "
                    f"{float(analytic[i][tuple(where)])!r} vs numeric {float(numeric[tuple(where)])!r}")
        else:
            original = inputs[i].detach().cpu().numpy().copy()
            for d in range(random_directions):
                v = rng.standard_normal(data.shape)
                _write(data, Ellipsis, original + eps * v)
                plus = value()
                _write(data, Ellipsis, original - eps * v)
                minus = value()
                _write(data, Ellipsis, original)
                numeric = (plus - minus) / (2 * eps)
                predicted = float((analytic[i] * v).sum())
                if not np.isclose(predicted, numeric, rtol=rtol, atol=atol):
                    raise GradcheckError(
                        f"gradcheck: input {i} (shape {tuple(data.shape)}), random direction {d}: analytic "
                        f"directional derivative {predicted!r} vs numeric {numeric!r}")
    return True


def _write(tensor: Tensor, index, value) -> None:
    with autograd.no_grad():
        tensor[index] = value.astype(tensor.dtype) if isinstance(value, np.ndarray) else value
