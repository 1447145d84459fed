#!/usr/bin/env bash
# Creates .venv (if missing) and installs edgesmith with its test tools.
# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# The `python` environment's sandbox confines model-written code with bubblewrap and refuses
# to run without it; install it where we can (root with apt-get), else say what is missing.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq bubblewrap
  else
    echo "warning: bubblewrap ('bwrap') is missing: the python sandbox will refuse to run code until it is" \
         "installed (as root: apt-get install bubblewrap)" >&2
  fi
fi
# The device-farm tests start a throwaway PostgreSQL server from Debian's binaries (and skip,
# saying so, where there are none; .ci/run installs them and requires them).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  else
    echo "warning: PostgreSQL's server binaries (initdb, pg_ctl) are missing: the device-farm tests will skip" \
         "(as root: apt-get install postgresql)" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
# BFCL's data; its own pinned dependencies are huge and conflict, so no deps.
.venv/bin/python -m pip install --quiet --no-deps bfcl-eval==2026.3.23
# llama.cpp (GGUF export and quantization, the llama_cpp profiler) through llama-cpp-python,
# built from its source distribution for this CPU. Only what edgesmith calls is built: the
# libllama/libggml CPU libraries (no multimodal library, tools, tests, examples or server).
# pip keeps the built wheel in its cache and skips an installed pinned version, so re-running
# this script or recreating .venv on the same machine does not compile it again.
CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DGGML_BLAS=OFF}" \
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  .venv/bin/python -m pip install --quiet llama-cpp-python==0.3.36 gguf==0.19.0
.venv/bin/python -m pip install --quiet -e ".[test]"
echo "edgesmith installed in $(pwd)/.venv"
