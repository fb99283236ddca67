#!/usr/bin/env bash
# Installs the Debian packages the build and tests need (idempotent; quiet when all are present).
set -euo pipefail
PKGS=(build-essential cmake ninja-build ccache pkg-config git
      libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools libtbb-dev libboost-program-options-dev
      nlohmann-json3-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev libgtest-dev libgmock-dev
      libbenchmark-dev python3 python3-venv clang libclang-rt-dev
      xxhash  # xxhsum: the fault suite checks our XXH64 checksums against the reference tool
      munge slurmctld slurmd slurm-client)  # a local Slurm for the tests (cluster/local)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# CPU BLAS + LAPACK (OpenBLAS with CPU-feature dispatch) from PyPI into a cached prefix.
"$(dirname "$0")/blas-env.sh" >/dev/null

# The cuDNN frontend (header-only C++ graph API for cuDNN's fused attention, used by
# src/ops/cuda/attention_cudnn.cpp), from its PyPI wheel into a cache CMake searches:
# ${RAE_DEPS_DIR:-~/.cache/rae/deps}/cudnn-frontend-<version>/include. Only with nvcc (CUDA
# builds); cuDNN itself comes with the CUDA toolkit and is loaded at run time. A failed download
# leaves the build without the cuDNN attention path (the GEMM path runs), not broken.
CUDNN_FE_VERSION=1.32.0
if command -v nvcc > /dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  fe_dir=${RAE_DEPS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rae/deps}/cudnn-frontend-$CUDNN_FE_VERSION
  if [ ! -f "$fe_dir/include/cudnn_frontend.h" ]; then
    echo "install-deps: cuDNN frontend $CUDNN_FE_VERSION (PyPI nvidia-cudnn-frontend) -> $fe_dir"
    fe_tmp=$(mktemp -d)
    fe_py=python3  # a Python with pip: the system one, else the tests' venv
    python3 -m pip --version > /dev/null 2>&1 || fe_py=$("$(dirname "$0")/python-env.sh")
    # The headers are the same in every wheel of a version: ask for one fixed platform/ABI.
    if "$fe_py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version 3.11 --platform manylinux_2_28_x86_64 --dest "$fe_tmp" \
        "nvidia-cudnn-frontend==$CUDNN_FE_VERSION" &&
      python3 - "$fe_tmp" "$fe_dir" <<'PYEOF'
import glob, os, sys, zipfile
tmp, dest = sys.argv[1:3]
whl = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.startswith("include/") and not n.endswith("/")]
    for n in names:
        z.extract(n, dest + ".part")
    if not any(n == "include/cudnn_frontend.h" for n in names):
        sys.exit("no include/cudnn_frontend.h in " + whl)
os.replace(dest + ".part", dest) if not os.path.exists(dest) else None
PYEOF
    then
      echo "install-deps: cuDNN frontend in $fe_dir"
    else
      echo "install-deps: WARNING: could not install the cuDNN frontend; CUDA attention will use its GEMM path" >&2
    fi
    rm -rf "$fe_tmp" "$fe_dir.part"
  fi
fi
