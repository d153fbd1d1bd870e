#!/usr/bin/env bash
# Install MPI for data-parallel training into .venv: MPICH (the `mpich` wheel: libmpi and mpiexec in
# .venv/bin) and mpi4py. Run after scripts/install.sh; then `.venv/bin/mpiexec -n 2 ...` works.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    echo "no .venv here: run scripts/install.sh first" >&2
    exit 1
fi
.venv/bin/python -m pip install -q "mpich>=4.2" "mpi4py>=4.0"
.venv/bin/mpiexec -n 2 .venv/bin/python -c "from mpi4py import MPI; MPI.COMM_WORLD.Barrier()" \
    && echo "MPI ready: $(.venv/bin/python -c 'from mpi4py import MPI; print(MPI.Get_library_version().splitlines()[0])')"
