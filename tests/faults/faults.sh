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
# signal) and print every REGEX (grep -E, output of both streams).
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
}
# A listing of every file under a directory with its sha256 (byte-identity checks).
snapshot() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }
same() { [ "$(snapshot "$1")" = "$2" ] || fail "$1 changed"; echo "  $1: byte-identical"; }
lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }
T=(train --config "$SRC/jobs/tiny.cfg" --log.progress=false)
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
  [ "$(ls c/*.h5 | wc -l)" = 3 ] || fail "expected 3 shards"
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
  [ "$(ls c/*.h5 | wc -l)" = 4 ] || fail "expected 4 shards after --overwrite"
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
    "${MPIRUN[@]}" -np 3 "${J[@]}" --out c > run$attempt.log 2>&1 &
    local launcher=$! ranks=() killed=0
    for _ in $(seq 100); do  # until mpirun has started the 3 ranks
      ranks=($(pgrep -P $launcher)); [ ${#ranks[@]} -ge 3 ] && break; sleep 0.05
    done
    local ms=$(( RANDOM * clean_ms / 32768 ))
    sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
    if kill -0 $launcher 2> /dev/null && [ ${#ranks[@]} -ge 3 ]; then
      local victim=${ranks[$(( RANDOM % 3 ))]}
      local done_shards; done_shards=$(ls c/*.h5 2> /dev/null | wc -l)
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
