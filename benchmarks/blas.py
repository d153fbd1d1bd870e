"""Which kernels numpy's BLAS runs, printed at the top of the benchmarks: the linear layers' speed
depends on it. Some machines of this project set OPENBLAS_CORETYPE=Haswell (and OPENBLAS_L2_SIZE)
for old OpenBLAS builds; a current numpy then runs AVX2 kernels on an AVX-512 processor (LeNet's
400->120 linear forward: 0.23 ms against 0.13-0.15 ms with the SkylakeX kernels it picks itself,
on the 2-core Zen 5 machine)."""
from __future__ import annotations

import os

FORCING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def describe_blas() -> list:
    """One line naming each BLAS library's kernels, and one more if the environment forces them."""
    from threadpoolctl import threadpool_info

    found = [f"{i['internal_api']} {i.get('version')}, {i.get('architecture') or '?'} kernels"
             for i in threadpool_info() if i["user_api"] == "blas"]
    lines = [f"numpy BLAS: {'; '.join(found) or 'none found'}"]
    forced = " ".join(f"{name}={os.environ[name]}" for name in FORCING if name in os.environ)
    if forced:
        lines.append(f"  the environment sets {forced}: OpenBLAS runs the kernels named, not the ones it would "
                     f"pick; to measure a current numpy, run the benchmark under env -u {' -u '.join(FORCING)}")
    return lines
