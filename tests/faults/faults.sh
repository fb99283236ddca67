#!/usr/bin/env bash
# The fault suite (ctest label `faults`, tests/faults/tests.cmake): one case per bad input or
# fault, each stating the expected outcome: the error text naming the thing, the exit code, and
# which files must be byte-identical afterwards. Written against the `rae` CLI only (and
# `rae export` for models), so it holds across internal redesigns.
#   faults.sh RAE SRC WORK CASE        (cases: the functions named case_* below)
# Exit 77 = skipped (ctest SKIP_RETURN_CODE), with the reason printed.
set -uo pipefail
RAE="$1"; SRC="$2"; WORK="$3"; CASE="$4"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN=(mpirun --oversubscribe --bind-to none)
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
# Kill moments are random; the seed is printed so that a failure can be replayed.
SEED=${FAULTS_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
echo "faults.sh $CASE (seed $SEED) in $WORK"

fail() { echo "FAIL: $*"; exit 1; }
# expect_error REGEX... -- COMMAND...: COMMAND must exit with code 1 (an error, not a crash or a
# signal) and print every REGEX (grep -E, output of both streams, kept in LAST_OUT).
expect_error() {
  local regexes=()
  while [ "$1" != "--" ]; do regexes+=("$1"); shift; done
  shift
  local out rc
  out=$("$@" 2>&1); rc=$?
  echo "\$ ${*##*/} -> exit $rc"
  echo "$out" | tail -n 4 | sed 's/^/  | /'
  [ "$rc" -eq 1 ] || fail "expected exit code 1, got $rc"
  for r in "${regexes[@]}"; do
    echo "$out" | grep -Eq -- "$r" || fail "the error does not match /$r/"
  done
  LAST_OUT=$out
}
# A listing of every file under a directory with its sha256 (byte-identity checks); the run lock
# (which records its latest holder) is left out.
snapshot() {
  (cd "$1" && find . -type f -not -name .rae-train.lock -print0 | sort -z | xargs -0 -r sha256sum)
}
same() { [ "$(snapshot "$1")" = "$2" ] || fail "$1 changed"; echo "  $1: byte-identical"; }
lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }
shard_count() { ls "$1"/*.h5 2> /dev/null | wc -l; }
T=(train --config "$SRC/jobs/tiny.cfg" --log.progress=false)
PY=${FAULTS_PYTHON:-python3}  # the standard library only
# json_edit FILE STATEMENTS: runs Python STATEMENTS on `j`, the JSON of FILE, and writes it back.
json_edit() {
  "$PY" -c 'import json, sys
j = json.load(open(sys.argv[1]))
exec(sys.argv[2])
json.dump(j, open(sys.argv[1], "w"), indent=1)' "$1" "$2" || fail "json_edit $1"
}
# st_edit FILE STATEMENTS: the same on `h`, the JSON header of safetensors FILE (data untouched;
# `meta` is its __metadata__ with model_config parsed as `cfg`, written back when changed).
st_edit() {
  "$PY" -c 'import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
meta = h.get("__metadata__", {})
cfg = json.loads(meta["model_config"]) if "model_config" in meta else None
exec(sys.argv[2])
if cfg is not None and "model_config" in meta: meta["model_config"] = json.dumps(cfg)
new = json.dumps(h, separators=(",", ":")).encode()
new += b" " * (-len(new) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(new)) + new + b[8 + n:])' "$1" "$2" ||
    fail "st_edit $1"
}
# The checkpoint directories of a run, oldest first (names only).
checkpoints() { ls "$1/checkpoints" 2> /dev/null | grep -E '^step-[0-9]+$'; }
SYNTH=(--grid 8 --channels 32 --classes 10)
JOB=(--encoder tiny-random --encoder-input 112 --image-size 32 --threads 1 --progress 60)

# ---- latent caches ------------------------------------------------------------------------

# 4 KiB of random bytes inside a shard's data (the audit's case: loss 28,068 and exit 0): training
# stops with an error naming the shard and the row before using it; the cache is left as it is.
case_corrupt_shard_stops_training() {
  "$RAE" synth-cache --out cache --samples 256 "${SYNTH[@]}" --shard-size 64 --flip > /dev/null
  local f=cache/shard-00001.h5
  dd if=/dev/urandom of=$f bs=1 seek=$(( $(stat -c %s $f) / 2 )) count=4096 conv=notrunc \
    status=none
  local before; before=$(snapshot cache)
  expect_error "shard 'cache/shard-00001.h5' dataset 'latents(_flip)?' row [0-9]+ \(sample [0-9]+\) fails its checksum" \
    -- "$RAE" "${T[@]}" --cache cache --run-dir run --steps 48
  same cache "$before"
  echo "  trained $(lines run/metrics.jsonl) of 48 steps before the corrupt rows were due"
  expect_error "shard-00001.h5' is corrupt" -- "$RAE" cache verify cache
}

# A second synth-cache into a cache directory is refused and changes nothing; --overwrite replaces
# the cache (no shard of the old one left unlisted) and keeps files that are not the cache's.
case_synth_cache_refuses_nonempty_out() {
  "$RAE" synth-cache --out c --samples 64 "${SYNTH[@]}" --shard-size 16 > /dev/null
  echo "my notes" > c/notes.txt
  local before; before=$(snapshot c)
  expect_error "output directory 'c' is not empty" "--overwrite" \
    -- "$RAE" synth-cache --out c --samples 40 "${SYNTH[@]}" --shard-size 16
  same c "$before"
  "$RAE" synth-cache --out c --samples 40 "${SYNTH[@]}" --shard-size 16 --overwrite || fail "--overwrite"
  "$RAE" cache verify c > verify.txt || fail "verify after --overwrite"
  ! grep -q "not listed" verify.txt || fail "an old shard was left behind: $(cat verify.txt)"
  [ "$(shard_count c)" = 3 ] || fail "expected 3 shards"
  [ "$(cat c/notes.txt)" = "my notes" ] || fail "--overwrite removed a file it did not write"
}

# A sample of more than 2^28 elements is refused with the bound, before anything is allocated or
# created (it was a bare std::bad_alloc).
case_synth_cache_huge_channels() {
  expect_error "exceed the limit of 268435456 elements per sample" \
    -- "$RAE" synth-cache --out c --samples 4 --grid 16 --channels 100000000000
  [ ! -e c ] || fail "output created before the error"
}

# Shards are chunked at most at their size (a 16-row shard took 9.2 MB for 1 MB of data).
case_shard_chunks_at_most_shard_size() {
  "$RAE" synth-cache --out c --samples 40 --grid 4 --channels 8 --shard-size 16 > /dev/null
  h5dump -p -H -d /latents c/shard-00002.h5 | grep -q "CHUNKED ( 8, 16, 8 )" ||
    fail "shard-00002 (8 rows): $(h5dump -p -H -d /latents c/shard-00002.h5 | grep CHUNKED)"
  h5dump -p -H -d /latents c/shard-00000.h5 | grep -q "CHUNKED ( 16, 16, 8 )" || fail "shard-00000"
  "$RAE" make-dataset --out d --classes 2 --per-class 8 --size 32 > /dev/null
  "$RAE" cache --data d --out cc "${JOB[@]}" --shard-size 16 > /dev/null 2>&1 || fail "cache job"
  local chunk; chunk=$(h5dump -p -H -d /latents cc/shard-00000.h5 | grep -o "CHUNKED ( [0-9]*")
  [ "$chunk" = "CHUNKED ( 16" ] || fail "cache job shard of 16 rows: $chunk"
  local size; size=$(stat -c %s cc/shard-00000.h5)
  # 16 rows x 2 views x 8x8x64 bf16 = 256 KiB of data.
  [ "$size" -lt $(( 2 * 262144 )) ] || fail "a 16-row shard takes $size bytes"
  echo "  16-row shard: $size bytes for 262144 bytes of latents"
}

# The cache job's output rules. A non-empty directory that is not a cache job's is refused and
# left as it is; a rerun with the same settings resumes (not an overwrite: nothing is rewritten);
# other settings are refused naming the setting; --overwrite starts over.
case_cache_job_output_rules() {
  "$RAE" make-dataset --out d --classes 2 --per-class 4 --size 32 > /dev/null
  "$RAE" synth-cache --out other --samples 16 --grid 2 --channels 4 --shard-size 8 > /dev/null
  local before; before=$(snapshot other)
  expect_error "output directory 'other' is not empty" "--overwrite" \
    -- "$RAE" cache --data d --out other "${JOB[@]}" --shard-size 4
  same other "$before"
  "$RAE" cache --data d --out c "${JOB[@]}" --shard-size 4 > /dev/null 2>&1 || fail "first run"
  local first; first=$(snapshot c)
  local out; out=$("$RAE" cache --data d --out c "${JOB[@]}" --shard-size 4 2>&1) || fail "rerun"
  echo "$out" | grep -q "shards: 0 written, 2 verified and skipped" || fail "rerun: $out"
  same c "$first"
  expect_error "different settings: 'shard_size' was 4, now 2" "--overwrite" \
    -- "$RAE" cache --data d --out c "${JOB[@]}" --shard-size 2
  same c "$first"
  "$RAE" cache --data d --out c "${JOB[@]}" --shard-size 2 --overwrite > /dev/null 2>&1 ||
    fail "--overwrite"
  [ "$(shard_count c)" = 4 ] || fail "expected 4 shards after --overwrite"
  "$RAE" cache verify c > /dev/null || fail "verify after --overwrite"
}

case_cache_batch_zero() {
  expect_error "--batch must be >= 1, got 0" -- "$RAE" cache --data d --out c --batch 0
  [ ! -e c ] || fail "output created before the error"
}

# SIGKILL of the cache job's ranks at random moments, then reruns until it finishes: the result
# verifies and is byte-identical to a clean run (shards, manifest, statistics, job file).
case_cache_job_sigkill_ranks() {
  "$RAE" make-dataset --out d --classes 4 --per-class 24 --size 32 > /dev/null
  local J=("$RAE" cache --data d "${JOB[@]}" --shard-size 4 --batch 4)
  local t0; t0=$(date +%s%N)
  "${MPIRUN[@]}" -np 3 "${J[@]}" --out clean > clean.log 2>&1 || { cat clean.log; fail "clean run"; }
  local clean_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "  clean run: $clean_ms ms (24 shards); kills at random moments within that"
  local kills=0 mid=0 attempt=0
  while { [ $kills -lt 4 ] || [ $mid -lt 2 ]; } && [ $attempt -lt 20 ]; do
    attempt=$((attempt + 1))
    # A cache that earlier attempts completed leaves nothing to kill mid-job: start over.
    [ "$(shard_count c)" -lt 24 ] || rm -rf c
    "${MPIRUN[@]}" -np 3 "${J[@]}" --out c > run$attempt.log 2>&1 &
    local launcher=$! ranks=() killed=0
    for _ in $(seq 100); do  # until mpirun has started the 3 ranks
      ranks=($(pgrep -P $launcher)); [ ${#ranks[@]} -ge 3 ] && break; sleep 0.05
    done
    local ms
    if [ $mid -lt 2 ] && [ $((attempt % 2)) = 0 ]; then
      # Every other attempt kills just after this attempt's first new shard: a random moment
      # alone lands before the first shard or after the last too often on a slow machine.
      local before t1; before=$(shard_count c); t1=$(date +%s%N)
      for _ in $(seq 500); do
        [ "$(shard_count c)" -gt "$before" ] && break
        kill -0 $launcher 2> /dev/null || break
        sleep 0.01
      done
      ms=$(( ($(date +%s%N) - t1) / 1000000 ))
    else
      ms=$(( RANDOM * clean_ms / 32768 ))
      sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
    fi
    if kill -0 $launcher 2> /dev/null && [ ${#ranks[@]} -ge 3 ]; then
      local victim=${ranks[$(( RANDOM % 3 ))]}
      local done_shards; done_shards=$(shard_count c)
      if kill -9 "$victim" 2> /dev/null; then
        killed=1 kills=$((kills + 1))
        [ "$done_shards" -gt 0 ] && [ "$done_shards" -lt 24 ] && mid=$((mid + 1))
        echo "  attempt $attempt: SIGKILL of rank pid $victim after $ms ms, $done_shards of 24 shards done"
      fi
    fi
    wait $launcher
    # A job that finished before its kill: start over, so that kills land while shards are written.
    [ $killed = 1 ] || { echo "  attempt $attempt finished first; starting over"; rm -rf c; }
  done
  local n=0
  until "${MPIRUN[@]}" -np 3 "${J[@]}" --out c > final.log 2>&1; do
    n=$((n + 1)); [ $n -lt 3 ] || { cat final.log; fail "the job does not finish after the kills"; }
  done
  grep -h "verified and skipped" final.log | tail -1
  [ $kills -ge 4 ] && [ $mid -ge 2 ] || fail "$kills kills, $mid of them mid-job, in $attempt attempts"
  "$RAE" cache verify c || fail "the resumed cache does not verify"
  [ "$(snapshot c)" = "$(snapshot clean)" ] || { diff <(snapshot clean) <(snapshot c); fail "differs from the clean run"; }
  echo "  $kills kills ($mid while shards were being written): byte-identical to the clean run"
}

# ---- images (rae cache on a tree with one bad file) ----------------------------------------

bad_image_tree() {
  "$RAE" make-dataset --out d --classes 2 --per-class 3 --size 32 > /dev/null
  cp "$SRC/tests/goldens/images/cases/$1" d/train/n00000001/n00000001_00001.JPEG
}

# Truncated data is an error naming the file (libjpeg's warning was ignored: half an image was
# encoded silently).
case_image_truncated_jpeg() {
  bad_image_tree jpeg_half.jpg
  expect_error "n00000001_00001.JPEG: image file is truncated" \
    -- "$RAE" cache --data d --out c "${JOB[@]}" --shard-size 8
  [ ! -e c/manifest.json ] || fail "a manifest was written"
}

# A small file claiming 20000 x 20000 is refused from its header, quickly and without the 1.2 GB
# allocation (it took 4.3 GB and 11.7 s).
case_image_bomb_jpeg() {
  bad_image_tree jpeg_bomb.jpg
  local t0; t0=$(date +%s%N)
  expect_error "n00000001_00001.JPEG: image size 20000x20000 \(400000000 pixels\) exceeds the limit of 89478485 pixels" \
    -- "$RAE" cache --data d --out c "${JOB[@]}" --shard-size 8
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "  refused after $ms ms"
  [ "$ms" -lt 20000 ] || fail "took $ms ms"
}

# A 673-byte JPEG claiming 65500 x 65500 died with a bare std::bad_alloc: refused from its header
# (the pixel limit); with the limit off and memory short (ulimit -v), an error naming the file.
case_image_bomb_65500_jpeg() {
  bad_image_tree jpeg_bomb.jpg
  # SOF0's height and width (bytes 163..166 of the file) -> 65500 (0xFFDC)
  printf '\xff\xdc\xff\xdc' | dd of=d/train/n00000001/n00000001_00001.JPEG bs=1 seek=163 \
    conv=notrunc status=none
  expect_error "n00000001_00001.JPEG: image size 65500x65500 \(4290250000 pixels\) exceeds the limit of 89478485 pixels" \
    -- "$RAE" cache --data d --out c "${JOB[@]}" --shard-size 8
  expect_error "n00000001_00001.JPEG: out of memory decoding the image" \
    -- bash -c 'ulimit -v 6000000 && exec "$@"' _ "$RAE" cache --data d --out c2 "${JOB[@]}" \
    --shard-size 8 --max-image-pixels 0
}

# ---- training -------------------------------------------------------------------------------

case_config_is_directory() {
  mkdir cfg.d
  expect_error "config file 'cfg.d' is a directory" \
    -- "$RAE" train --config cfg.d --cache synthetic:64x8x32x10 --run-dir run --steps 1
  [ ! -e run ] || fail "run directory created before the error"
}

case_config_nonfinite_lr() {
  printf '[optim]\nlr = inf\n' > inf.cfg
  expect_error "config file 'inf.cfg': config key 'optim.lr': value inf must be a finite number" \
    -- "$RAE" train --config inf.cfg --cache synthetic:64x8x32x10 --run-dir run --steps 1
  expect_error "config key 'optim.lr': value nan must be a finite number" \
    -- "$RAE" "${T[@]}" --cache synthetic:64x8x32x10 --run-dir run --steps 1 --optim.lr=nan
  [ ! -e run ] || fail "run directory created before the error"
}

case_config_negative_steps() {
  printf '[train]\nsteps = -5\n' > neg.cfg
  expect_error "config file 'neg.cfg': config key 'train.steps': value -5 must be >= 0" \
    -- "$RAE" train --config neg.cfg --cache synthetic:64x8x32x10 --run-dir run
  [ ! -e run ] || fail "run directory created before the error"
}

# A placeholder of Boost's error messages (%value%, %canonical_option%, ...) in a config file or
# an argument made the command hang forever (found by fuzz_config): refused, at once.
case_config_placeholder_no_hang() {
  printf '[optim]\nlr = %%value%%\n' > pv.cfg
  expect_error "config file 'pv.cfg' line 2: '%value%' is not allowed" \
    -- timeout 20 "$RAE" train --config pv.cfg --cache synthetic:64x8x32x10 --run-dir run
  local out rc
  for args in "train --config pv.cfg --optim.lr=%value%" "cache --dat%canonical_option%a d --out c"; do
    out=$(timeout 20 "$RAE" $args 2>&1); rc=$?
    echo "\$ rae $args -> exit $rc: $out"
    [ $rc -eq 2 ] && echo "$out" | grep -q "contains '%[a-z_]*%', which is not allowed" ||
      fail "expected exit 2 naming the placeholder"
  done
  [ ! -e run ] && [ ! -e c ] || fail "output created before the error"
}

# A number out of a double's range in manifest.json (found by fuzz_manifest) escaped as a bare
# JSON exception: now an error naming the manifest.
case_manifest_number_overflow() {
  "$RAE" synth-cache --out c --samples 16 --grid 2 --channels 4 --shard-size 8 > /dev/null
  sed -i 's/"bytes": [0-9]*/"bytes": 11e3089064/' c/manifest.json
  expect_error "manifest 'c/manifest.json' is not valid JSON" -- "$RAE" cache verify c
  expect_error "manifest 'c/manifest.json' is not valid JSON" \
    -- "$RAE" "${T[@]}" --cache c --run-dir run --steps 1
}

