#!/usr/bin/env bash
# The README's test command: installs what it needs, builds, and runs the whole suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The Python the tests use (numpy, scipy, tensorboard readers): a cached venv, see the script.
RAE_PYTHON=$(scripts/python-env.sh)
export CMAKE_ARGS="${CMAKE_ARGS:-} -DRAE_PYTHON=$RAE_PYTHON"
scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "${CTEST_JOBS:-2}" --timeout 900 "$@"
