#!/usr/bin/env bash
# Slurm operations on a real local Slurm (cluster/local), CPU, tiny configs.
#   slurm_ops.sh RAE SRC WORK PYTHON MODE
#   MODE start-stop   start and stop the local cluster twice in a row; after each stop no Slurm or
#                     munge process of it is left, and a job ran in between
#   MODE preempt      the cache job (mpirun launcher) on a generated dataset; a 2-rank training
#                     job (srun) preempted twice, once with the time-limit warning (SIGUSR1 to the
#                     batch shell, as --signal=B:USR1@N sends it) and once with `scontrol requeue`
#                     (SIGTERM): it requeues itself / is requeued, resumes and finishes; its final
#                     checkpoint equals an uninterrupted 2-rank run's byte for byte; metrics.jsonl
#                     and the TensorBoard events have each step exactly once (read back with the
#                     tensorboard package). Then a 2-rank job stopped by the warning with
#                     RAE_REQUEUE=0 and a 1-rank job chained with --dependency=singleton that
#                     resumes it and finishes (losses within 1e-4 of the 2-rank run's).
#                     The cluster is stopped at the end with nothing left running.
#   MODE decoder      stage-1 decoder training (cluster/slurm/decoder.sbatch, rae decoder-train,
#                     tiny config) on 2 ranks, preempted by the time-limit warning: it requeues
#                     itself, resumes and finishes; each step logged once, the final checkpoint
#                     byte-identical to an uninterrupted 2-rank run's, the reconstruction grid
#                     written.
# Exit 77 (skipped) when Slurm's daemons are not installed (scripts/install-deps.sh installs them).
set -euo pipefail
RAE=$(realpath "$1") SRC=$(realpath "$2") WORK=$3 PY=$4 MODE=$5
command -v slurmctld >/dev/null && command -v munged >/dev/null || {
  echo "SKIP: slurmctld/munged not installed (run scripts/install-deps.sh)"
  exit 77
}
# A cluster left by an earlier run that was killed (ctest timeout) is stopped before its
# directory goes.
[ ! -d "$WORK/slurm-state" ] || "$SRC/cluster/local/stop.sh" "$WORK/slurm-state" || true
rm -rf "$WORK"
mkdir -p "$WORK"
WORK=$(realpath "$WORK")
export RAE OPENBLAS_NUM_THREADS=1
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# One machine: shared memory and self transports only (no network probing).
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none

