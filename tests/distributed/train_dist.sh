#!/usr/bin/env bash
# Distributed training acceptance on the tiny preset (synthetic data, 30 steps), under mpirun.
#   train_dist.sh RAE SRC WORK MODE
#   MODE losses-no_shard | losses-full_shard: np 1, 2, 4 under the strategy; every logged loss
#        within 1e-4 relative of the single-process run
#   MODE elastic: full_shard on 4 ranks to step 15, resumed on 2 ranks to 30 (within 1e-4 of the
#        single-process run); 4 ranks to 15 resumed on 4 is byte-identical to 4 ranks straight;
#        rae export of the sharded run has the single-process run's tensor names
#   MODE variants: np 4 under hybrid_shard (2 "nodes" of 2) and shard_grad_op within 1e-4; bf16
#        gradients (full_shard) within 5e-3 (bf16 rounds each gradient to 8 bits)
#   MODE memory: np 4, DiTDH-tiny-deep (8 equal blocks): the measured peak of parameter+gradient bytes per rank is
#        smaller under full_shard (ZeRO-3) than shard_grad_op (ZeRO-2) than no_shard; gradient
#        accumulation (2 micro-batches) under full_shard and shard_grad_op within 1e-4
#   MODE reshard: one checkpoint format for every layout: full_shard on 4 ranks (small buckets)
#        to step 10, resumed with no_shard in one process to 20, then hybrid_shard on 3 ranks to
#        30 (global batch 24 throughout): every loss within 1e-5 relative of an uninterrupted
#        single-process run, each step logged exactly once
#   MODE kill: one of 3 ranks is SIGKILLed mid-run: the job must exit non-zero within 60 s
set -euo pipefail
RAE="$1"; SRC="$2"; WORK="$3"; MODE="$4"
MPIRUN="${MPIRUN:-mpirun} --oversubscribe --bind-to none"
export OPENBLAS_NUM_THREADS=1
rm -rf "$WORK"; mkdir -p "$WORK"
T=(train --config "$SRC/jobs/tiny.cfg" --cache synthetic:256x8x32x10 --log.progress=false
   --checkpoint.every=1000)
losses() { sed -n 's/.*"loss":\([^,}]*\).*/\1/p' "$1/metrics.jsonl"; }
# close REF RUN [TOL]: every loss within TOL (1e-4) relative; prints the worst.
close() {
  paste <(losses "$1") <(losses "$2") | awk -v run="$2" -v tol="${3:-1e-4}" '
    { n++; d = ($1 - $2) / $1; if (d < 0) d = -d; if (d > m) m = d }
    END { printf "%s: %d losses, max relative difference %.3g\n", run, n, m;
          exit !(n == 30 && m <= tol) }'
}
reference() { "$RAE" "${T[@]}" --run-dir "$WORK/ref" --steps 30 2> "$WORK/ref.log"; }

