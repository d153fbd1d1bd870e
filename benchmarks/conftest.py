"""Benchmarks: give torch's OpenMP runtime the same wait policy as the Numba backend's.

Both read OMP_WAIT_POLICY when they start; this runs before benchmark modules import torch.
(kernels/numba_cpu/threads.py explains why PASSIVE; an explicit setting in the environment wins.)
"""
import os

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