# A second trainer on a run directory stops at start naming the first (pid, host); the first is
# not disturbed; the lock goes with the first one's death (SIGKILL), so a new trainer can resume.
case_run_dir_lock() {
  "$RAE" "${T[@]}" --cache synthetic:256x8x32x10 --run-dir run --steps 1000000 > a.log 2>&1 &
  local a=$!
  for _ in $(seq 300); do [ "$(lines run/metrics.jsonl)" -ge 2 ] && break; sleep 0.1; done
  kill -0 $a 2> /dev/null || { cat a.log; fail "the first trainer is not running"; }
  expect_error "run directory 'run' is in use by another trainer \(pid $a, host $(hostname)" \
    -- "$RAE" "${T[@]}" --cache synthetic:256x8x32x10 --run-dir run --steps 5
  kill -0 $a 2> /dev/null || fail "the first trainer died"
  kill -9 $a; wait $a 2> /dev/null
  "$RAE" "${T[@]}" --cache synthetic:256x8x32x10 --run-dir run --steps 3 > b.log 2>&1 ||
    { cat b.log; fail "no trainer could take the run directory after the holder died"; }
}

# Random-moment SIGKILLs of `rae train` (checkpoint every step, so several land inside checkpoint
# writes), each followed by a rerun that resumes: the final model, EMA and loss curve are
# byte-identical to an uninterrupted run's.
case_train_sigkill_loop() {
  local S=(--cache synthetic:256x8x32x10 --checkpoint.every=1 --checkpoint.keep_last=2)
  local N=60
  "$RAE" "${T[@]}" "${S[@]}" --run-dir ref --steps $N > ref.log 2>&1 || { cat ref.log; fail "reference run"; }
  local kills=0 in_write=0 attempt=0
  while [ $kills -lt 12 ] && [ $attempt -lt 40 ]; do
    attempt=$((attempt + 1))
    "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps $N > run.log 2>&1 &
    local p=$!
    sleep "0.$(( 2 + RANDOM % 7 ))$(( RANDOM % 10 ))"
    if kill -9 $p 2> /dev/null; then
      wait $p 2> /dev/null
      kills=$((kills + 1))
      if ls -a run/checkpoints 2> /dev/null | grep -q tmp; then in_write=$((in_write + 1)); fi
    else
      wait $p || { cat run.log; fail "a resumed run failed"; }
      echo "  the run finished before kill $((kills + 1)); starting over"
      rm -rf run
    fi
  done
  echo "  $kills kills, $in_write inside a checkpoint write (a temporary checkpoint was left)"
  [ $kills -ge 10 ] || fail "only $kills kills"
  [ $in_write -ge 1 ] || fail "no kill landed inside a checkpoint write"
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps $N > final.log 2>&1 || { cat final.log; fail "final run"; }
  for w in "" --ema; do
    "$RAE" export --run-dir ref $w --out ref$w.safetensors > /dev/null || fail "export ref $w"
    "$RAE" export --run-dir run $w --out run$w.safetensors > /dev/null || fail "export run $w"
    cmp ref$w.safetensors run$w.safetensors || fail "exported model$w differs from the uninterrupted run"
  done
  losses() { grep -o '"step":[0-9]*\|"loss":[^,}]*' "$1" | paste - -; }
  [ "$(losses ref/metrics.jsonl)" = "$(losses run/metrics.jsonl)" ] || fail "losses differ"
  [ "$(losses run/metrics.jsonl | wc -l)" = $N ] || fail "metrics.jsonl does not have $N steps"
  echo "  model, EMA and $N losses byte-identical to the uninterrupted run"
}

