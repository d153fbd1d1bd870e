#!/usr/bin/env bash
# The GPU check of issue 5, prepared on a CPU machine and run in one go on a GPU machine.
#
#   bash scripts/gpu_check.sh prepare   # here: copy the FashionMNIST .gz files into .device_data/
#                                       # (git-ignored, so the device tool must carry it)
#   bash scripts/gpu_check.sh           # on the GPU machine: every step below, output in $OUT
#
# With the device tool: command "bash scripts/gpu_check.sh", carry [".device_data"], timeout_s 600.
# The step time limits add up to 540 s. GPU_CHECK_STEPS="pytest bench" runs only those steps.
#
# Steps (each writes $OUT/<step>.txt; $OUT/summary.txt has each step's exit status and seconds):
#   env      nvidia-smi, Python/CuPy/torch/cuDNN versions, whether the engine sees the GPU
#   pytest   tests/test_cupy_compile.py + tests/test_kernels.py -k cupy (kernels vs torch and reference)
#   engine   the rest of the suite's cuda/cupy cases (modules, autograd, training parity)
#   train    python -m engine.train_lenet --device cuda --epochs 1 on the full training set
#   bench    python -m benchmarks.gpu_compare --epoch (engine kernels vs cuDNN + a PyTorch epoch)
set -uo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=.device_data/fashion-mnist

if [ "${1:-}" = "prepare" ]; then
    src="${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
    mkdir -p "$DATA_DIR"
    cp "$src"/*-ubyte.gz "$DATA_DIR"/ || { echo "no FashionMNIST .gz files in $src" >&2; exit 1; }
    ls -l "$DATA_DIR"
    exit 0
fi

OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
STEPS="${GPU_CHECK_STEPS:-env pytest engine train bench}"

# The project's venv when it has CuPy (a carried one), else the machine's Python.
PY="${PYTHON:-python3}"
if [ -x .venv/bin/python ] && .venv/bin/python -c "import cupy" 2>/dev/null; then
    PY=.venv/bin/python
fi
XDIST=""
if "$PY" -c "import xdist" 2>/dev/null; then
    XDIST="-n 4"
fi

run_step() {  # run_step NAME SECONDS COMMAND...
    local name="$1" limit="$2"
    shift 2
    case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
    echo "== $name: $(echo "$*" | head -c 160 | tr '\n' ' ')" | tee -a "$OUT/summary.txt"
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    echo "   $name: exit $rc in $((SECONDS - start)) s$([ $rc -eq 124 ] && echo ' (timed out)')" | tee -a "$OUT/summary.txt"
    tail -n 5 "$OUT/$name.txt"
}

run_step env 30 bash -c "
    nvidia-smi
    $PY - <<'EOF'
import platform, sys
print('python', sys.version.split()[0], platform.machine())
import numpy; print('numpy', numpy.__version__)
import cupy; print('cupy', cupy.__version__, 'runtime', cupy.cuda.runtime.runtimeGetVersion(), 'driver', cupy.cuda.runtime.driverGetVersion())
import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name(0))
from engine import backend; print('engine cupy backend available:', backend.is_available('cupy'))
backend.load('cupy')
EOF"

# shellcheck disable=SC2086  # XDIST is empty or two words
run_step pytest 150 "$PY" -m pytest -q -rs $XDIST tests/test_cupy_compile.py tests/test_kernels.py -k cupy \
    --junitxml="$OUT/pytest.xml"

# shellcheck disable=SC2086
run_step engine 60 "$PY" -m pytest -q -rs $XDIST tests -k "cuda or cupy or gpu" \
    --ignore=tests/test_cupy_compile.py --ignore=tests/test_kernels.py --ignore=tests/test_cuda_emulator.py \
    --junitxml="$OUT/engine.xml"

run_step train 150 "$PY" -m engine.train_lenet --device cuda --epochs 1 --data-dir "$DATA_DIR" \
    --logdir "$OUT/runs"

run_step bench 150 "$PY" -m benchmarks.gpu_compare --epoch --data-dir "$DATA_DIR" --out "$OUT/gpu_compare.md"

echo "results in $OUT"
cat "$OUT/summary.txt"
