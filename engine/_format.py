"""Printing tensors the way torch does: ``tensor([[ 0.9799, -0.9993]])``."""
from __future__ import annotations

import numpy as np

from engine.device import dtype_name, float32, int64

_DEFAULT_DTYPES = (float32, int64, np.dtype(bool))


def _float_formatter(values: np.ndarray):
    """torch's rules: integers print as '1.', a wide range or tiny/huge values switch to 1.2346e-05."""
    finite = values[np.isfinite(values)]
    nonzero = np.abs(finite[finite != 0])
    if finite.size == 0 or np.all(finite == np.round(finite)):
        if nonzero.size and (nonzero.max() / nonzero.min() > 1000 or nonzero.max() > 1e8):
            return lambda v: f"{v:.4e}"
        return lambda v: f"{v:.0f}." if np.isfinite(v) else str(v)
    if nonzero.size and (nonzero.max() / nonzero.min() > 1000 or nonzero.max() > 1e8 or nonzero.min() < 1e-4):
        return lambda v: f"{v:.4e}"
    return lambda v: f"{v:.4f}"


def format_tensor(t) -> str:
    values = np.asarray(t._data.get() if t.device.type == "cuda" else t._data)
    if values.dtype.kind == "f":
        fmt = _float_formatter(values.astype(np.float64))
    elif values.dtype.kind == "b":
        fmt = str
    else:
        fmt = lambda v: str(int(v))  # noqa: E731
    width = max((len(fmt(v)) for v in values.reshape(-1)[:1000]), default=0)
    body = np.array2string(values, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3,
                           max_line_width=80,
                           formatter={"all": lambda v: fmt(v).rjust(width)})
    extras = []
    if t.device.type != "cpu":
        extras.append(f"device='{t.device}'")
    if values.dtype not in _DEFAULT_DTYPES or values.size == 0 and values.dtype != float32:
        extras.append(f"dtype={dtype_name(values.dtype)}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"