# The watchdog names the step in progress (it said "step 0" at step 8): rank 1 is stopped
# (SIGSTOP) after a few steps; rank 0's report names the step it waits in, 1-based as logged.
case_watchdog_names_step() {
  "${MPIRUN[@]}" -np 2 "$RAE" "${T[@]}" --cache synthetic:256x8x32x10 --run-dir run \
    --steps 1000000 --dist.timeout_s=3 > wd.log 2>&1 &
  local launcher=$!
  for _ in $(seq 600); do [ "$(lines run/metrics.jsonl)" -ge 3 ] && break; sleep 0.1; done
  local victim; victim=$(pgrep -P $launcher | sed -n 2p)
  [ -n "$victim" ] || fail "no rank process"
  kill -STOP "$victim"
  wait $launcher; local rc=$?
  kill -9 "$victim" 2> /dev/null
  local logged; logged=$(lines run/metrics.jsonl)
  grep -A2 "rae dist watchdog\] rank 0" wd.log | sed 's/^/  | /'
  [ $rc -ne 0 ] || fail "exit code 0"
  grep -q "rae dist watchdog\] rank 0 (pid [0-9]*), step $((logged + 1)): collective" wd.log ||
    fail "the report does not name step $((logged + 1)) (steps logged: $logged)"
}

