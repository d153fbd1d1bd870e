#!/usr/bin/env bash
# The GPU check of issue 12: see scripts/gpu_check.py for the steps, the deadline and what comes back.
#
#   bash scripts/gpu_check.sh prepare   # here (CPU): the data into .device_data/, the tensorboardX wheel into .whl/
#   bash scripts/gpu_check.sh           # on the GPU machine: $OUT/summary.txt and $OUT/gpu_check.tar.gz
#
# With the device tool: command "bash scripts/gpu_check.sh", carry [".device_data", ".whl"], timeout_s 480.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY="${GPU_CHECK_PYTHON:-python3}"  # on the GPU machine: the one with torch and CuPy
if [ "${1:-}" = "prepare" ] && [ -z "${GPU_CHECK_PYTHON:-}" ] && [ -x .venv/bin/python ]; then
    PY=.venv/bin/python  # here: the project's venv, whose tensorboardX version the wheel matches
fi
exec "$PY" scripts/gpu_check.py "$@"
