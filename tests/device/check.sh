#!/usr/bin/env bash
# The one-shot GPU check, run on a fresh H100/H200 machine in the repository root, with the
# bundle made here by tests/device/prepare.sh carried along (carry [".devbundle"]):
#   bash tests/device/check.sh
# Stages (each under its own timeout; a failure is recorded and the next stage runs), the ones
# that matter most first:
#   1 unpack the bundle (with OpenMPI's launcher, relocated by OPAL_PREFIX), find the CUDA
#     libraries of the image, nvidia-smi
#   2 every CUDA test binary (gtest, CUDA tests only)
#   3 bench/step_bench_cuda: the real trainer's step (train::Trainer::step) of DiT^DH-XL and -S,
#     bf16 then tf32 (largest batch that fits)
#   3b zero3: two ranks on one GPU through the MPI communicator (CUDA tensors staged through the
#     host; NCCL refuses two ranks on one GPU): test_sharded_params under mpirun -np 2, and
#     `rae train` full_shard on 2 ranks vs 1 rank, both on the GPU in fp32 (losses within 1e-6)
#   3c rae train (tiny preset) on the GPU in fp32/tf32/bf16 against the same run on the CPU
#   4 tests/device/torch_step_bench.py at the same batches (eager; then torch.compile if time
#     remains)
#   4b our XL step again with the fused flash attention kernel (DiTDH-XL-flash), time allowing
#   5 the DINOv2-B encoder benchmark when the bundle has one
#   6 FID Inception-v3 features: bench/inception_bench_cuda (50k 256x256 images, fp32 and tf32)
#     beside tests/device/torch_inception_bench.py (torch-fidelity, bundled package)
#   7 sample: `rae sample` / `rae decode` vs the release's PyTorch sampling path
#     (tests/device/sample_check.sh; not in the default list: CHECK_STAGES=...,sample)
# Always writes $OUT/results.json, $OUT/table.txt and $OUT/check.log (partial on failures).
# The whole run stays under CHECK_BUDGET_S seconds (default 540).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/rae_check_out}
mkdir -p "$OUT"
LOG="$OUT/check.log"
: > "$LOG"
WORK=/tmp/rae_check
rm -rf "$WORK"
mkdir -p "$WORK/res"
BUDGET=${CHECK_BUDGET_S:-540}
T0=$(date +%s)
PY=${PYTHON:-python3}
# CHECK_STAGES: comma list of tests,bench,zero3,train,torch,encoder,inception (default: all).
STAGES=${CHECK_STAGES:-tests,bench,zero3,train,torch,encoder,inception}
want() { case ",$STAGES," in *",$1,"*) return 0 ;; esac; return 1; }

log() { echo "[check $(($(date +%s) - T0))s] $*" | tee -a "$LOG"; }
left() { echo $((BUDGET - ($(date +%s) - T0))); }
# run_stage NAME LIMIT_S CMD...: runs under min(LIMIT_S, time left), output appended to the log;
# records NAME's exit status in $WORK/res/NAME.rc (124 = timed out).
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
  timeout -k 10 "$limit" "$@" >> "$LOG" 2>&1
  local rc=$?
  echo "$rc" > "$WORK/res/$name.rc"
  log "$name: exit $rc"
  return 0
}

