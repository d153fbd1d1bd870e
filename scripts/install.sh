#!/usr/bin/env bash
# Create .venv and install the project with its training CLI's packages (the `cli` extra) and, with `test`,
# the test tools incl. torch's CPU build.
# Also installs Debian's FashionMNIST package when the data is missing and apt-get is usable.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$extra" = "test" ]; then
    .venv/bin/python -m pip install -q -e '.[cli,test]'
else
    .venv/bin/python -m pip install -q -e '.[cli]'
fi
data=/usr/share/datasets/fashion-mnist
if [ ! -f "$data/train-images-idx3-ubyte.gz" ] && [ -z "${FASHION_MNIST_DIR:-}" ] && command -v apt-get >/dev/null; then
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo_cmd="sudo"
    echo "installing Debian's dataset-fashion-mnist (FashionMNIST files into $data)"
    ($sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
        || echo "could not install dataset-fashion-mnist; pass --data-dir or set FASHION_MNIST_DIR" >&2
fi
# MPI (the mpich and mpi4py wheels) for data-parallel training: `.venv/bin/mpiexec -n 2 ...`.
bash scripts/install_mpi.sh
# Compile the training CLI's kernels now (Numba caches them on disk), so the first training step does not wait.
.venv/bin/python -m engine.training.warmup || echo "warning: the kernel warm-up failed; the first run compiles them" >&2
