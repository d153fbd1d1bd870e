"""The reference backend: every kernel of ``kernels.contract`` written plainly in NumPy.

Slow but obviously correct; it is the CPU fallback and the second oracle (after torch) that the
faster backends are tested against. Kernels take raw C-contiguous float32/float64 arrays and
return new arrays of the same dtype.
"""
from __future__ import annotations

import numpy

from kernels.contract import export
from reference import activation, conv, loss, pool
from reference import adaptive_pool, batchnorm, dropout  # the modern CNNs' kernels

export(globals(), "reference", numpy, (activation, conv, loss, pool, adaptive_pool, batchnorm, dropout))
