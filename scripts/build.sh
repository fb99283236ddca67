#!/usr/bin/env bash
# Configures and builds (Release) into build/. CUDA is compiled whenever nvcc is found.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
# ccache hits across clones (CI builds a fresh clone in another folder).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
# The Python the tests use (numpy, scipy, tensorboard readers): a cached venv, see the script.
RAE_PYTHON=${RAE_PYTHON:-$(scripts/python-env.sh)}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRAE_PYTHON="$RAE_PYTHON" ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$JOBS"