write_results() {
  "$PY" - "$WORK" "$OUT" "$ROOT" <<'PYEOF' >> "$LOG" 2>&1 || log "results: python failed"
import datetime, glob, json, os, sys
work, out, root = sys.argv[1:4]
def read(p, default=None):
    try:
        with open(p) as f:
            return f.read().strip()
    except OSError:
        return default
def jlines(p):
    rows = []
    for line in (read(p, "") or "").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows
res = {
    "card": read(os.path.join(work, "card.txt"), "unknown"),
    "commit": read(os.path.join(root, ".devbundle", "commit.txt"), "unknown"),
    "tree": read(os.path.join(root, ".devbundle", "tree_state.txt"), "unknown"),
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "stages": {os.path.basename(p)[:-3]: read(p) for p in sorted(glob.glob(os.path.join(work, "res", "*.rc")))},
    "tests": {}, "benchmarks": {},
}
for p in sorted(glob.glob(os.path.join(work, "gtest_*.json"))):
    try:
        g = json.load(open(p))
    except Exception as e:
        res["tests"][os.path.basename(p)] = {"error": str(e)}
        continue
    failed = [f"{s['name']}.{t['name']}" for s in g.get("testsuites", []) for t in s.get("testsuite", [])
              if t.get("failures")]
    res["tests"][os.path.basename(p)[len("gtest_"):-len(".json")]] = {
        "tests": g.get("tests"), "failures": g.get("failures"), "disabled": g.get("disabled"),
        "errors": g.get("errors"), "failed": failed,
        "skipped": sum(1 for s in g.get("testsuites", []) for t in s.get("testsuite", [])
                       if t.get("result") == "SKIPPED")}
ours = {r.get("name"): r for r in jlines(os.path.join(work, "step_bench.out"))}
torch_eager = {r.get("name"): r for r in jlines(os.path.join(work, "torch_eager.out"))}
torch_comp = {r.get("name"): r for r in jlines(os.path.join(work, "torch_compile.out"))}
for name in sorted(n for n in set(ours) | set(torch_eager) | set(torch_comp) if n):
    o, te, tc = ours.get(name, {}), torch_eager.get(name, {}), torch_comp.get(name, {})
    b = {k: o.get(k) for k in ("batch", "precision", "images_per_s", "tflops", "mfu", "peak_mem_gb",
                               "ms_per_step", "gflop_per_image", "params", "loss", "ok", "error") if k in o}
    b["torch_images_per_s"] = te.get("images_per_s") if te.get("ok") else None
    b["torch_batch"] = te.get("batch")
    b["torch_peak_mem_gb"] = te.get("peak_mem_gb")
    if tc:
        b["torch_compile_images_per_s"] = tc.get("images_per_s") if tc.get("ok") else None
    res["benchmarks"][name] = b
torch_enc = {r.get("name"): r for r in jlines(os.path.join(work, "torch_encoder.out"))}
for r in jlines(os.path.join(work, "encoder.out")):
    name = r.get("name") or "encoder"
    b = {k: r.get(k) for k in ("batch", "images_per_s", "peak_mem_gb", "ms_per_forward", "ok", "error") if k in r}
    t = torch_enc.get(name, {})
    b["torch_images_per_s"] = t.get("images_per_s") if t.get("ok") else None
    b["torch_peak_mem_gb"] = t.get("peak_mem_gb")
    res["benchmarks"][name] = b
z = {}
for line in (read(os.path.join(work, "zero3.txt"), "") or "").splitlines():
    k, _, v = line.partition("=")
    if k:
        z[k.strip()] = v.strip()
res["zero3"] = z
# FID Inception (stage 6): ours per configuration, torch-fidelity's best batch at the same math.
torch_inc = {}
for r in jlines(os.path.join(work, "torch_inception.out")):
    if r.get("ok"):
        k = r.get("name")
        if k not in torch_inc or r["images_per_s"] > torch_inc[k]["images_per_s"]:
            torch_inc[k] = r
for r in jlines(os.path.join(work, "inception.out")):
    name = r.get("name") or "inception"
    b = {k: r.get(k) for k in ("batch", "images", "images_per_s", "seconds", "warmup_s", "peak_mem_gb", "ok", "error") if k in r}
    t = torch_inc.get("inception-torch-" + ("fp32" if "fp32" in name else "tf32"), {})
    b["torch_images_per_s"] = t.get("images_per_s")
    b["torch_batch"] = t.get("batch")
    b["torch_peak_mem_gb"] = t.get("peak_mem_gb")
    res["benchmarks"][name] = b
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=2)
def f(x, fmt):
    return "-" if x is None else fmt.format(x)
lines = [f"card {res['card']}  commit {res['commit']} ({res['tree']})  {res['date']}", "",
         f"{'benchmark':<14}{'batch':>6}{'img/s':>10}{'TFLOP/s':>9}{'MFU':>7}{'peak GB':>9}{'torch img/s':>13}{'compiled':>10}"]
for name, b in res["benchmarks"].items():
    lines.append(f"{name:<14}{f(b.get('batch'), '{}'):>6}{f(b.get('images_per_s'), '{:.1f}'):>10}"
                 f"{f(b.get('tflops'), '{:.1f}'):>9}{f(b.get('mfu'), '{:.3f}'):>7}{f(b.get('peak_mem_gb'), '{:.1f}'):>9}"
                 f"{f(b.get('torch_images_per_s'), '{:.1f}'):>13}{f(b.get('torch_compile_images_per_s'), '{:.1f}'):>10}")
