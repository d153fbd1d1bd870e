"""The benchmarks' report of which BLAS kernels numpy runs (benchmarks/blas.py)."""
from __future__ import annotations

from benchmarks.blas import FORCING, describe_blas


def test_the_blas_line_names_the_kernels_and_says_when_the_environment_forces_them(monkeypatch):
    for name in FORCING:
        monkeypatch.delenv(name, raising=False)
    lines = describe_blas()
    assert len(lines) == 1 and lines[0].startswith("numpy BLAS: ") and "kernels" in lines[0], lines
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    lines = describe_blas()
    assert len(lines) == 2, lines
    assert "sets OPENBLAS_CORETYPE=Haswell:" in lines[1]
    assert "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE" in lines[1]