case "$MODE" in
  losses-*)
    s="${MODE#losses-}"
    reference
    for np in 1 2 4; do
      $MPIRUN -np $np "$RAE" "${T[@]}" --shard "$s" --run-dir "$WORK/$s-$np" --steps 30 2> "$WORK/$s-$np.log"
      close "$WORK/ref" "$WORK/$s-$np"
    done
    grep -h "memory" "$WORK/$s-4.log" | head -4
    ;;
  elastic)
    reference
    S=(--shard full_shard)
    $MPIRUN -np 4 "$RAE" "${T[@]}" "${S[@]}" --run-dir "$WORK/e" --steps 15 2> "$WORK/e1.log"
    $MPIRUN -np 2 "$RAE" "${T[@]}" "${S[@]}" --run-dir "$WORK/e" --steps 30 2> "$WORK/e2.log"
    grep -q "(step 15)" "$WORK/e2.log"
    close "$WORK/ref" "$WORK/e"
    # Same world size: bit-exact against an uninterrupted run.
    $MPIRUN -np 4 "$RAE" "${T[@]}" "${S[@]}" --run-dir "$WORK/a" --steps 30 2> "$WORK/a.log"
    $MPIRUN -np 4 "$RAE" "${T[@]}" "${S[@]}" --run-dir "$WORK/b" --steps 15 2> "$WORK/b1.log"
    $MPIRUN -np 4 "$RAE" "${T[@]}" "${S[@]}" --run-dir "$WORK/b" --steps 30 2> "$WORK/b2.log"
    for k in 0 1 2 3; do
      f=checkpoints/step-0000030/shard-0000$k-of-00004.safetensors
      cmp "$WORK/a/$f" "$WORK/b/$f"
    done
    cmp <(losses "$WORK/a") <(losses "$WORK/b")
    echo "4 ranks: 15 + 15 byte-identical to 30"
    "$RAE" export --run-dir "$WORK/e" --out "$WORK/e.safetensors"
    "$RAE" export --run-dir "$WORK/e" --ema --out "$WORK/e-ema.safetensors"
    "$RAE" export --run-dir "$WORK/ref" --out "$WORK/ref.safetensors"
    names() { head -c 8 "$1" > /dev/null; LC_ALL=C grep -ao '"[A-Za-z0-9_.]*":{"dtype"' "$1" | sort; }
    cmp <(names "$WORK/e.safetensors") <(names "$WORK/ref.safetensors")
    echo "export: same tensor names as the single-process checkpoint"
    ;;
  variants)
    reference
    $MPIRUN -np 4 "$RAE" "${T[@]}" --shard hybrid_shard --dist.node_size=2 --run-dir "$WORK/h" \
      --steps 30 2> "$WORK/h.log"
    grep -q "2 node(s) of 2" "$WORK/h.log"
    close "$WORK/ref" "$WORK/h"
    $MPIRUN -np 4 "$RAE" "${T[@]}" --shard shard_grad_op --run-dir "$WORK/z2" --steps 30 2> "$WORK/z2.log"
    close "$WORK/ref" "$WORK/z2"
    $MPIRUN -np 2 "$RAE" "${T[@]}" --shard full_shard --dist.comm_dtype=bf16 --run-dir "$WORK/bf" \
      --steps 30 2> "$WORK/bf.log"
    close "$WORK/ref" "$WORK/bf" 5e-3
    ;;
  memory)
    declare -A bytes
    # 8 equal blocks (the tiny preset's head block is 56% of its parameters: a ZeRO-3 peak holds
    # two blocks' parameters and gradients, so it cannot go below no_shard there).
    for s in no_shard shard_grad_op full_shard; do
      $MPIRUN -np 4 "$RAE" "${T[@]}" --model.preset=DiTDH-tiny-deep --shard $s --run-dir "$WORK/m-$s" \
        --steps 3 2> "$WORK/m-$s.log"
      grep -h "memory per rank" "$WORK/m-$s.log" || true
      bytes[$s]=$(sed -n 's/.*measured peak params+grads per rank: \([0-9]*\) bytes.*/\1/p' "$WORK/m-$s.log")
      echo "$s: measured peak params+grads per rank ${bytes[$s]} bytes"
    done
    [ "${bytes[full_shard]}" -lt "${bytes[shard_grad_op]}" ]
    [ "${bytes[shard_grad_op]}" -lt "${bytes[no_shard]}" ]
    reference
    for s in full_shard shard_grad_op; do
      $MPIRUN -np 2 "$RAE" "${T[@]}" --shard $s --train.grad_accum_steps=2 --run-dir "$WORK/acc-$s" \
        --steps 30 2> "$WORK/acc-$s.log"
      close "$WORK/ref" "$WORK/acc-$s"
    done
    ;;
  reshard)
    B=(--train.global_batch_size=24)
    "$RAE" "${T[@]}" "${B[@]}" --run-dir "$WORK/ref" --steps 30 2> "$WORK/ref.log"
    $MPIRUN -np 4 "$RAE" "${T[@]}" "${B[@]}" --shard full_shard --dist.bucket_mb=0.02 \
      --run-dir "$WORK/r" --steps 10 2> "$WORK/r1.log"
    "$RAE" "${T[@]}" "${B[@]}" --shard no_shard --run-dir "$WORK/r" --steps 20 2> "$WORK/r2.log"
    grep -q "(step 10)" "$WORK/r2.log"
    $MPIRUN -np 3 "$RAE" "${T[@]}" "${B[@]}" --shard hybrid_shard --run-dir "$WORK/r" --steps 30 \
      2> "$WORK/r3.log"
    grep -q "(step 20)" "$WORK/r3.log"
    close "$WORK/ref" "$WORK/r" 1e-5
    steps=$(sed -n 's/.*"step":\([0-9]*\).*/\1/p' "$WORK/r/metrics.jsonl" | tr '\n' ' ')
    [ "$steps" = "$(seq -s ' ' 1 30) " ] || { echo "steps logged: $steps"; exit 1; }
    echo "4 ranks full_shard -> 1 rank no_shard -> 3 ranks hybrid_shard: each step logged once"
    ;;
  kill)
    $MPIRUN -np 3 "$RAE" "${T[@]}" --shard full_shard --run-dir "$WORK/k" --steps 100000 \
      --train.global_batch_size=24 --dist.timeout_s=20 > "$WORK/k.log" 2>&1 &
    launcher=$!
    # Wait until training runs (3 logged steps), then SIGKILL one rank (a child of mpirun).
    for _ in $(seq 300); do
      kill -0 "$launcher" 2> /dev/null || { cat "$WORK/k.log"; echo "FAIL: job ended early"; exit 1; }
      [ -f "$WORK/k/metrics.jsonl" ] && [ "$(wc -l < "$WORK/k/metrics.jsonl")" -ge 3 ] && break
      sleep 0.1
    done
    victim=$(pgrep -P "$launcher" | sed -n 2p)
    [ -n "$victim" ] || { echo "no rank process found"; kill -9 "$launcher"; exit 1; }
    killed=$(date +%s%N)
    kill -9 "$victim"
    set +e
    for _ in $(seq 1200); do kill -0 "$launcher" 2> /dev/null || break; sleep 0.1; done
    if kill -0 "$launcher" 2> /dev/null; then
      echo "FAIL: job still running 120 s after the kill"; kill -9 "$launcher"; exit 1
    fi
    wait "$launcher"; rc=$?
    set -e
    ms=$(( ($(date +%s%N) - killed) / 1000000 ))
    tail -n 8 "$WORK/k.log"
    echo "killed pid $victim at step $(wc -l < "$WORK/k/metrics.jsonl"); job exit code $rc after $ms ms"
    [ "$rc" -ne 0 ] || { echo "FAIL: exit code 0"; exit 1; }
    [ "$ms" -le 60000 ] || { echo "FAIL: took more than 60 s"; exit 1; }
    ;;
  *) echo "unknown mode $MODE"; exit 2 ;;
esac
echo PASS
