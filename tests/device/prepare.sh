#!/usr/bin/env bash
# Run HERE (the build machine, x86-64, with the dev libraries) before the device check:
# builds build-device/ (Release, CUDA for sm_90) and packs .devbundle/ for tests/device/check.sh:
#   .devbundle/bundle.tar.xz  bin/ (CUDA test binaries, step_bench_cuda, rae), mpi/ (OpenMPI's
#                             launcher, components and help files, run relocated with
#                             OPAL_PREFIX: the 2-ranks-on-one-GPU check needs mpirun) and lib/
#                             (every non-system shared library they need, except the big CUDA
#                             ones the device image has: cuBLAS/cuBLASLt/NCCL and the driver;
#                             cuDNN is loaded at run time from the image's toolkit or PyTorch's
#                             nvidia-cudnn wheel, which check.sh puts on LD_LIBRARY_PATH)
#   .devbundle/commit.txt     the commit the binaries were built from
# The device lacks libhdf5/libtbb/boost/openmpi/openblas/gtest; the bundle carries them.
# Usage: bash tests/device/prepare.sh   (then run the device with carry [".devbundle"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
BUILD=${BUILD:-build-device}
JOBS=${JOBS:-2}
MAX_MB=${MAX_MB:-60}

mkdir -p "$BUILD"
scripts/install-deps.sh  # also the cuDNN frontend headers of the fused attention
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRAE_CUDA=ON -DRAE_CUDA_ARCHS=90 > "$BUILD/configure.log"
# Without the frontend the binaries still run, but the device check cannot test cuDNN attention.
grep -q "cuDNN attention ON" "$BUILD/configure.log" ||
  echo "prepare: WARNING: built without the cuDNN frontend (cuDNN attention OFF): see $BUILD/configure.log" >&2
# -k 0: build everything that can be built; a broken unrelated target must not stop the check.
if ! ninja -C "$BUILD" -j"$JOBS" -k 0; then
  echo "prepare: WARNING: some targets failed to build; bundling the binaries that exist" >&2
fi

STAGE=.devbundle/stage
rm -rf .devbundle
mkdir -p "$STAGE/bin" "$STAGE/lib"

