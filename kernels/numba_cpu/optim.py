"""The optimizer update over all of a parameter group at once (one call, not one per parameter)."""
from __future__ import annotations

import numpy as np
from numba import njit

from kernels.contract import CONTRACT

_numpy_sgd_step = next(c.default for c in CONTRACT if c.name == "sgd_step")


@njit(cache=True)
def _sgd(params, grads, lr):
    for k in range(len(params)):
        p, g = params[k], grads[k]
        for i in range(p.size):
            p[i] -= lr * g[i]  # no fastmath: (lr * g) rounds first, as numpy's p -= lr * g


def sgd_step(params, grads, lr):
    """params, grads: tuples of matching 1-D C-contiguous arrays of one dtype; p -= lr * g in place,
    lr rounded to that dtype first (as numpy does). One compiled kernel per tuple length."""
    if params and params[0].dtype in (np.float32, np.float64):
        _sgd(params, grads, params[0].dtype.type(lr))
    else:  # Numba has no float16 arithmetic
        _numpy_sgd_step(params, grads, lr)
