"""The Numba CPU backend: every kernel of ``kernels.contract`` compiled with Numba.

Convolution has two algorithms: ``'direct'`` (batch-innermost loops vectorised over N, no
unfolded buffer; its forward vectorises over 16 output channels where ``conv_out_lanes``
applies) and ``'im2col'`` (Numba unfolds, BLAS multiplies, in workspace-bounded chunks).
Kernels are compiled on first use and cached on disk (``cache=True``), so later processes start
fast. :func:`set_num_threads` sets Numba's and BLAS's thread counts together. Numba has no
float16 arithmetic: float16 arrays are computed in float32 and rounded back (see ``half.py``).
Optional kernels: the fused conv + activation + 2x2 average pool (``conv_fused.py``) and the SGD
update of a whole parameter group (``optim.py``). Importing it sets glibc's malloc to keep freed
large blocks (``memory.py``).
"""
from __future__ import annotations

import numpy

from kernels.contract import KERNELS, export
from kernels.numba_cpu import activation, conv, loss, memory, pool, threads  # noqa: F401  (memory: on import)
from kernels.numba_cpu import adaptive_pool, batchnorm, dropout  # the modern CNNs' kernels
from kernels.numba_cpu import conv_fused  # LeNet's conv + sigmoid + pool blocks in one pass each way
from kernels.numba_cpu import optim  # the SGD update of all parameters in one call
from kernels.numba_cpu.half import via_float32

export(globals(), "numba", numpy, (activation, conv, loss, pool, threads, adaptive_pool, batchnorm, dropout,
                                conv_fused, optim))
globals().update({name: via_float32(globals()[name]) for name in KERNELS})
