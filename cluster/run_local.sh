#!/usr/bin/env bash
# Multi-rank training on one machine under mpirun (the same code path a cluster job uses).
#   cluster/run_local.sh NP CONFIG CACHE RUN_DIR [rae train options...]
# e.g. cluster/run_local.sh 4 jobs/tiny.cfg out/demo/cache out/run4 --shard full_shard --steps 30
# Ranks beyond the core count are oversubscribed; a rerun on the same RUN_DIR resumes (also with
# another NP or --shard: checkpoints are re-sharded).
set -euo pipefail
[ $# -ge 4 ] || { sed -n 2,6p "$0"; exit 2; }
NP=$1 CONFIG=$2 CACHE=$3 RUN=$4
shift 4
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RAE=${RAE:-$ROOT/build/src/rae}
[ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun --oversubscribe -np "$NP" "$RAE" train --config "$CONFIG" --cache "$CACHE" --run-dir "$RUN" "$@"