# ---- run directories: resume, retention, set-aside ---------------------------------------------

# Every checkpoint invalid (a flipped byte, a missing manifest, a truncated file). It was: the run
# restarted from step 0, replaced the old checkpoints one by one and truncated metrics.jsonl to
# nothing. Now: exit 1 naming each checkpoint and its problem, and the run directory is
# byte-identical; --restart-from-scratch moves the checkpoints and the run's files, unchanged,
# into run/discarded-<time>/ and trains from step 0.
case_resume_no_valid_checkpoint() {
  local S=(--cache synthetic:256x8x32x10 --checkpoint.every=2 --checkpoint.keep_last=5)
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 6 > a.log 2>&1 || { cat a.log; fail "first run"; }
  local f=run/checkpoints/step-0000002/shard-00000-of-00001.safetensors
  printf 'X' | dd of=$f bs=1 seek=4000 conv=notrunc status=none
  rm run/checkpoints/step-0000004/manifest.json
  truncate -s -1 run/checkpoints/step-0000006/state.json
  local before; before=$(snapshot run)
  expect_error "run directory 'run' has 3 checkpoint\(s\) and none is valid" \
    "step-0000006: size mismatch for state.json" "step-0000004: missing manifest.json" \
    "step-0000002: checksum mismatch for shard-00000-of-00001.safetensors" \
    "Nothing was changed" "--restart-from-scratch" \
    -- "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 8
  same run "$before"
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 8 --restart-from-scratch > b.log 2>&1 ||
    { cat b.log; fail "--restart-from-scratch"; }
  grep -q "restart-from-scratch: moved them" b.log || fail "the move is not logged"
  local aside; aside=$(ls -d run/discarded-*) || fail "no discarded directory"
  [ "$(echo "$aside" | wc -l)" = 1 ] || fail "several discarded directories: $aside"
  [ "$(snapshot "$aside" | grep -v ' ./reason.txt$')" = "$before" ] ||
    fail "$aside does not hold the old run byte for byte"
  echo "  $aside: the old run, byte-identical (metrics.jsonl: $(lines "$aside/metrics.jsonl") lines)"
  [ "$(checkpoints run | tr '\n' ' ')" = "step-0000002 step-0000004 step-0000006 step-0000008 " ] ||
    fail "new checkpoints: $(checkpoints run)"
  [ "$(lines run/metrics.jsonl)" = 8 ] || fail "the new run's metrics.jsonl"
}

# The newest checkpoint invalid, an older one valid: the run resumes from the valid one; the
# invalid one moves (unchanged) into run/discarded-*/ with a copy of metrics.jsonl as it was;
# metrics.jsonl keeps every line up to the resumed step; the run ends byte-identical to an
# uninterrupted one.
case_resume_skips_invalid_newest() {
  local S=(--cache synthetic:256x8x32x10 --checkpoint.every=4 --checkpoint.keep_last=3)
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 12 > a.log 2>&1 || { cat a.log; fail "first run"; }
  local f=run/checkpoints/step-0000012/extras.safetensors
  printf 'X' | dd of=$f bs=1 seek=100 conv=notrunc status=none
  local ckpt12; ckpt12=$(snapshot run/checkpoints/step-0000012)
  cp run/metrics.jsonl metrics-before.jsonl
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 16 > b.log 2>&1 || { cat b.log; fail "resume"; }
  grep -q "resumed from run/checkpoints/step-0000008" b.log || fail "not resumed from step 8"
  grep -q "step-0000012: checksum mismatch for extras.safetensors" b.log || fail "not reported"
  local aside; aside=$(ls -d run/discarded-*) || fail "no discarded directory"
  [ "$(snapshot "$aside/checkpoints/step-0000012")" = "$ckpt12" ] || fail "step-0000012 changed"
  cmp "$aside/metrics.jsonl" metrics-before.jsonl || fail "the copy of metrics.jsonl differs"
  [ "$(head -n 8 run/metrics.jsonl)" = "$(head -n 8 metrics-before.jsonl)" ] ||
    fail "metrics.jsonl lost lines up to the resumed step"
  "$RAE" "${T[@]}" "${S[@]}" --run-dir ref --steps 16 > ref.log 2>&1 || fail "reference run"
  "$RAE" export --run-dir run --out run.safetensors > /dev/null || fail "export"
  "$RAE" export --run-dir ref --out ref.safetensors > /dev/null || fail "export ref"
  cmp run.safetensors ref.safetensors || fail "differs from an uninterrupted run"
  echo "  resumed from step 8; step-0000012 set aside unchanged; final model = uninterrupted run"
}