fail() {
  echo "FAIL: $*"
  exit 1
}
CLUSTER=""
stop_cluster() {
  [ -n "$CLUSTER" ] || return 0
  RAE_SLURM_KEEP=${KEEP:-0} "$SRC/cluster/local/stop.sh" "$CLUSTER"
  CLUSTER=""
}
on_exit() {
  rc=$?
  if [ $rc -ne 0 ] && [ -n "$CLUSTER" ]; then
    echo "--- logs of the failed run"
    tail -n 30 "$WORK"/*.out 2>/dev/null || true
    tail -n 15 "$CLUSTER"/log/slurmctld.log "$CLUSTER"/log/slurmd.log 2>/dev/null || true
  fi
  stop_cluster || true
}
trap on_exit EXIT
start_cluster() {
  eval "$(RAE_SLURM_DIR="$WORK/slurm-state" RAE_SLURM_REQUEUE_DELAY=5 RAE_SLURM_KILL_WAIT=30 \
    "$SRC/cluster/local/start.sh")"
  CLUSTER=$RAE_SLURM_DIR
}
# No process of cluster DIR (its daemons, slurmstepds or jobs' processes) may be running; zombies
# do not count.
assert_nothing_left() {
  local dir=$1 p comm st env left=""
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    comm=$(cat "/proc/$p/comm" 2>/dev/null) || continue
    st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || echo Z)
    [ "$st" != Z ] || continue
    env=$({ tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null) || continue
    case "$comm" in
      slurmctld | slurmd | slurmstepd | slurmscriptd | munged)
        if grep -qF "$dir" <<<"$env" || { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF "$dir"; then
          left="$left $p($comm)"
        fi
        ;;
      *) # a job's process (the test's own shells have SLURM_CONF but no job id)
        if grep -q '^SLURM_JOB_ID=' <<<"$env" && grep -qxF "SLURM_CONF=$dir/slurm.conf" <<<"$env"; then
          left="$left $p($comm)"
        fi
        ;;
    esac
  done
  [ -z "$left" ] || fail "processes of the cluster still running:$left"
  [ ! -e "$dir" ] || fail "$dir not removed"
}

field() { scontrol show job "$1" -o | tr ' ' '\n' | sed -n "s/^$2=//p"; }
# wait_state JOB STATE SECONDS
wait_state() {
  local s
  for _ in $(seq $(($3 * 5))); do
    s=$(field "$1" JobState)
    [ "$s" = "$2" ] && return 0
    case "$s" in FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY) break ;; esac
    sleep 0.2
  done
  scontrol show job "$1" || true
  fail "job $1 is $s, not $2, after $3 s"
}
# wait_restarts JOB N SECONDS: the job was requeued N times and runs again
wait_running_after() {
  for _ in $(seq $(($3 * 5))); do
    [ "$(field "$1" Restarts)" -ge "$2" ] && [ "$(field "$1" JobState)" = RUNNING ] && return 0
    sleep 0.2
  done
  scontrol show job "$1" || true
  fail "job $1 did not run again after requeue $2 within $3 s"
}
logged() { [ -f "$1/metrics.jsonl" ] && wc -l <"$1/metrics.jsonl" || echo 0; }
last_step() { [ -f "$1/metrics.jsonl" ] && tail -n 1 "$1/metrics.jsonl" | sed -n 's/.*"step":\([0-9]*\).*/\1/p' || echo 0; }
# wait_steps RUN N SECONDS: the run logged step >= N
wait_steps() {
  for _ in $(seq $(($3 * 10))); do
    [ "$(last_step "$1")" -ge "$2" ] 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$1 did not reach step $2 within $3 s"
}
# Each step 1..N exactly once in metrics.jsonl.
assert_steps_once() {
  local got
  got=$(sed -n 's/.*"step":\([0-9]*\).*/\1/p' "$1/metrics.jsonl" | tr '\n' ' ')
  [ "$got" = "$(seq -s ' ' 1 "$2") " ] || fail "$1/metrics.jsonl steps are [$got], expected 1..$2 once each"
  echo "$1/metrics.jsonl: steps 1..$2, each once"
}
last_checkpoint() {
  "$RAE" status "$1" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["last_checkpoint"]["path"])'
}

