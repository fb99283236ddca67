#!/usr/bin/env bash
# The GPU check of issues 9-13, run on a lent H200 (or H100) in the repository root with the
# bundle made here by tests/device/prepare.sh carried along. Two calls, sized for a 15-minute
# device budget (docs/perf/device/README.md gives the exact `run` commands):
#
#   call 1, CHECK_STAGES=core (the default; ~5 minutes):
#     tests   every CUDA test binary in two kernel configurations at once: "fast" (defaults:
#             cuDNN attention, vectorised kernels, BGRADB, gradient overwrite) and "legacy"
#             (RAE_ATTENTION=gemm RAE_CUDA_LEGACY=all RAE_GRAD_OVERWRITE=0); PASS/FAIL each
#     zero3   two ranks on one GPU through the MPI communicator (ZeRO-3 device logic) vs one rank
#     train   `rae train` (tiny) on the GPU vs the CPU in fp32/tf32/bf16; train.cuda_graph on vs
#             off; gradient overwrite on vs off
#     torch   PyTorch's DiT^DH-XL step (bf16 autocast and TF32, eager and torch.compile): compiled
#             in the background while the stages above run, timed afterwards on an idle GPU
#     bench   the real trainer's step (bench/step_bench_cuda: train::Trainer::step) of DiT^DH-XL
#             and -S in bf16 and tf32, with the per-op profile of one step (--profile)
#     graph   the -S and -XL bf16 steps with train.cuda_graph (CUDA graph replay)
#   call 2, CHECK_STAGES=extra (~4.5 minutes; stages in this order until the budget ends):
#     cache   ~20,000 ImageNet-like JPEGs (rae make-dataset, kept in /tmp for a rerun) through
#             `rae cache --benchmark`: decode-bound and encoder-bound images/s, end to end with
#             GPU-busy fraction (issue 10's cache job target)
#     encoder DINOv2-B forward at batch 256, fp32/tf32/bf16, vs transformers eager and compiled
#     legacy  the XL bf16 step in the legacy configuration (before/after of the kernel work)
#     torch_s PyTorch's DiT^DH-S step, bf16 and TF32, eager and compiled
#     inception  FID Inception features (ours, 50k images) vs torch-fidelity
#     eval    the whole `rae eval` of 50k samples (tests/device/eval_check.sh)
#     sample  `rae sample` + decoder vs the release's PyTorch path (tests/device/sample_check.sh)
#     stage1  the stage-1 decoder training check (tests/device/stage1_check.sh, when present;
#             called as `stage1_check.sh BIN_DIR WORK_DIR OUT_DIR PYTHON`, it writes its report
#             as OUT_DIR/<name>.json, which lands in results.json under "sub")
# Any comma list of stage names works too (CHECK_STAGES=tests,bench).
#
# Each stage runs under its own timeout and within CHECK_BUDGET_S (default 330 s for the whole
# script); a failure is recorded and the next stage runs. $OUT gets three files, written after
# every stage (partial results survive a crash): results.json (everything), result.md (the
# docs/perf/device/<date>-<card>.md skeleton: tables filled, analysis left to write) and
# check.log; the summary table is printed last.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/rae_check_out}
mkdir -p "$OUT"
LOG="$OUT/check.log"
: > "$LOG"
WORK=/tmp/rae_check
DATA=${CHECK_DATA_DIR:-/tmp/rae_check_data}  # survives between calls on a warm machine
rm -rf "$WORK"
mkdir -p "$WORK/res" "$WORK/logs" "$WORK/sub" "$DATA"
BUDGET=${CHECK_BUDGET_S:-330}
T0=$(date +%s)
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
STAGES=${CHECK_STAGES:-core}
STAGES=${STAGES//core/tests,zero3,train,torch,bench,graph}
STAGES=${STAGES//extra/cache,encoder,legacy,torch_s,inception,eval,sample,stage1}
export CHECK_STAGES_RUN=$STAGES
want() { case ",$STAGES," in *",$1,"*) return 0 ;; esac; return 1; }

log() { echo "[check $(($(date +%s) - T0))s] $*" | tee -a "$LOG"; }
left() { echo $((BUDGET - ($(date +%s) - T0))); }
# run_stage NAME LIMIT_S CMD...: runs under min(LIMIT_S, time left); output to
# $WORK/logs/NAME.log, then appended to check.log; exit status in $WORK/res/NAME.rc (124: timed
# out, "skipped": no time left).
run_stage() {
  local name=$1 limit=$2
  shift 2
  local l
  l=$(left)
  [ "$l" -lt "$limit" ] && limit=$l
  if [ "$limit" -le 5 ]; then
    log "$name: skipped (no time left)"
    echo skipped > "$WORK/res/$name.rc"
    return 0
  fi
  log "$name: start (limit ${limit}s): $*"
  local t=$(date +%s)
  timeout -k 10 "$limit" "$@" > "$WORK/logs/$name.log" 2>&1
  local rc=$?
  echo "$rc" > "$WORK/res/$name.rc"
  echo "$(($(date +%s) - t))" > "$WORK/res/$name.seconds"
  { echo "----- $name (exit $rc) -----"; cat "$WORK/logs/$name.log"; } >> "$LOG"
  log "$name: exit $rc ($(cat "$WORK/res/$name.seconds") s)"
  return 0
}

write_results() {
  "$PY" "$ROOT/tests/device/check_results.py" "$WORK" "$OUT" "$ROOT" >> "$WORK/logs/results.log" 2>&1 ||
    log "results: check_results.py failed (see the end of this log)"
}
finish() {
  write_results
  tail -n 20 "$WORK/logs/results.log" >> "$LOG" 2>/dev/null
  echo
  cat "$WORK/summary.txt" 2>/dev/null
}
trap finish EXIT

# ---- bundle, libraries, GPU ---------------------------------------------------------------------
BUNDLE="$ROOT/.devbundle/bundle.tar.xz"
BD="$WORK/bundle"
mkdir -p "$BD"
if [ -f "$BUNDLE" ]; then
  run_stage unpack 60 tar -C "$BD" -xJf "$BUNDLE"
  if [ ! -d "$BD/bin" ]; then  # no xz in tar: unpack with Python
    run_stage unpack_py 60 "$PY" -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$BUNDLE" "$BD"
  fi
  cp "$ROOT/.devbundle/commit.txt" "$ROOT/.devbundle/tree_state.txt" "$WORK/" 2>/dev/null
else
  log "no bundle at $BUNDLE: run tests/device/prepare.sh on the build machine and carry .devbundle"
fi
# CUDA libraries the bundle leaves out: the toolkit's, then the pip nvidia-* packages'.
libdirs="$BD/lib"
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/lib; do
  [ -d "$d" ] && libdirs="$libdirs:$d"
done
pipdirs=$("$PY" - <<'PYEOF' 2>/dev/null
import glob, os, site, sys
roots = set(site.getsitepackages() + [site.getusersitepackages()] + [p for p in sys.path if p.endswith("-packages")])
dirs = set()
for r in roots:
    for pat in ("nvidia/*/lib", "nvidia/cu13/lib", "nvidia/*/lib64"):
        for d in glob.glob(os.path.join(r, pat)):
            if glob.glob(os.path.join(d, "*.so*")):
                dirs.add(d)
print(":".join(sorted(dirs)))
PYEOF
)
[ -n "$pipdirs" ] && libdirs="$libdirs:$pipdirs"
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
# OpenMPI's launcher from the bundle (the device image has none), relocated by OPAL_PREFIX.
MPIRUN=""
if [ -x "$BD/mpi/bin/orterun" ]; then
  export OPAL_PREFIX="$BD/mpi" PATH="$BD/mpi/bin:$PATH"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
  # plm isolated: one node, no ssh needed (the device image may have none)
  export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_pml=ob1 OMPI_MCA_plm=isolated
  MPIRUN="$BD/mpi/bin/orterun --oversubscribe --bind-to none"
elif command -v mpirun > /dev/null; then
  MPIRUN="mpirun --oversubscribe --bind-to none"
fi
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 > "$WORK/card.txt"
# cuDNN for the fused attention (loaded at run time by the binaries): where the loader finds it.
cudnn_path=""
for d in ${LD_LIBRARY_PATH//:/ }; do
  [ -e "$d/libcudnn.so.9" ] && { cudnn_path="$d/libcudnn.so.9"; break; }
done
[ -z "$cudnn_path" ] && cudnn_path=$(ldconfig -p 2>/dev/null | awk '/libcudnn\.so\.9 /{print $NF; exit}')
echo "${cudnn_path:-not found (the fused attention falls back to the GEMM path; see test CudaOpsCudnn)}" > "$WORK/cudnn.txt"
log "cuDNN: $(cat "$WORK/cudnn.txt")"
export RAE_CUDNN_VERBOSE=1  # a shape cuDNN cannot run is logged (then the GEMM path runs)
run_stage nvidia_smi 20 nvidia-smi
for b in "$BD"/bin/*; do
  [ -x "$b" ] || continue
  missing=$(ldd "$b" 2>&1 | grep "not found")
  [ -n "$missing" ] && log "$(basename "$b") has unresolved libraries: $missing"
done
# The binaries were built in another tree: point goldens and scratch at this one.
export RAE_SOURCE_DIR="$ROOT" RAE_TEST_TMP="$WORK/test-tmp"
BIN="$BD/bin"
LEGACY_ENV=(RAE_ATTENTION=gemm RAE_CUDA_LEGACY=all RAE_GRAD_OVERWRITE=0)
FAST_ENV=(RAE_ATTENTION=auto RAE_CUDA_LEGACY= RAE_GRAD_OVERWRITE=1)

# ---- torch (background): PyTorch's XL step compiled while the correctness stages run ----------
TORCH_PID=""
if want torch; then
  log "torch: compiling DiT^DH-XL (bf16, tf32; eager and torch.compile) in the background"
  timeout -k 10 "${TORCH_LIMIT_S:-$((BUDGET - 20))}" "$PY" "$ROOT/tests/device/torch_step_bench.py" \
    --configs XL:bf16:compile,XL:tf32:compile,XL:bf16:eager,XL:tf32:eager \
    --batches-xl "${TORCH_BATCHES_XL:-256,128}" --steps 5 --warmup 2 \
    --ready-file "$WORK/torch.ready" --go-file "$WORK/torch.go" --go-timeout "$BUDGET" \
    > "$WORK/torch.out" 2> "$WORK/logs/torch.log" &
  TORCH_PID=$!  # timeout's: a TERM to it reaches python
fi

# ---- tests: every CUDA test binary, fast and legacy configurations side by side ---------------
# run_cuda_tests CONFIG VAR=VALUE...: results gtest_<binary>@CONFIG.json, stages <binary>@CONFIG.
run_cuda_tests() {
  local cfg=$1
  shift
  for t in "$BIN"/test_*; do
    [ -x "$t" ] || continue
    local n filter
    n=$(basename "$t")
    filter='*Cuda*:*CUDA*:*cuda*:*Gpu*:*GPU*'
    [ "$n" = test_ops_cuda ] && filter='*'
    run_stage "$n@$cfg" 90 env "$@" RAE_TEST_TMP="$WORK/test-tmp-$cfg" "$t" --gtest_filter="$filter" \
      --gtest_output="json:$WORK/gtest_$n@$cfg.json" --gtest_brief=1
  done
}
if want tests; then
  run_cuda_tests fast "${FAST_ENV[@]}" &
  pid_fast=$!
  run_cuda_tests legacy "${LEGACY_ENV[@]}" &
  wait $pid_fast $!
  write_results
fi

# ---- zero3: ZeRO-3 with two ranks on one GPU through the MPI communicator ---------------------
if want zero3; then
  if [ -x "$BIN/rae" ] && [ -n "$MPIRUN" ]; then
    Z="$WORK/zero3"
    mkdir -p "$Z"
    [ -x "$BIN/test_sharded_params" ] &&
      run_stage test_sharded_params@zero3 90 $MPIRUN -np 2 "$BIN/test_sharded_params" --gtest_filter='*Cuda*' \
        --gtest_output="json:$WORK/gtest_test_sharded_params@zero3.json" --gtest_brief=1
    ZT=("$BIN/rae" train --config "$ROOT/jobs/tiny.cfg" --cache synthetic:256x8x32x10 --steps 20
        --train.device=cuda --train.precision=fp32 --log.progress=false)
    run_stage zero3_np1 60 "${ZT[@]}" --run-dir "$Z/np1"
    run_stage zero3_np2 90 $MPIRUN -np 2 "${ZT[@]}" --shard full_shard --dist.backend=mpi \
      --dist.bucket_mb=0.05 --run-dir "$Z/np2"
  else
    log "zero3: skipped (no rae binary or no MPI launcher in the bundle)"
  fi
  write_results
fi

# ---- train: rae train on the GPU against the CPU; CUDA graph and gradient overwrite on/off ----
if want train && [ -x "$BIN/rae" ]; then
  TR="$WORK/train"
  mkdir -p "$TR"
  run_stage train_synth 30 "$BIN/rae" synth-cache --out "$TR/cache" --samples 512 --grid 8 --channels 32 --classes 10
  TT=("$BIN/rae" train --config "$ROOT/jobs/tiny.cfg" --cache "$TR/cache" --steps 20 --log.progress=false)
  run_stage train_cpu 60 "${TT[@]}" --run-dir "$TR/cpu"
  for p in fp32 tf32 bf16; do
    run_stage "train_cuda_$p" 45 "${TT[@]}" --run-dir "$TR/cuda_$p" --train.device=cuda --train.precision=$p
  done
  for p in fp32 bf16; do  # the step replayed as a CUDA graph after the first one
    run_stage "train_cuda_${p}_graph" 45 "${TT[@]}" --run-dir "$TR/cuda_${p}_graph" --train.device=cuda \
      --train.precision=$p --train.cuda_graph=true
  done
  run_stage train_cuda_fp32_zerofill 45 env RAE_GRAD_OVERWRITE=0 "${TT[@]}" --run-dir "$TR/cuda_fp32_zerofill" \
    --train.device=cuda --train.precision=fp32
  write_results
fi

# ---- torch: time the compiled and eager PyTorch steps now that the GPU is idle ------------------
# Our own step stages keep TORCH_RESERVE_S (default 190 s) of the budget: PyTorch waits for its
# compilation only until then (a late compile leaves the torch rows empty; rerun stage "torch"
# alone in another call).
RESERVE=${TORCH_RESERVE_S:-190}
want bench || want graph || RESERVE=30
if [ -n "$TORCH_PID" ]; then
  log "torch: waiting for the compilation to finish"
  while [ ! -f "$WORK/torch.ready" ] && kill -0 "$TORCH_PID" 2> /dev/null && [ "$(left)" -gt "$RESERVE" ]; do sleep 1; done
  if [ -f "$WORK/torch.ready" ]; then
    log "torch: compiled; timing"
    touch "$WORK/torch.go"
    while kill -0 "$TORCH_PID" 2> /dev/null && [ "$(left)" -gt $((RESERVE - 50)) ]; do sleep 1; done
  else
    log "torch: not compiled with $(left) s left: stopped (no PyTorch rows this call)"
  fi
  kill "$TORCH_PID" 2> /dev/null  # still running (no time left): timeout passes TERM on
  wait "$TORCH_PID"
  echo $? > "$WORK/res/torch.rc"
  { echo "----- torch (background) -----"; cat "$WORK/logs/torch.log" "$WORK/torch.out"; } >> "$LOG" 2>/dev/null
  log "torch: done ($(grep -c '"ok": true' "$WORK/torch.out" 2>/dev/null) configurations timed)"
  write_results
fi

# ---- bench: the real trainer's step, bf16 (with the per-op profile) then tf32 -------------------
SB="$BIN/step_bench_cuda"
if want bench && [ -x "$SB" ]; then
  run_stage step_bench 100 bash -c "set -o pipefail; '$SB' --models XL,S --precision bf16 --steps 5 --warmup 2 --profile --peak-tflops 989 | tee '$WORK/step_bench.out'"
  write_results
  run_stage step_bench_tf32 90 bash -c "set -o pipefail; '$SB' --models XL,S --precision tf32 --suffix -tf32 --steps 3 --warmup 1 --peak-tflops 494 | tee -a '$WORK/step_bench.out'"
  write_results
fi
# ---- graph: the same bf16 steps replayed as CUDA graphs (train.cuda_graph) ----------------------
if want graph && [ -x "$SB" ]; then
  run_stage step_bench_graph 60 bash -c "set -o pipefail; '$SB' --models S,XL --batches-xl 256,128 --precision bf16 --cuda-graph --suffix -graph --steps 5 --warmup 2 --peak-tflops 989 | tee -a '$WORK/step_bench.out'"
  write_results
fi

# ================================ call 2 ("extra") =============================================
# ---- cache: the cache job on the GPU over ~20,000 ImageNet-like JPEGs --------------------------
if want cache && [ -x "$BIN/rae" ]; then
  IMG="$DATA/jpegs"
  NCLS=${CACHE_CLASSES:-100} NPER=${CACHE_PER_CLASS:-200}
  if [ ! -f "$IMG/train/.rae-make-dataset" ] || ! grep -q "\"per_class\": $NPER," "$IMG/train/.rae-make-dataset"; then
    run_stage cache_make_dataset 90 "$BIN/rae" make-dataset --out "$IMG" --classes "$NCLS" --per-class "$NPER" \
      --size 400 --size-max 500 --jpeg-only --quality 90 --threads 0 --overwrite
  else
    log "cache: JPEG tree from an earlier call kept ($IMG)"
  fi
  du -sh "$IMG" >> "$LOG" 2>&1
  # (CACHE_DEVICE=cpu CACHE_ENCODER=tiny-random CACHE_CLASSES=4 CACHE_PER_CLASS=10: a dry run here)
  run_stage cache_bench 120 "$BIN/rae" cache --data "$IMG" --encoder "${CACHE_ENCODER:-random-dinov2-b}" --device "${CACHE_DEVICE:-cuda}" \
    --out "$WORK/cache_out" --batch "${CACHE_BATCH:-128}" --threads 0 --shard-size 2000 --benchmark "$WORK/cache_bench.json"
  write_results
fi

# ---- encoder: DINOv2-B forward, ours vs transformers (eager, then compiled) ------------------------
if want encoder; then
  EB=${ENCODER_BATCH:-256}
  [ -x "$BIN/encoder_bench_cuda" ] &&
    run_stage encoder 60 bash -c "set -o pipefail; '$BIN/encoder_bench_cuda' --batch $EB | tee '$WORK/encoder.out'"
  run_stage torch_encoder 60 bash -c "set -o pipefail; '$PY' '$ROOT/tests/device/torch_encoder_bench.py' --batch $EB | tee '$WORK/torch_encoder.out'"
  run_stage torch_encoder_compile 90 bash -c "set -o pipefail; '$PY' '$ROOT/tests/device/torch_encoder_bench.py' --batch $EB --compile --precisions tf32,bf16 | tee '$WORK/torch_encoder_compile.out'"
  write_results
fi

# ---- legacy: the XL bf16 step in the legacy configuration (the kernels' before/after) ----------
if want legacy && [ -x "$SB" ]; then
  run_stage step_bench_legacy 60 bash -c "set -o pipefail; env ${LEGACY_ENV[*]} '$SB' --models XL --attention gemm --suffix -legacy --steps 3 --warmup 1 --peak-tflops 989 | tee -a '$WORK/step_bench.out'"
  write_results
fi

# ---- torch_s: PyTorch's DiT^DH-S step -------------------------------------------------------------
if want torch_s; then
  run_stage torch_s 100 bash -c "set -o pipefail; '$PY' '$ROOT/tests/device/torch_step_bench.py' --configs S:bf16:eager,S:tf32:eager,S:bf16:compile,S:tf32:compile --batches-s 256,128 --steps 5 --warmup 2 | tee -a '$WORK/torch.out'"
  write_results
fi

# ---- inception: FID Inception-v3 features, ours and torch-fidelity's ------------------------------
if want inception && [ -x "$BIN/inception_bench_cuda" ]; then
  run_stage inception 60 bash -c "set -o pipefail; '$BIN/inception_bench_cuda' --images ${INCEPTION_IMAGES:-50000} --batch ${INCEPTION_BATCH:-200} --precisions fp32,tf32 --search heuristic | tee '$WORK/inception.out'"
  run_stage torch_inception 60 bash -c "set -o pipefail; '$PY' '$ROOT/tests/device/torch_inception_bench.py' --images ${TORCH_INCEPTION_IMAGES:-10000} --batches 200 --fidelity-dir '$BD/py/torch_fidelity' | tee '$WORK/torch_inception.out'"
  write_results
fi

# ---- eval: the whole 50k-sample `rae eval` (FID, sFID, IS, precision/recall) ----------------------
if want eval && [ -x "$BIN/rae" ] && [ -f "$ROOT/tests/device/eval_check.sh" ]; then
  # The 50k + 10k image .npz files go to $DATA: a later call on the same machine reuses them.
  run_stage eval 110 env WORK="$DATA/eval" EVAL_BUDGET_S=100 EVAL_MIN_LEFT_S=30 EVAL_PRECISIONS="${EVAL_PRECISIONS:-tf32}" \
    bash "$ROOT/tests/device/eval_check.sh" "$BIN" "$WORK/sub"
  write_results
fi

# ---- sample: `rae sample` and the decoder vs the release's PyTorch path ---------------------------
if want sample && [ -x "$BIN/rae" ] && [ -f "$ROOT/tests/device/sample_check.sh" ]; then
  run_stage sample 120 env SAMPLE_STAGE_S=100 bash "$ROOT/tests/device/sample_check.sh" "$BIN/rae" "$WORK/sample" "$WORK/sub" "$PY"
  write_results
fi

# ---- stage1: stage-1 decoder training (when its check script exists) ------------------------------
if want stage1 && [ -f "$ROOT/tests/device/stage1_check.sh" ]; then
  run_stage stage1 120 bash "$ROOT/tests/device/stage1_check.sh" "$BIN" "$WORK/stage1" "$WORK/sub" "$PY"
  write_results
fi
log "done"
