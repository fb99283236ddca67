#!/usr/bin/env bash
# Installs (once) the CPU BLAS + LAPACK library and prints its prefix (the folder holding
# include/ and lib/). The library is OpenBLAS built with DYNAMIC_ARCH, which picks its kernels by
# the CPU's features at load time, as packaged on PyPI by the SciPy project (scipy-openblas32:
# 32-bit integers, pthreads, every exported symbol prefixed with `scipy_`, see
# src/ops/cpu/blas.h). Why this library: docs/perf/cpu-ops.md ("Which BLAS").
# It lives in ${RAE_BLAS_DIR:-$HOME/.cache/rae/scipy-openblas32-<version>}, shared by every clone
# on the machine; CMake (CMakeLists.txt) runs this script to find it, and scripts/install-deps.sh
# runs it so that a fresh machine gets it from the README's commands. Needs python3-venv (Debian).
set -euo pipefail
VERSION=0.3.34.481.3
DIR=${RAE_BLAS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rae/scipy-openblas32-$VERSION}
if [ ! -f "$DIR/.complete" ]; then
  echo "blas-env: installing scipy-openblas32==$VERSION into $DIR" >&2
  rm -rf "$DIR"
  mkdir -p "$DIR"
  python3 -m venv "$DIR/venv" >&2
  "$DIR/venv/bin/pip" install --quiet --disable-pip-version-check --target "$DIR/pkg" \
    "scipy-openblas32==$VERSION" >&2
  rm -rf "$DIR/venv"  # only the package's files are needed
  touch "$DIR/.complete"
fi
echo "$DIR/pkg/scipy_openblas32"
