#!/usr/bin/env bash
# Stops the local cluster started by cluster/local/start.sh and leaves no Slurm or munge process
# of it behind: jobs are cancelled (their processes killed), then slurmd, slurmctld and munged are
# stopped; whatever still runs from this cluster after that is killed.
#   cluster/local/stop.sh [DIR]      (default: $RAE_SLURM_DIR)
# Set RAE_SLURM_KEEP=1 to keep DIR (logs, state) instead of removing it.
# Exits 0 when nothing of the cluster runs any more (also when it was not running).
set -euo pipefail
log() { echo "local-slurm: $*" >&2; }
DIR=${1:-${RAE_SLURM_DIR:-}}
[ -n "$DIR" ] || {
  log "usage: $0 DIR (or set RAE_SLURM_DIR)"
  exit 2
}
[ -d "$DIR" ] || {
  log "$DIR does not exist; nothing to stop"
  exit 0
}
DIR=$(cd "$DIR" && pwd)
export SLURM_CONF=$DIR/slurm.conf

pid_of() { [ -s "$1" ] && cat "$1" || true; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Processes of this cluster: its daemons (slurmctld, slurmd, munged and their helpers, named by
# the state directory on their command line or in their environment), its slurmstepds, and the
# processes of its jobs (SLURM_JOB_ID plus this cluster's SLURM_CONF in their environment). Not
# the shells that merely talk to it (they have RAE_SLURM_DIR/SLURM_CONF but no job id), and never
# an ancestor of this script.
ancestors=" $$ "
a=$$
while [ "$a" -gt 1 ] 2>/dev/null; do
  a=$(awk '/^PPid:/{print $2}' "/proc/$a/status" 2>/dev/null || echo 0)
  ancestors="$ancestors$a "
done
cluster_pids() {
  local p env comm
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    case "$ancestors" in *" $p "*) continue ;; esac
    [ "$p" != "$BASHPID" ] || continue
    comm=$(cat "/proc/$p/comm" 2>/dev/null) || continue
    env=$({ tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null) || continue
    case "$comm" in
      slurmctld | slurmd | slurmstepd | slurmscriptd | munged)
        if grep -qxF -e "RAE_SLURM_DIR=$DIR" -e "SLURM_CONF=$DIR/slurm.conf" <<<"$env" ||
          { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF "$DIR/"; then
          echo "$p"
        fi
        ;;
      *)
        if grep -q '^SLURM_JOB_ID=' <<<"$env" && grep -qxF "SLURM_CONF=$DIR/slurm.conf" <<<"$env"; then
          echo "$p"
        fi
        ;;
    esac
  done
}

CTLD=$(pid_of "$DIR/slurmctld.pid")
SLURMD=$(pid_of "$DIR/slurmd.pid")
MUNGED=$(pid_of "$DIR/munge/run/munged.pid")

# 1. Cancel every job (SIGKILL now: this is a shutdown) while the controller still runs.
if alive "$CTLD" && command -v squeue >/dev/null; then
  jobs=$(squeue -h -o '%i' 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    # shellcheck disable=SC2086
    scancel -f -s KILL $jobs 2>/dev/null || true
    # shellcheck disable=SC2086
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 50); do
      [ -z "$(squeue -h -o '%i' 2>/dev/null || true)" ] && break
      sleep 0.2
    done
  fi
fi

# 2. The daemons: SIGTERM, then SIGKILL after 10 s.
for p in "$SLURMD" "$CTLD"; do alive "$p" && kill -TERM "$p" 2>/dev/null || true; done
if alive "$MUNGED"; then
  munged --stop --socket="$DIR/munge/run/munge.socket" >/dev/null 2>&1 || kill -TERM "$MUNGED" 2>/dev/null || true
fi
for _ in $(seq 100); do
  alive "$SLURMD" || alive "$CTLD" || alive "$MUNGED" || break
  sleep 0.1
done
for p in "$SLURMD" "$CTLD" "$MUNGED"; do alive "$p" && kill -KILL "$p" 2>/dev/null || true; done

# 3. Anything left of this cluster (a slurmstepd, a job's task that escaped): killed.
left=$(cluster_pids)
if [ -n "$left" ]; then
  log "killing leftover processes: $(echo $left)"
  # shellcheck disable=SC2086
  kill -KILL $left 2>/dev/null || true
  sleep 0.2
fi
left=$(cluster_pids)
# Zombies (already dead, waiting for a parent that is not ours) do not count.
still=""
for p in $left; do
  st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || echo X)
  [ "$st" = Z ] || [ "$st" = X ] || still="$still $p"
done
if [ -n "$still" ]; then
  log "error: processes of $DIR still running:$still"
  exit 1
fi
if [ "${RAE_SLURM_KEEP:-0}" = 1 ]; then
  log "stopped; state kept in $DIR"
else
  rm -rf "$DIR"
  log "stopped; removed $DIR"
fi