# With a valid checkpoint --restart-from-scratch changes nothing (a requeued job carrying the flag
# must not lose its progress): the run resumes, nothing is set aside.
case_restart_from_scratch_keeps_a_valid_run() {
  local S=(--cache synthetic:256x8x32x10 --checkpoint.every=2)
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 4 > a.log 2>&1 || { cat a.log; fail "first run"; }
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 6 --restart-from-scratch > b.log 2>&1 ||
    { cat b.log; fail "rerun"; }
  grep -q "restart-from-scratch ignored: run/checkpoints/step-0000004 is valid" b.log ||
    fail "not logged"
  grep -q "resumed from run/checkpoints/step-0000004" b.log || fail "did not resume"
  ! ls -d run/discarded-* 2> /dev/null || fail "something was set aside"
  [ "$(lines run/metrics.jsonl)" = 6 ] || fail "metrics.jsonl"
}

# Retention deletes checkpoints only below a newest one that verifies: the unit cases
# (faults.retention_*) and here the CLI's keep_last over a resumed run: the valid newest stays.
case_retention_keeps_newest_valid() {
  local S=(--cache synthetic:256x8x32x10 --checkpoint.every=1 --checkpoint.keep_last=1)
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 3 > a.log 2>&1 || { cat a.log; fail "first run"; }
  [ "$(checkpoints run)" = step-0000003 ] || fail "keep_last=1: $(checkpoints run)"
  "$RAE" status run --verify > /dev/null || fail "the kept checkpoint does not verify"
}

# Saves killed before their rename leave checkpoints/.tmp-step-N/; the next start removes those
# (by that exact name pattern, under checkpoints/ only) and nothing else.
case_interrupted_save_temporaries_removed() {
  local S=(--cache synthetic:256x8x32x10 --checkpoint.every=2)
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 4 > a.log 2>&1 || { cat a.log; fail "first run"; }
  RAE_TEST_KILL_CHECKPOINT=manifest "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 6 \
    > b.log 2>&1 && fail "the kill hook did not fire"
  [ -d run/checkpoints/.tmp-step-0000006 ] || fail "no temporary checkpoint left: $(ls -a run/checkpoints)"
  mkdir -p run/checkpoints/.tmp-step-0000099 run/checkpoints/.tmp-mine run/.tmp-step-0000005
  echo partial > run/checkpoints/.tmp-step-0000099/shard.safetensors
  echo notes > run/checkpoints/notes.txt
  echo mine > run/checkpoints/.tmp-mine/file
  local keep; keep=$(cd run && snapshot checkpoints/step-0000004; cat checkpoints/notes.txt checkpoints/.tmp-mine/file)
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 6 > c.log 2>&1 || { cat c.log; fail "rerun"; }
  grep -c "a checkpoint save that was interrupted" c.log | grep -qx 2 || fail "removals not logged"
  ! ls -d run/checkpoints/.tmp-step-* 2> /dev/null || fail "left: $(ls -a run/checkpoints)"
  [ -d run/.tmp-step-0000005 ] || fail "removed a directory outside checkpoints/"
  [ "$(cd run && snapshot checkpoints/step-0000004; cat checkpoints/notes.txt checkpoints/.tmp-mine/file)" = "$keep" ] ||
    fail "changed what is not an interrupted save"
  [ "$(checkpoints run | tail -n 1)" = step-0000006 ] || fail "the run did not finish"
}

# Resuming with another train.seed or train.global_batch_size would train on another stream of
# batches: refused naming both values of each, the run directory unchanged; the logged override
# (train.allow_data_change) resumes.
case_resume_changed_seed_or_batch() {
  local S=(--cache synthetic:256x8x32x10 --checkpoint.every=2)
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 2 > a.log 2>&1 || { cat a.log; fail "first run"; }
  local before; before=$(snapshot run)
  expect_error "step-0000002: the data order changed: train.seed 42 in the checkpoint, 7 now" \
    "train.allow_data_change" -- "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 4 --train.seed=7
  same run "$before"
  expect_error "train.global_batch_size 16 in the checkpoint, 32 now" \
    -- "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 4 --train.global_batch_size=32
  expect_error "train.global_batch_size 16 in the checkpoint, 8 now; train.seed 42 in the checkpoint, 9 now" \
    -- "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 4 --train.global_batch_size=8 --train.seed=9
  same run "$before"
  "$RAE" "${T[@]}" "${S[@]}" --run-dir run --steps 4 --train.seed=7 \
    --train.allow_data_change=true > b.log 2>&1 || { cat b.log; fail "the override"; }
  grep -q "warning: .*train.seed 42 in the checkpoint, 7 now.*resuming anyway (train.allow_data_change)" b.log ||
    fail "the override is not logged: $(grep -i warn b.log)"
}

# ---- checksums ------------------------------------------------------------------------------------