# Binaries: the step benchmark and every test executable that has CUDA tests.
bins=()
[ -x "$BUILD/bench/step_bench_cuda" ] && bins+=("$BUILD/bench/step_bench_cuda")
[ -x "$BUILD/src/rae" ] && bins+=("$BUILD/src/rae")  # the CLI: training on the GPU
for b in "$BUILD"/bench/*encoder*cuda* "$BUILD"/bench/*dinov2* "$BUILD"/bench/*inception*; do  # optional benches
  [ -x "$b" ] && [ -f "$b" ] && bins+=("$b")
done
for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] && [ -f "$t" ] || continue
  # (capture first: grep -q closing the pipe early would fail the pipeline under pipefail)
  listing=$("$t" --gtest_list_tests 2>/dev/null || true)
  if echo "$listing" | grep -iE 'cuda|gpu' > /dev/null; then bins+=("$t"); fi
done
[ ${#bins[@]} -gt 0 ] || { echo "prepare: no binaries found in $BUILD" >&2; exit 1; }
for b in "${bins[@]}"; do
  cp "$b" "$STAGE/bin/"
  strip --strip-unneeded "$STAGE/bin/$(basename "$b")" 2>/dev/null || true
done
# OpenMPI's launcher (orterun, orted), its components and help files, at the same places
# relative to its prefix, so that OPAL_PREFIX=<bundle>/mpi relocates them (the device has no MPI).
deps=("${bins[@]}")
if command -v ompi_info > /dev/null && command -v orterun > /dev/null; then
  prefix=$(ompi_info --path prefix | awk '{print $2}')
  pkglib=$(ompi_info --path pkglibdir | awk '{print $2}')
  pkgdata=$(ompi_info --path pkgdatadir | awk '{print $2}')
  M="$STAGE/mpi"
  mkdir -p "$M/bin" "$M/$(dirname "${pkglib#"$prefix"/}")" "$M/$(dirname "${pkgdata#"$prefix"/}")"
  cp -L "$(command -v orterun)" "$(command -v orted)" "$M/bin/"
  cp -a "$pkglib" "$M/${pkglib#"$prefix"/}"
  cp -a "$pkgdata" "$M/${pkgdata#"$prefix"/}"
  deps+=("$M"/bin/orterun "$M"/bin/orted "$M/${pkglib#"$prefix"/}"/*.so)
else
  echo "prepare: WARNING: no OpenMPI launcher here; the device check's zero3 stage will skip" >&2
fi

# Shared libraries: everything ldd resolves, minus glibc/the loader (the device's are newer),
# the driver, and the large CUDA libraries the device's toolkit and pip packages provide.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libutil\.so|libresolv\.so|libcuda\.so|libnvidia-|libcublas\.so|libcublasLt\.so|libnccl\.so)'
for b in "${deps[@]}"; do
  ldd "$b" | awk '/=>/ {print $1, $3}' | while read -r name path; do
    if echo "$name" | grep -qE "$skip"; then continue; fi
    if [ "$path" = "not" ] || [ ! -f "$path" ]; then echo "prepare: $(basename "$b") needs $name: not found here" >&2; continue; fi
    [ -f "$STAGE/lib/$name" ] || cp -L "$path" "$STAGE/lib/$name"
  done
done
strip --strip-unneeded "$STAGE"/lib/*.so* 2>/dev/null || true

# torch-fidelity's package (pure Python) for tests/device/torch_inception_bench.py: the device
# image has torch but not torch-fidelity.
PYB=${PYTHON_FOR_BUNDLE:-.venv/bin/python}
tfdir=$("$PYB" -c "import os, torch_fidelity; print(os.path.dirname(torch_fidelity.__file__))" 2>/dev/null || true)
if [ -n "$tfdir" ] && [ -d "$tfdir" ]; then
  mkdir -p "$STAGE/py" && cp -r "$tfdir" "$STAGE/py/torch_fidelity" && rm -rf "$STAGE/py/torch_fidelity/__pycache__"
else
  echo "prepare: torch_fidelity not found with $PYB: the device check's torch Inception timing will fail" >&2
fi

git rev-parse HEAD > .devbundle/commit.txt 2>/dev/null || echo unknown > .devbundle/commit.txt
(git diff --quiet HEAD 2>/dev/null && echo clean || echo dirty) > .devbundle/tree_state.txt
# One solid xz stream with a dictionary larger than a binary: the test binaries share most of
# their code (the static rae libraries), so the second copy compresses to almost nothing (56 MB
# with xz -6 and 8 MiB blocks, 25 MB so). Single-threaded on purpose: threads cut the stream.
tar -C "$STAGE" -cf - bin lib $( [ -d "$STAGE/mpi" ] && echo mpi ) $( [ -d "$STAGE/py" ] && echo py ) |
  xz -9 -T1 --lzma2=preset=9,dict=192MiB > .devbundle/bundle.tar.xz
du -sh "$STAGE/bin" "$STAGE/lib" "$STAGE"/mpi "$STAGE"/py 2>/dev/null || true
ls -la "$STAGE/bin" "$STAGE/lib"
rm -rf "$STAGE"
size_mb=$(( $(stat -c %s .devbundle/bundle.tar.xz) / 1048576 ))
echo "prepare: .devbundle/bundle.tar.xz is ${size_mb} MB (${#bins[@]} binaries), commit $(cat .devbundle/commit.txt)"
if [ "$size_mb" -ge "$MAX_MB" ]; then
  echo "prepare: bundle over ${MAX_MB} MB: it will not travel (64 MiB limit with the tree)" >&2
  exit 1
fi