case "$MODE" in
  start-stop)
    for round in 1 2; do
      start_cluster
      dir=$CLUSTER
      [ "$(sinfo -h -o '%T' | head -1)" = idle ] || fail "node not idle"
      j=$(sbatch --parsable -n 2 -o "$WORK/hello-%j.out" --wrap 'srun hostname')
      wait_state "$j" COMPLETED 30
      [ "$(wc -l <"$WORK/hello-$j.out")" = 2 ] || fail "srun hostname printed $(cat "$WORK/hello-$j.out")"
      # A job still running at stop time is killed with the cluster.
      sbatch --parsable -n 1 -o /dev/null --wrap 'sleep 600' >/dev/null
      sleep 1
      stop_cluster
      assert_nothing_left "$dir"
      echo "round $round: started, ran a job, stopped, nothing left"
    done
    ;;

  preempt)
    start_cluster
    T=(--config "$SRC/jobs/tiny.cfg" --log.progress=false --checkpoint.every=20)
    STEPS=80
    # 1. Cache job over 2 ranks (coordinator + worker) under mpirun inside the allocation.
    "$RAE" make-dataset --out "$WORK/images" --classes 4 --per-class 8 --size 32 >/dev/null
    j=$(RAE_LAUNCHER=mpirun sbatch --parsable -n 2 -o "$WORK/cache-%j.out" "$SRC/cluster/slurm/cache.sbatch" \
      --data "$WORK/images" --out "$WORK/cache" --image-size 32 --encoder-input 112 --shard-size 16)
    wait_state "$j" COMPLETED 120
    grep -q "launcher mpirun" "$WORK/cache-$j.out" || fail "cache job did not use mpirun"
    grep -q "verifying" "$WORK/cache-$j.out" || fail "cache job did not verify"
    echo "cache job $j: $(grep -c '"file"' "$WORK/cache/manifest.json") shards, verified"
    T+=(--cache "$WORK/cache")

    # 2. The uninterrupted reference and the preempted run, both 2 ranks (srun --mpi=pmix).
    ref=$(sbatch --parsable -n 2 -J ref -o "$WORK/ref-%j.out" "$SRC/cluster/slurm/train.sbatch" \
      "${T[@]}" --run-dir "$WORK/ref" --steps $STEPS)
    j=$(sbatch --parsable -n 2 -J preempted -o "$WORK/train-%j.out" "$SRC/cluster/slurm/train.sbatch" \
      "${T[@]}" --run-dir "$WORK/run" --steps $STEPS)
    wait_steps "$WORK/run" 8 120
    scancel --batch --signal=USR1 "$j" # what --signal=B:USR1@N sends before the time limit
    wait_running_after "$j" 1 60
    wait_steps "$WORK/run" $(($(last_step "$WORK/run") + 3)) 120
    scontrol requeue "$j" # SIGTERM to everything, then Slurm requeues
    wait_running_after "$j" 2 90
    wait_state "$j" COMPLETED 180
    wait_state "$ref" COMPLETED 60
    out="$WORK/train-$j.out"
    [ "$(grep -c 'resumed from .*(step [0-9]*)' "$out")" = 2 ] || fail "expected 2 resumes in $out"
    grep -q "SIGUSR1: asked the ranks" "$out" || fail "no SIGUSR1 in $out"
    grep -q "requeueing job" "$out" || fail "the job did not requeue itself"
    grep -q "SIGTERM" "$out" || fail "no SIGTERM in $out"
    grep -q 'stop requested (SIGTERM' "$out" || fail "the ranks did not stop on SIGTERM"
    echo "job $j: preempted twice ($(grep -o '(step [0-9]*)' "$out" | tr '\n' ';')) and finished"
    assert_steps_once "$WORK/run" $STEPS
    assert_steps_once "$WORK/ref" $STEPS
    a=$(last_checkpoint "$WORK/ref") b=$(last_checkpoint "$WORK/run")
    [ "$(basename "$a")" = "$(basename "$b")" ] || fail "last checkpoints differ: $a vs $b"
    diff -r "$a" "$b" >/dev/null || fail "final checkpoint $b differs from the uninterrupted run's $a"
    echo "final checkpoint byte-identical to the uninterrupted run: $(ls "$b" | tr '\n' ' ')"
    "$PY" "$SRC/tests/slurm/check_events.py" "$WORK/run" $STEPS

    # 3. Resume on 1 rank: a singleton chain (no self-requeue), the second job with 1 task.
    a=$(RAE_REQUEUE=0 sbatch --parsable -n 2 -J chain -o "$WORK/chain-%j.out" "$SRC/cluster/slurm/train.sbatch" \
      "${T[@]}" --run-dir "$WORK/chain" --steps $STEPS)
    b=$(sbatch --parsable -n 1 -J chain --dependency=singleton -o "$WORK/chain-%j.out" \
      "$SRC/cluster/slurm/train.sbatch" "${T[@]}" --run-dir "$WORK/chain" --steps $STEPS)
    wait_steps "$WORK/chain" 8 120
    [ "$(field "$b" JobState)" = PENDING ] || fail "singleton job $b started before $a ended"
    scancel --batch --signal=USR1 "$a"
    wait_state "$a" FAILED 60 # exit 75: stopped with a checkpoint, not requeued
    [ "$(field "$a" ExitCode)" = 75:0 ] || fail "job $a exit code $(field "$a" ExitCode), expected 75:0"
    wait_state "$b" COMPLETED 180
    grep -q "tasks 1 " "$WORK/chain-$b.out" || fail "job $b did not run 1 task"
    grep -q "resumed from .*(step " "$WORK/chain-$b.out" || fail "job $b did not resume"
    assert_steps_once "$WORK/chain" $STEPS
    paste <(sed -n 's/.*"loss":\([^,}]*\).*/\1/p' "$WORK/ref/metrics.jsonl") \
      <(sed -n 's/.*"loss":\([^,}]*\).*/\1/p' "$WORK/chain/metrics.jsonl") |
      awk '{ d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > m) m = d }
           END { printf "2 -> 1 ranks: max relative loss difference %.3g\n", m; exit !(m <= 1e-4) }' ||
      fail "1-rank resume diverged from the 2-rank run"
    echo "job $a (2 ranks) stopped with exit 75; singleton job $b resumed it on 1 rank and finished"

    dir=$CLUSTER
    stop_cluster
    assert_nothing_left "$dir"
    echo "cluster stopped, nothing left"
    ;;
  decoder)
    start_cluster
    "$RAE" make-dataset --out "$WORK/images" --classes 4 --per-class 8 --size 24 >/dev/null
    D=(--config "$SRC/jobs/decoder-tiny.cfg" --data "$WORK/images" --encoder tiny-random
       --encoder.input_size=56 --images.image_size=16 --images.resize=20
       --train.global_batch_size=4 --loss.disc_update_start_epoch=0.5 --loss.disc_start_epoch=1
       --recon.every=0 --log.progress=false --checkpoint.every=10)
    STEPS=100
    ref=$(sbatch --parsable -n 2 -J dref -o "$WORK/dref-%j.out" "$SRC/cluster/slurm/decoder.sbatch" \
      "${D[@]}" --run-dir "$WORK/dref" --steps $STEPS)
    j=$(sbatch --parsable -n 2 -J decoder -o "$WORK/decoder-%j.out" "$SRC/cluster/slurm/decoder.sbatch" \
      "${D[@]}" --run-dir "$WORK/dec" --steps $STEPS)
    wait_steps "$WORK/dec" 12 120
    scancel --batch --signal=USR1 "$j" # what --signal=B:USR1@N sends before the time limit
    wait_running_after "$j" 1 60
    wait_state "$j" COMPLETED 240
    wait_state "$ref" COMPLETED 120
    out="$WORK/decoder-$j.out"
    grep -q 'resumed from .*(step [0-9]*)' "$out" || fail "the decoder job did not resume ($out)"
    grep -q "requeueing job" "$out" || fail "the decoder job did not requeue itself"
    assert_steps_once "$WORK/dec" $STEPS
    a=$(last_checkpoint "$WORK/dref") b=$(last_checkpoint "$WORK/dec")
    [ "$(basename "$a")" = "$(basename "$b")" ] || fail "last checkpoints differ: $a vs $b"
    diff -r "$a" "$b" >/dev/null || fail "final checkpoint $b differs from the uninterrupted run's $a"
    [ -s "$WORK/dec/reconstructions.png" ] || fail "no reconstruction grid in $WORK/dec"
    echo "decoder job $j: preempted ($(grep -o '(step [0-9]*)' "$out" | tr '\n' ';')), resumed, finished;" \
      "final checkpoint byte-identical to the uninterrupted run's"
    dir=$CLUSTER
    stop_cluster
    assert_nothing_left "$dir"
    ;;
  sample)
    # sample.sbatch: rae sample on 2 tasks, then rae eval with the given Inception weights
    # (synthetic here) against a reference made of the same samples.
    start_cluster
    S=(--model "$SRC/tests/goldens/sample/micro_model.safetensors" --decoder random:ViT-micro
       --stats none --classes 1,3 --num-per-class 4 --shift-base 16 --steps 4 --batch 4)
    "$RAE" sample "${S[@]}" --out "$WORK/ref" >/dev/null 2>&1 || fail "reference samples"
    j=$(sbatch --parsable -n 2 -J sample -o "$WORK/sample-%j.out" "$SRC/cluster/slurm/sample.sbatch" \
      --ref "$WORK/ref/samples.npz" --inception synthetic --eval-device cpu --out "$WORK/s" -- "${S[@]}")
    wait_state "$j" COMPLETED 240
    cmp "$WORK/ref/samples.npz" "$WORK/s/samples.npz" || fail "2 tasks sampled other images than 1"
    "$PY" - "$WORK/s/metrics.json" <<'PYEOF' || fail "metrics.json"
import json, math, sys
m = json.load(open(sys.argv[1]))
assert math.isfinite(m["fid"]) and abs(m["fid"]) < 1e-3, m["fid"]  # the same images
print("sample job metrics: FID", m["fid"], "IS", m["inception_score"])
PYEOF
    sbatch --wait -J noinc -o "$WORK/noinc-%j.out" "$SRC/cluster/slurm/sample.sbatch" \
      --ref "$WORK/ref/samples.npz" --out "$WORK/s2" -- "${S[@]}" >/dev/null 2>&1 &&
      fail "sample.sbatch without --inception succeeded"
    grep -q "missing --inception" "$WORK"/noinc-*.out || fail "no message naming --inception"
    dir=$CLUSTER
    stop_cluster
    assert_nothing_left "$dir"
    ;;
  *)
    echo "unknown mode $MODE"
    exit 2
    ;;
esac
echo PASS
