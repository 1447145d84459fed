#!/usr/bin/env bash
# Creates .venv (if missing) and installs edgesmith with its test tools.
# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
# BFCL's data; its own pinned dependencies are huge and conflict, so no deps.
.venv/bin/python -m pip install --quiet --no-deps bfcl-eval==2026.3.23
.venv/bin/python -m pip install --quiet -e ".[test]"
echo "edgesmith installed in $(pwd)/.venv"