# The checkpoint checksum was labelled FNV-1a but used a wrong offset basis, so external tools
# disagreed. Every checksum a manifest records (cache shards, checkpoint files) is XXH64 and
# equals what the reference tool, xxhsum (xxHash's own CLI), prints for the same file.
case_checksums_agree_with_xxhsum() {
  command -v xxhsum > /dev/null ||
    { echo "SKIP: xxhsum (Debian package xxhash, scripts/install-deps.sh) is not installed"; exit 77; }
  "$RAE" synth-cache --out c --samples 24 --grid 2 --channels 4 --shard-size 8 > /dev/null
  tiny_run run
  local ckpt=run/checkpoints/step-0000002
  local ours; ours=$("$PY" -c 'import json, sys
c = json.load(open("c/manifest.json"))
assert c["checksum_algorithm"] == "xxh64"
for s in c["shards"]: print(s["checksum"] + "  c/" + s["file"])
m = json.load(open(sys.argv[1] + "/manifest.json"))
assert m["checksum_algorithm"] == "xxh64"
for f, i in m["files"].items(): print(i["checksum"] + "  " + sys.argv[1] + "/" + f)' "$ckpt" | sort) ||
    fail "reading the manifests"
  local theirs; theirs=$(cd . && xxhsum -H1 c/shard-*.h5 "$ckpt"/*.safetensors "$ckpt"/state.json | sort)
  echo "$ours" | sed 's/^/  /'
  [ "$ours" = "$theirs" ] || { diff <(echo "$ours") <(echo "$theirs"); fail "xxhsum disagrees"; }
  [ "$(echo "$ours" | wc -l)" = 6 ] || fail "expected 3 shards and 3 checkpoint files"
}

# ---- checkpoint and model-file contents ------------------------------------------------------

tiny_run() {  # tiny_run DIR: 2 steps of the tiny preset, one checkpoint
  "$RAE" "${T[@]}" --cache synthetic:64x8x32x10 --run-dir "$1" --steps 2 > "$1.log" 2>&1 ||
    { cat "$1.log"; fail "tiny run"; }
}

# A checkpoint declaring a tensor of the right count but another shape (only counts were
# checked): resume stops naming the tensor and the manifest; nothing changes.
case_checkpoint_tensor_wrong_shape_same_count() {
  tiny_run run
  json_edit run/checkpoints/step-0000002/manifest.json \
    't = j["models"][0]["tensors"]["final_layer.linear.weight"]; t["shape"] = t["shape"][::-1]'
  local before; before=$(snapshot run)
  expect_error "run/checkpoints/step-0000002/manifest.json: tensor 'final_layer.linear.weight' has shape \(128, 32\) in the checkpoint, \(32, 128\) in the model" \
    -- "$RAE" "${T[@]}" --cache synthetic:64x8x32x10 --run-dir run --steps 4
  same run "$before"
}

# A checkpoint declaring I32 for a float weight: refused naming the tensor and the manifest, by
# resume and by export.
case_checkpoint_tensor_declared_i32() {
  tiny_run run
  json_edit run/checkpoints/step-0000002/manifest.json \
    'j["models"][0]["tensors"]["t_embedder.mlp.0.weight"]["dtype"] = "I32"'
  local before; before=$(snapshot run)
  local msg="run/checkpoints/step-0000002/manifest.json: tensor 't_embedder.mlp.0.weight' is declared with dtype 'I32', checkpoints store F32"
  expect_error "$msg" -- "$RAE" "${T[@]}" --cache synthetic:64x8x32x10 --run-dir run --steps 4
  expect_error "$msg" -- "$RAE" export --run-dir run --out m.safetensors
  same run "$before"
  [ ! -e m.safetensors ] || fail "export wrote a file"
}

# Model files (rae export's, read by rae sample / model-forward): a tensor of the right count in
# another shape, or I32 bits for a float weight, is refused naming the tensor and the file.
case_model_file_tensor_shape_and_dtype() {
  tiny_run run
  "$RAE" export --run-dir run --out m.safetensors > /dev/null || fail "export"
  cp m.safetensors swapped.safetensors
  st_edit swapped.safetensors 't = h["final_layer.linear.weight"]; t["shape"] = t["shape"][::-1]'
  expect_error "swapped.safetensors: tensor 'final_layer.linear.weight' has shape \(128, 32\), expected \(32, 128\)" \
    -- "$RAE" sample --model swapped.safetensors --out s --labels 1 --steps 2
  cp m.safetensors int.safetensors
  st_edit int.safetensors 'h["t_embedder.mlp.0.weight"]["dtype"] = "I32"'
  expect_error "int.safetensors: tensor 't_embedder.mlp.0.weight' has dtype i32, expected a float dtype" \
    -- "$RAE" sample --model int.safetensors --out s --labels 1 --steps 2
  [ ! -e s/latents.npz ] || fail "samples were written"
  "$RAE" sample --model m.safetensors --out s --labels 1 --steps 2 > /dev/null 2>&1 ||
    fail "the unmodified file does not sample"
}

# heads = 0 in a model config divided by zero (SIGFPE, empty stderr): now exit 1 naming the key,
# from a training override (before the run directory exists), a model file's model_config and a
# legacy dit_config.
case_model_config_heads_zero() {
  expect_error "model type 'DiTDH' config: key 'body_heads' is 0, must be in \[1, 64\]" \
    -- "$RAE" "${T[@]}" --cache synthetic:64x8x32x10 --run-dir run --steps 1 \
    '--model.overrides={"body_heads":0}'
  [ ! -e run ] || fail "run directory created before the error"
  tiny_run ok
  "$RAE" export --run-dir ok --out m.safetensors > /dev/null || fail "export"
  cp m.safetensors h0.safetensors
  st_edit h0.safetensors 'cfg["head_heads"] = 0'
  expect_error "h0.safetensors: metadata 'model_config': model type 'DiTDH' config: key 'head_heads' is 0" \
    -- "$RAE" sample --model h0.safetensors --out s --labels 1 --steps 2
  cp m.safetensors legacy.safetensors
  st_edit legacy.safetensors 'cfg["body_heads"] = 0; meta["dit_config"] = json.dumps(cfg); del meta["model_type"], meta["model_config"]; cfg = None'
  expect_error "legacy.safetensors: metadata 'dit_config': key 'body_heads' is 0" \
    -- "$RAE" model-forward --checkpoint legacy.safetensors --inputs m.safetensors --out o.safetensors
}

# A malformed model config gave a bare JSON exception: now the key and what it must be.
case_model_config_malformed() {
  expect_error "key 'grid' must be an integer, got \"16\"" \
    -- "$RAE" "${T[@]}" --cache synthetic:64x8x32x10 --run-dir run --steps 1 '--model.overrides={"grid":"16"}'
  tiny_run ok
  "$RAE" export --run-dir ok --out m.safetensors > /dev/null || fail "export"
  cp m.safetensors a.safetensors
  st_edit a.safetensors 'cfg["mlp_ratio"] = "four"'
  expect_error "a.safetensors: metadata 'model_config': model type 'DiTDH' config: key 'mlp_ratio' must be a number, got \"four\"" \
    -- "$RAE" sample --model a.safetensors --out s --labels 1 --steps 2
  cp m.safetensors b.safetensors
  st_edit b.safetensors 'cfg["depth"] = 3'
  expect_error "b.safetensors: metadata 'model_config': model type 'DiTDH' config: unknown key 'depth'" \
    -- "$RAE" sample --model b.safetensors --out s --labels 1 --steps 2
  cp m.safetensors c.safetensors
  st_edit c.safetensors 'meta["model_config"] = "{\"grid\": 8,"; cfg = None'
  expect_error "c.safetensors: metadata 'model_config' is not JSON" \
    -- "$RAE" sample --model c.safetensors --out s --labels 1 --steps 2
}

# An encoder's config.json with num_attention_heads = 0 (a division by zero too): the key named.
case_encoder_config_heads_zero() {
  "$RAE" make-dataset --out d --classes 2 --per-class 2 --size 32 > /dev/null
  cp -r "$SRC/tests/goldens/encoders/dinov2-reg-tiny" enc
  json_edit enc/config.json 'j["num_attention_heads"] = 0'
  expect_error "enc/config.json: key 'num_attention_heads' is 0, must be in \[1, 32\]" \
    -- "$RAE" cache --data d --out c --encoder enc --image-size 32 --threads 1
  [ ! -e c/manifest.json ] || fail "a manifest was written"
}

# ---- the loss-spike guard ------------------------------------------------------------------------

# Wrong values that pass every checksum (one sample of 512 multiplied by 1000, written so): the
# guard stops the run at the first step that meets the sample after its warmup, before the
# update, writing nothing (the newest checkpoint is from before; every checkpoint verifies); a
# rerun resumes and stops at the same step; without the guard the run trains on it; clean data
# does not trip it.
case_loss_spike_corrupt_values() {
  local tool=${FAULTS_SPIKY_CACHE:-}
  [ -x "$tool" ] || fail "FAULTS_SPIKY_CACHE (write_spiky_cache) is not set"
  "$tool" spiky 512 8 32 10 128 1000 300 > /dev/null || fail "write_spiky_cache"
  "$tool" clean 512 8 32 10 128 1 > /dev/null || fail "write_spiky_cache (clean)"
  "$RAE" cache verify spiky > /dev/null || fail "the spiky cache does not verify"
  # (the sample is first met after the warmup at step 15 with this data and seed)
  local G=(--steps 24 --train.loss_spike_warmup=10 --checkpoint.every=5 --checkpoint.keep_last=2)
  expect_error "step [0-9]+: loss [0-9.e+]+ is [0-9.e+]+ times its running mean [0-9.e+-]+ \(train.loss_spike_factor = 10\); stopping before the update" \
    "Nothing was written; the newest checkpoint is run/checkpoints/step-[0-9]+" \
    -- "$RAE" "${T[@]}" --cache spiky --run-dir run "${G[@]}"
  local at; at=$(echo "$LAST_OUT" | grep -o "error: step [0-9]*" | grep -o "[0-9]*$")
  local newest; newest=$(checkpoints run | tail -n 1)
  echo "  stopped at step $at; newest checkpoint $newest; $(lines run/metrics.jsonl) steps logged"
  [ "$(lines run/metrics.jsonl)" = $((at - 1)) ] || fail "metrics.jsonl has not $((at - 1)) lines"
  [ $((10#${newest#step-})) -lt "$at" ] || fail "a checkpoint of step >= $at"
  for c in $(checkpoints run); do
    "$RAE" export --checkpoint run/checkpoints/$c --out $c.safetensors > /dev/null || fail "$c does not verify"
  done
  local ckpts; ckpts=$(snapshot run/checkpoints)
  expect_error "step $at: loss" -- "$RAE" "${T[@]}" --cache spiky --run-dir run "${G[@]}"
  [ "$(snapshot run/checkpoints)" = "$ckpts" ] || fail "the rerun changed the checkpoints"
  "$RAE" "${T[@]}" --cache spiky --run-dir off "${G[@]}" --train.loss_spike_factor=0 > off.log 2>&1 ||
    { tail -3 off.log; fail "without the guard the run should train on"; }
  "$RAE" "${T[@]}" --cache clean --run-dir clean "${G[@]}" > clean.log 2>&1 ||
    { tail -3 clean.log; fail "clean data tripped the guard"; }
}

# A learning rate that diverges (warming up linearly to 0.02, 4x the tiny preset's): the guard
# stops the run when the loss jumps, before training on.
case_loss_spike_diverging_lr() {
  expect_error "step [0-9]+: loss [0-9.e+]+ is [0-9.e+]+ times its running mean" "optim.lr" \
    -- "$RAE" "${T[@]}" --cache synthetic:256x8x32x10 --run-dir run --steps 100 \
    --train.loss_spike_warmup=10 --optim.lr=0.02 --schedule.warmup_steps=100 \
    --schedule.warmup_from_zero=true --checkpoint.every=25
  echo "  $(lines run/metrics.jsonl) steps logged; checkpoints: $(checkpoints run | tr '\n' ' ')"
}

# ---- full file system (a small tmpfs) -------------------------------------------------------

mount_small_tmpfs() {  # mount_small_tmpfs DIR KIB
  mkdir -p "$1"
  if ! mount -t tmpfs -o "size=$2k" tmpfs "$1" 2> /dev/null; then
    echo "SKIP: cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); the full-disk case did not run"
    exit 77
  fi
  trap "umount '$1' 2> /dev/null" EXIT
}

# Writers on a full disk: synth-cache fails naming the file and leaves neither a manifest nor a
# temporary shard; training fails at a checkpoint and leaves the previous checkpoints intact
# (the newest one exports byte-identical to a clean run's checkpoint of the same step).
case_full_filesystem() {
  "$RAE" "${T[@]}" --cache synthetic:256x8x32x10 --run-dir probe --steps 1 > /dev/null 2>&1
  local ckpt_kib; ckpt_kib=$(du -sk probe/checkpoints | cut -f1)
  mount_small_tmpfs mnt $(( ckpt_kib * 5 / 2 + 32 ))
  echo "  tmpfs of $(( ckpt_kib * 5 / 2 + 32 )) KiB (a checkpoint is $ckpt_kib KiB)"
  # 4 KiB per sample: twice what the file system holds.
  expect_error "shard-[0-9]+\.h5\.tmp.*(disk full|No space left)" \
    -- "$RAE" synth-cache --out mnt/c --samples $(( ckpt_kib * 5 / 4 )) "${SYNTH[@]}" --shard-size 1024
  [ ! -e mnt/c/manifest.json ] || fail "a manifest was written"
  ! ls mnt/c/*.tmp > /dev/null 2>&1 || fail "a temporary shard was left: $(ls mnt/c)"
  rm -rf mnt/c
  local S=(--cache synthetic:256x8x32x10 --checkpoint.every=1 --checkpoint.keep_last=100)
  expect_error "No space left|disk full" -- "$RAE" "${T[@]}" "${S[@]}" --run-dir mnt/run --steps 20
  local last; last=$(ls mnt/run/checkpoints | grep -E '^step-[0-9]+$' | tail -n 1)
  [ -n "$last" ] || fail "no checkpoint survived"
  local step=$((10#${last#step-}))
  echo "  newest complete checkpoint: $last"
  "$RAE" export --run-dir mnt/run --out full.safetensors > /dev/null || fail "export after the failure"
  "$RAE" "${T[@]}" "${S[@]}" --run-dir clean --steps "$step" > /dev/null 2>&1 || fail "clean run"
  "$RAE" export --run-dir clean --out clean.safetensors > /dev/null || fail "export clean"
  cmp full.safetensors clean.safetensors || fail "the surviving checkpoint differs from a clean run's"
}

# ---- make-dataset ---------------------------------------------------------------------------

# A second make-dataset into a split is refused and changes nothing; --overwrite replaces a split
# it wrote (no stale image left), and refuses one it did not write.
case_make_dataset_refuses_nonempty_split() {
  "$RAE" make-dataset --out d --classes 2 --per-class 3 --size 16 > /dev/null
  local before; before=$(snapshot d)
  expect_error "'d/train' is not empty" "--overwrite" \
    -- "$RAE" make-dataset --out d --classes 3 --per-class 2 --size 16
  same d "$before"
  "$RAE" make-dataset --out d --classes 3 --per-class 2 --size 16 --overwrite > /dev/null ||
    fail "--overwrite"
  [ "$(find d/train -type f -not -name '.*' | wc -l)" = 6 ] || fail "stale images left"
  "$RAE" make-dataset --out d --split val --classes 3 --per-class 1 --size 16 > /dev/null ||
    fail "another split of the same root"
  mkdir -p mine/train/x && echo data > mine/train/x/a.JPEG
  expect_error "was not written by make-dataset" \
    -- "$RAE" make-dataset --out mine --classes 2 --per-class 3 --size 16 --overwrite
  [ "$(cat mine/train/x/a.JPEG)" = data ] || fail "removed a file it did not write"
}

# ---- sampling (rae sample / decode / reconstruct) --------------------------------------------
# Each bad argument stops `rae sample` with exit 1 and a message naming the option, before any
# output is written (--out is not created). The model is the committed micro DiT^DH golden
# (16 tokens x 8 channels, 5 classes); its small shift base keeps the shift >= 1.
SMODEL="$SRC/tests/goldens/sample/micro_model.safetensors"
sample_refuses() {  # sample_refuses REGEX [--model M] ARGS...
  local regex=$1 model=$SMODEL; shift
  if [ "$1" = --model ]; then model=$2; shift 2; fi
  expect_error "$regex" -- "$RAE" sample --model "$model" --out o "$@"
  [ ! -e o ] || fail "--out created before the error"
}
SB=(--shift-base 16)
case_sample_cfg_scale_nan() { sample_refuses "--cfg-scale must be a finite number" --num-per-class 1 --cfg-scale nan "${SB[@]}"; }
case_sample_cfg_scale_inf() { sample_refuses "--cfg-scale must be a finite number" --num-per-class 1 --cfg-scale inf "${SB[@]}"; }
case_sample_cfg_scale_below_one() { sample_refuses "--cfg-scale must be >= 1" --num-per-class 1 --cfg-scale 0.5 "${SB[@]}"; }
case_sample_shift_base_zero() { sample_refuses "--shift-base must be > 0" --num-per-class 1 --shift-base 0; }
case_sample_shift_base_negative() { sample_refuses "--shift-base must be > 0" --num-per-class 1 --shift-base -3; }
case_sample_shift_base_nan() { sample_refuses "--shift-base must be a finite number" --num-per-class 1 --shift-base nan; }
case_sample_labels_empty_item() { sample_refuses "--labels: empty item 2 in '1,,2'" --labels 1,,2 "${SB[@]}"; }
case_sample_labels_not_integer() { sample_refuses "--labels: 'x' \(item 2 of '1,x'\) is not an integer" --labels 1,x "${SB[@]}"; }
case_sample_labels_trailing_comma() { sample_refuses "--labels: trailing ','" --labels 1,2, "${SB[@]}"; }
case_sample_label_out_of_range() { sample_refuses "--labels: 6 is not a class of the model \(0..4, or 5 for the null class\)" --labels 6 "${SB[@]}"; }
case_sample_labels_with_num_per_class() { sample_refuses "do not combine it with --classes or --num-per-class" --labels 1 --num-per-class 2 "${SB[@]}"; }
case_sample_classes_range_backwards() { sample_refuses "--classes: range '3-1' runs backwards" --classes 3-1 --num-per-class 1 "${SB[@]}"; }
case_sample_class_out_of_range() { sample_refuses "--classes: 7 is not a class of the model" --classes 0,7 --num-per-class 1 "${SB[@]}"; }
case_sample_class_negative() { sample_refuses "is not a class index" --classes -2 --num-per-class 1 "${SB[@]}"; }
case_sample_classes_without_num_per_class() { sample_refuses "give --num-per-class" --classes 1 "${SB[@]}"; }
case_sample_num_per_class_zero() { sample_refuses "--num-per-class must be > 0" --num-per-class 0 "${SB[@]}"; }
case_sample_cfg_interval_empty() { sample_refuses "t_min < t_max" --num-per-class 1 --cfg-scale 2 --cfg-interval 0.6,0.2 "${SB[@]}"; }
case_sample_cfg_interval_malformed() { sample_refuses "--cfg-interval: '0.2' is not T_MIN,T_MAX" --num-per-class 1 --cfg-interval 0.2 "${SB[@]}"; }
case_sample_sde_sbdm() { sample_refuses "NaN" --num-per-class 1 --sampler sde --sde-diffusion SBDM "${SB[@]}"; }
case_sample_unknown_sampler() { sample_refuses "unknown sampler 'dopri5'" --num-per-class 1 --sampler dopri5 "${SB[@]}"; }
case_sample_steps_one() { sample_refuses "--steps must be >= 2" --num-per-class 1 --steps 1 "${SB[@]}"; }
case_sample_guide_without_cfg() { sample_refuses "--guide-model needs --cfg-scale > 1" --num-per-class 1 --guide-model "$SRC/tests/goldens/sample/micro_guide.safetensors" "${SB[@]}"; }
case_sample_decoder_latent_mismatch() { sample_refuses "random:ViT-tiny decodes 256 x 8 latents but the model samples 16 x 8" --num-per-class 1 --decoder random:ViT-tiny --stats none "${SB[@]}"; }
case_sample_decoder_is_not_a_decoder() { sample_refuses "micro_model.safetensors: not a decoder state dict" --num-per-class 1 --decoder "$SMODEL" "${SB[@]}"; }
case_sample_model_missing() { sample_refuses "--model nope.safetensors: no such file or directory" --model nope.safetensors --num-per-class 1 "${SB[@]}"; }
case_sample_stats_wrong_shape() {
  "$RAE" synth-cache --out c --samples 16 --grid 2 --channels 4 --shard-size 16 > /dev/null
  sample_refuses "c/stats.safetensors.*expected .*\(16, 8\)" --num-per-class 1 --decoder random:ViT-micro --stats c/stats.safetensors "${SB[@]}"
}
# A run directory without a valid checkpoint (a corrupt one is named and skipped) is refused.
case_sample_run_dir_without_checkpoint() {
  mkdir -p run/checkpoints/step-0000010 && echo '{' > run/checkpoints/step-0000010/manifest.json
  sample_refuses "--model run: not a safetensors file, a checkpoint directory or a run directory with a valid checkpoint" --model run --num-per-class 1 "${SB[@]}"
}
# A finished job directory rerun with other settings is refused, naming the setting, and left as
# it is; the same settings rewrite nothing but the final outputs' job.json (resume of a complete
# job).
case_sample_rerun_other_settings() {
  "$RAE" sample --model "$SMODEL" --labels 0,1,2 --steps 3 "${SB[@]}" --out o > /dev/null 2>&1 ||
    fail "first run"
  local before; before=$(snapshot o)
  expect_error "holds a sampling job with other settings \(seed: was 0, now 1\)" \
    -- "$RAE" sample --model "$SMODEL" --labels 0,1,2 --steps 3 "${SB[@]}" --seed 1 --out o
  same o "$before"
}
# `rae decode` of a latents file without statistics needs --stats (or --stats none).
case_decode_latents_without_stats() {
  "$RAE" sample --model "$SMODEL" --labels 0,1 --steps 3 "${SB[@]}" --stats none --out s > /dev/null 2>&1 ||
    fail "sample"
  expect_error "s/latents.npz: carries no latent statistics; give --stats" \
    -- "$RAE" decode --decoder random:ViT-micro --latents s/latents.npz --out d
  [ ! -e d ] || fail "--out created before the error"
}
# rFID needs Inception weights: --ref without --inception is refused before any work.
case_reconstruct_ref_without_inception() {
  expect_error "--ref needs --inception" \
    -- "$RAE" reconstruct --encoder tiny-random --decoder random:ViT-tiny --stats none --data d \
    --out r --ref ref.npz
  [ ! -e r ] || fail "--out created before the error"
}

declare -F "case_$CASE" > /dev/null || { echo "unknown case $CASE"; exit 2; }
"case_$CASE"
echo PASS