lines += ["", "tests:"]
for n, t in res["tests"].items():
    lines.append(f"  {n}: {t.get('tests')} tests, {t.get('failures')} failed, {t.get('skipped')} skipped {t.get('failed', '')}")
lines += ["", "zero3 (2 ranks on one GPU over MPI vs 1 rank, fp32): " + " ".join(f"{k}={v}" for k, v in z.items())]
lines += ["", "stages: " + " ".join(f"{k}={v}" for k, v in res["stages"].items())]
open(os.path.join(out, "table.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PYEOF
}
trap 'write_results; echo; cat "$OUT/table.txt" 2>/dev/null' EXIT

# ---- 1: bundle, libraries, GPU -----------------------------------------------------------------
BUNDLE="$ROOT/.devbundle/bundle.tar.xz"
BD="$WORK/bundle"
mkdir -p "$BD"
if [ -f "$BUNDLE" ]; then
  run_stage unpack 60 tar -C "$BD" -xJf "$BUNDLE"
  if [ ! -d "$BD/bin" ]; then  # no xz in tar: unpack with Python
    run_stage unpack_py 60 "$PY" -c "import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$BUNDLE" "$BD"
  fi
else
  log "no bundle at $BUNDLE: run tests/device/prepare.sh on the build machine and carry .devbundle"
fi
# CUDA libraries the bundle leaves out: the toolkit's, then the pip nvidia-* packages'.
libdirs="$BD/lib"
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13*/lib64; do
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
log "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 > "$WORK/card.txt"
run_stage nvidia_smi 30 nvidia-smi
for b in "$BD"/bin/*; do
  [ -x "$b" ] || continue
  missing=$(ldd "$b" 2>&1 | grep "not found")
  [ -n "$missing" ] && log "$(basename "$b") has unresolved libraries: $missing"
done

# ---- 2: CUDA tests --------------------------------------------------------------------------
# The binaries were built in another tree: point goldens and scratch at this one.
export RAE_SOURCE_DIR="$ROOT" RAE_TEST_TMP="$WORK/test-tmp"
for t in "$BD"/bin/test_*; do
  want tests || break
  [ -x "$t" ] || continue
  n=$(basename "$t")
  filter='*Cuda*:*CUDA*:*cuda*:*Gpu*:*GPU*'
  [ "$n" = test_ops_cuda ] && filter='*'
  run_stage "$n" 60 "$t" --gtest_filter="$filter" --gtest_output="json:$WORK/gtest_$n.json" --gtest_brief=1
done
write_results > /dev/null 2>&1  # partial results, in case a later stage takes the machine down

# ---- 3: the real trainer's step (train::Trainer::step), bf16 then tf32 --------------------------
if want bench && [ -x "$BD/bin/step_bench_cuda" ]; then
  run_stage step_bench 200 bash -c "set -o pipefail; '$BD/bin/step_bench_cuda' --models XL,S --precision bf16 --steps 5 --warmup 2 --peak-tflops 989 | tee '$WORK/step_bench.out'"
  run_stage step_bench_tf32 150 bash -c "set -o pipefail; '$BD/bin/step_bench_cuda' --models XL,S --precision tf32 --suffix -tf32 --steps 3 --warmup 1 --peak-tflops 494 | tee -a '$WORK/step_bench.out'"
fi
write_results > /dev/null 2>&1

# ---- 3b: ZeRO-3 with two ranks on one GPU through the MPI communicator --------------------------
if want zero3 && [ -x "$BD/bin/rae" ] && [ -n "$MPIRUN" ]; then
  Z="$WORK/zero3"
  mkdir -p "$Z"
  if [ -x "$BD/bin/test_sharded_params" ]; then
    run_stage zero3_core 90 $MPIRUN -np 2 "$BD/bin/test_sharded_params" --gtest_filter='*Cuda*' --gtest_output="json:$WORK/gtest_test_sharded_params_np2.json" --gtest_brief=1
  fi
  ZT=("$BD/bin/rae" train --config "$ROOT/jobs/tiny.cfg" --cache synthetic:256x8x32x10 --steps 20 --train.device=cuda --train.precision=fp32 --log.progress=false)
  run_stage zero3_np1 60 "${ZT[@]}" --run-dir "$Z/np1"
  run_stage zero3_np2 90 $MPIRUN -np 2 "${ZT[@]}" --shard full_shard --dist.backend=mpi --dist.bucket_mb=0.05 --run-dir "$Z/np2"
  "$PY" - "$Z" > "$WORK/zero3.txt" 2>> "$LOG" <<'PYEOF'
import json, sys
z = sys.argv[1]
def losses(d):
    try:
        return [json.loads(l)["loss"] for l in open(f"{z}/{d}/metrics.jsonl")]
    except OSError:
        return []
a, b = losses("np1"), losses("np2")
d = max((abs(x - y) / abs(x) for x, y in zip(a, b)), default=None)
print(f"steps_np1={len(a)}")
print(f"steps_np2={len(b)}")
print(f"max_rel_diff={d}")
print(f"pass={bool(a) and len(a) == len(b) == 20 and d is not None and d <= 1e-6}")
PYEOF
  cat "$WORK/zero3.txt" >> "$LOG"
else
  log "zero3: skipped (no rae binary or no MPI launcher in the bundle)"
fi
write_results > /dev/null 2>&1

# ---- 3c: rae train on the GPU (tiny preset), against the same run on the CPU ------------------
if want train && [ -x "$BD/bin/rae" ]; then
  TR="$WORK/train"
  mkdir -p "$TR"
  run_stage train_synth 30 "$BD/bin/rae" synth-cache --out "$TR/cache" --samples 512 --grid 8 --channels 32 --classes 10
  run_stage train_cuda 60 "$BD/bin/rae" train --config "$ROOT/jobs/tiny.cfg" --cache "$TR/cache" --run-dir "$TR/cuda" --steps 20 --train.device=cuda --log.progress=false
  run_stage train_cpu 60 "$BD/bin/rae" train --config "$ROOT/jobs/tiny.cfg" --cache "$TR/cache" --run-dir "$TR/cpu" --steps 20 --log.progress=false
  # Mixed precision (train.precision): tf32 GEMMs, then bf16 activations with F32 master weights.
  run_stage train_cuda_tf32 60 "$BD/bin/rae" train --config "$ROOT/jobs/tiny.cfg" --cache "$TR/cache" --run-dir "$TR/cuda_tf32" --steps 20 --train.device=cuda --train.precision=tf32 --log.progress=false
  run_stage train_cuda_bf16 60 "$BD/bin/rae" train --config "$ROOT/jobs/tiny.cfg" --cache "$TR/cache" --run-dir "$TR/cuda_bf16" --steps 20 --train.device=cuda --train.precision=bf16 --log.progress=false
  "$PY" - "$TR" <<'PYEOF' >> "$LOG" 2>&1
import json, sys
tr = sys.argv[1]
def losses(d):
    try:
        return [json.loads(l)["loss"] for l in open(f"{tr}/{d}/metrics.jsonl")]
    except OSError:
        return []
c, g = losses("cpu"), losses("cuda")
print("train losses cpu :", [round(x, 5) for x in c])
print("train losses cuda:", [round(x, 5) for x in g])
if c and g:
    print("train max rel diff cuda vs cpu:", max(abs(a - b) / abs(a) for a, b in zip(c, g)))
# Expected over 20 steps: tf32 ~1e-3, bf16 < ~1e-2 relative to the CPU (F32) losses.
for p in ("tf32", "bf16"):
    m = losses(f"cuda_{p}")
    print(f"train losses cuda {p}:", [round(x, 5) for x in m])
    if c and m:
        print(f"train max rel diff cuda {p} vs cpu:", max(abs(a - b) / abs(a) for a, b in zip(c, m)))
    try:
        last = json.loads(open(f"{tr}/cuda_{p}/metrics.jsonl").readlines()[-1])
        print(f"train peak device memory {p}: {last.get('peak_device_mem_gib')} GiB")
    except (OSError, IndexError, ValueError):
        pass
PYEOF
fi

batch_of() {  # the batch our benchmark ran $1 with, then halvings, for the torch fallbacks
  "$PY" -c "
import json,sys
for l in open('$WORK/step_bench.out'):
    if l.startswith('{'):
        r=json.loads(l)
        if r.get('name')=='$1' and r.get('ok'):
            b=int(r['batch']); print(','.join(str(x) for x in (b, b//2, b//4) if x>0)); sys.exit()
print('$2')" 2>/dev/null || echo "$2"
}

write_results > /dev/null 2>&1

# ---- 4: PyTorch reference ---------------------------------------------------------------------
BXL=$(batch_of DiTDH-XL 128,64,32)
BS=$(batch_of DiTDH-S 256,128)
export PYTHONUNBUFFERED=1
want torch && run_stage torch_eager 150 bash -c "set -o pipefail; '$PY' '$ROOT/tests/device/torch_step_bench.py' --models XL,S --batches-xl $BXL --batches-s $BS --steps 5 --warmup 2 | tee '$WORK/torch_eager.out'"
# ---- 4b: our XL step with the fused flash kernel instead of the GEMM attention -----------------
if want bench && [ -x "$BD/bin/step_bench_cuda" ] && [ "$(left)" -gt 60 ]; then
  BXL1=$(echo "$BXL" | cut -d, -f1)
  run_stage step_bench_flash 90 bash -c "set -o pipefail; '$BD/bin/step_bench_cuda' --models XL --batches-xl $BXL1 --attention flash --suffix -flash --steps 3 --warmup 1 --peak-tflops 989 | tee -a '$WORK/step_bench.out'"
fi

# ---- 4c: torch.compile, time allowing
if want torch && [ "$(left)" -gt 120 ]; then
  run_stage torch_compile 150 bash -c "set -o pipefail; '$PY' '$ROOT/tests/device/torch_step_bench.py' --compile --models XL --batches-xl $BXL --steps 5 --warmup 2 | tee '$WORK/torch_compile.out'"
else
  log "torch_compile: skipped (time)"
fi


# ---- 5: encoder throughput (when the bundle has the benchmark) --------------------------------
enc=$(ls "$BD"/bin/*encoder*cuda* 2>/dev/null | head -1)
if want encoder && [ -n "$enc" ]; then
  run_stage encoder 90 bash -c "set -o pipefail; '$enc' --batch 64 | tee '$WORK/encoder.out'"
  run_stage torch_encoder 90 bash -c "set -o pipefail; '$PY' '$ROOT/tests/device/torch_encoder_bench.py' --batch 64 | tee '$WORK/torch_encoder.out'"
else
  log "encoder: skipped (no encoder benchmark in the bundle)"
fi
# ---- 6: FID Inception-v3 feature throughput, ours and torch-fidelity's ----------------------
inc=$(ls "$BD"/bin/inception_bench_cuda 2>/dev/null | head -1)
if want inception && [ -n "$inc" ]; then
  run_stage inception 120 bash -c "set -o pipefail; '$inc' --images ${INCEPTION_IMAGES:-50000} --batch ${INCEPTION_BATCH:-200} --precisions fp32,tf32 --search heuristic | tee '$WORK/inception.out'"
  [ "$(left)" -gt 90 ] && run_stage inception_measure 60 bash -c "set -o pipefail; '$inc' --images 20000 --batch ${INCEPTION_BATCH:-200} --precisions tf32 --search measure | tee -a '$WORK/inception.out'"
  run_stage torch_inception 120 bash -c "set -o pipefail; '$PY' '$ROOT/tests/device/torch_inception_bench.py' --images ${TORCH_INCEPTION_IMAGES:-10000} --batches 64,200 --fidelity-dir '$BD/py/torch_fidelity' | tee '$WORK/torch_inception.out'"
  [ "$(left)" -gt 60 ] && run_stage torch_inception_fp32 60 bash -c "set -o pipefail; '$PY' '$ROOT/tests/device/torch_inception_bench.py' --images 5000 --batches 200 --no-tf32 --fidelity-dir '$BD/py/torch_fidelity' | tee -a '$WORK/torch_inception.out'"
else
  log "inception: skipped (no inception benchmark in the bundle)"
fi
# ---- 7: sampling and the stage-1 decoder (writes $OUT/sample.json and sample.txt) -------------
stage_sample() {
  [ -x "$BD/bin/rae" ] || { log "sample: skipped (no rae in the bundle)"; return 0; }
  run_stage sample 420 bash "$ROOT/tests/device/sample_check.sh" "$BD/bin/rae" "$WORK/sample" "$OUT" "$PY"
}
want sample && stage_sample
log "done"
