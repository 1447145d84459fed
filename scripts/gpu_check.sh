#!/usr/bin/env bash
# GPU check of the Triton token-mixer kernels (needs one CUDA GPU; about 3-6 minutes on an H200):
#   1. correctness: tests/test_kernels_triton.py runs every kernel compiled for CUDA against
#      its torch reference (outputs, input gradients, fp32 and bf16, states);
#   2. speed: the `kernels` benchmark (bf16, B in {4, 8}, T in {2048, 4096, 8192}, H=16,
#      head dim 128, conv hidden 2048), Triton vs torch vs fla, table + JSON + PNG.
#
# Usage, from the repository root:  scripts/gpu_check.sh [OUT_DIR]
# Works without installing edgesmith or Hydra (a bare GPU image has torch, triton, pluggy,
# pytest, rich, matplotlib): the package is made importable through a symlinked namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-outputs/gpu_check}}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1

if ! "$PY" -c "import edgesmith.kernels" 2>/dev/null; then
  ns="$(mktemp -d)/ns"
  mkdir -p "$ns/edgesmith"
  for d in core plugins kernels search conf; do ln -s "$PWD/$d" "$ns/edgesmith/$d"; done
  export PYTHONPATH="$ns${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PY" - <<'PYEOF'
import torch, triton
assert torch.cuda.is_available(), "scripts/gpu_check.sh needs a CUDA GPU"
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| triton", triton.__version__)
PYEOF

echo "== correctness on CUDA"
# Most of this step is Triton compiling each kernel variant: spread it over workers if pytest-xdist is there.
XDIST=""
if "$PY" -c "import xdist" 2>/dev/null; then XDIST="-n 8"; fi
env -u TRITON_INTERPRET timeout 200 "$PY" -m pytest tests/test_kernels_triton.py tests/test_kernels_operators.py \
  -q -x -p no:cacheprovider $XDIST --durations=5 2>&1 | tee "$OUT/correctness.log"

echo "== benchmark"
# Hydra may be absent here, so the benchmark's function runs with its default options.
env -u TRITON_INTERPRET timeout 270 "$PY" - "$OUT" <<'PYEOF' 2>&1 | tee "$OUT/benchmark.log"
import sys
from pathlib import Path

from edgesmith.plugins.benchmarks.kernels_speed import KernelSpeedOptions, run_benchmark

run_benchmark(KernelSpeedOptions(), Path(sys.argv[1]))
PYEOF
