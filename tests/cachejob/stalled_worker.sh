#!/usr/bin/env bash
# `rae cache` waits for other ranks only through the communicator's watchdog: a worker stopped
# (SIGSTOP) mid-job must not hang the job. The coordinator's wait for that worker fires after
# --timeout-s, reports the stuck peer and ends the whole job with a non-zero exit.
#   stalled_worker.sh RAE WORK   (MPIRUN may override the launcher)
set -u
RAE="$1"; WORK="$2"
MPIRUN="${MPIRUN:-mpirun} --oversubscribe --bind-to none"
rm -rf "$WORK"; mkdir -p "$WORK"
"$RAE" make-dataset --out "$WORK/ds" --classes 10 --per-class 40 --size 48 > /dev/null 2>&1 || exit 1
$MPIRUN -np 3 "$RAE" cache --data "$WORK/ds" --out "$WORK/cache" --encoder tiny-random \
  --encoder-input 112 --shard-size 8 --batch 8 --threads 1 --timeout-s 3 > "$WORK/log" 2>&1 &
launcher=$!
# Once the first shard is written (every rank is past MPI start-up), stop the last worker.
for _ in $(seq 600); do
  ls "$WORK"/cache/*.h5 > /dev/null 2>&1 && break
  kill -0 "$launcher" 2> /dev/null || { cat "$WORK/log"; echo "FAIL: job ended early"; exit 1; }
  sleep 0.05
done
victim=$(pgrep -P "$launcher" | sed -n 3p)
[ -n "$victim" ] || { echo "FAIL: no rank process found"; kill -9 "$launcher"; exit 1; }
stopped=$(date +%s%N)
kill -STOP "$victim"
for _ in $(seq 600); do kill -0 "$launcher" 2> /dev/null || break; sleep 0.1; done
if kill -0 "$launcher" 2> /dev/null; then
  echo "FAIL: job still running 60 s after the stop"; kill -CONT "$victim"; kill -9 "$launcher"; exit 1
fi
wait "$launcher"; rc=$?
ms=$(( ($(date +%s%N) - stopped) / 1000000 ))
tail -n 12 "$WORK/log"
echo "stopped pid $victim; job exit code $rc after $ms ms"
[ "$rc" -ne 0 ] || { echo "FAIL: exit code 0"; exit 1; }
grep -q "rae dist watchdog" "$WORK/log" || { echo "FAIL: no watchdog report"; exit 1; }
echo PASS
