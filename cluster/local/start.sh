#!/usr/bin/env bash
# Starts a real single-node Slurm cluster (munged, slurmctld, slurmd from Debian's packages) whose
# whole state lives in one temporary directory, for the tests and for trying the batch scripts
# before a real cluster:
#   eval "$(cluster/local/start.sh)"       # prints the exports below on stdout
#   sbatch ...; squeue; scontrol ...
#   cluster/local/stop.sh                  # uses $RAE_SLURM_DIR; leaves no process behind
# stdout: `export RAE_SLURM_DIR=DIR SLURM_CONF=DIR/slurm.conf`; everything else goes to stderr.
#
# Settings (environment):
#   RAE_SLURM_DIR    state directory (default: a new mktemp -d under ${TMPDIR:-/tmp}); must not
#                    hold a running cluster
#   RAE_SLURM_CPUS   CPUs the node advertises (default 4: enough for 2-4 ranks; more than the
#                    machine has is fine, Slurm is told to trust the config and the kernel
#                    time-slices the ranks)
#   RAE_SLURM_REQUEUE_DELAY  seconds a requeued job waits before it is eligible again (Slurm's
#                    cred_expire; default 120 as on most clusters, the tests use 5)
#   RAE_SLURM_KILL_WAIT  seconds between SIGTERM and SIGKILL when a job is cancelled, requeued or
#                    preempted (default 30, Slurm's default)
#
# What a container allows shapes the config: no systemd (the daemons are started directly and
# daemonize themselves), cgroups may be read-only or absent, so processes are tracked by parent
# pid and process group (proctrack/linuxproc), no task binding (task/none), no accounting
# database (accounting_storage/none; `scontrol show job` instead of sacct). Ports are picked
# free at start, so several clusters (several checkouts, CI) can run side by side; munged gets
# its own key and socket in the state directory, so the system's munge is neither used nor
# needed. Run as the user who will submit jobs (root in the tests); slurmd runs jobs as that user.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
log() { echo "local-slurm: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

for exe in munged munge slurmctld slurmd sbatch scontrol; do
  command -v "$exe" >/dev/null ||
    die "'$exe' not found: install the Debian packages munge slurmctld slurmd slurm-client (scripts/install-deps.sh)"
done

CPUS=${RAE_SLURM_CPUS:-4}
KILL_WAIT=${RAE_SLURM_KILL_WAIT:-30}
# A requeued job waits cred_expire + 1 s before it may start again (Slurm's default 120 s).
CRED_EXPIRE=${RAE_SLURM_REQUEUE_DELAY:-120}
if [ -n "${RAE_SLURM_DIR:-}" ]; then
  DIR=$RAE_SLURM_DIR
  mkdir -p "$DIR"
  [ ! -e "$DIR/slurmctld.pid" ] || ! kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null ||
    die "$DIR already holds a running cluster (cluster/local/stop.sh first)"
else
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/rae-slurm.XXXXXX")
fi
DIR=$(cd "$DIR" && pwd)
# munged refuses a socket whose directories others cannot traverse, and a key others can read.
chmod 755 "$DIR"
mkdir -p "$DIR/munge/run" "$DIR/munge/etc" "$DIR/ctld" "$DIR/spool" "$DIR/log" "$DIR/tmp"
chmod 755 "$DIR/munge" "$DIR/munge/run"
chmod 700 "$DIR/munge/etc"

# A TCP port nobody listens on (read from /proc: no ss/netstat needed), distinct from $1.
free_port() {
  local avoid=${1:-0} p hex
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 40000))
    [ "$p" != "$avoid" ] || continue
    hex=$(printf ':%04X ' "$p")
    if ! grep -q "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free TCP port found"
}
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port "$CTLD_PORT")
HOST=$(hostname -s)
USER_NAME=$(id -un)

# Whatever fails from here on, nothing stays running.
started=0
on_exit() {
  [ "$started" = 1 ] && return
  log "start failed; logs in $DIR/log"
  RAE_SLURM_KEEP=1 "$HERE/stop.sh" "$DIR" >&2 || true
}
trap on_exit EXIT

# --- munge: a fresh key, our own socket ---------------------------------------------------------
MUNGE_SOCKET=$DIR/munge/run/munge.socket
if [ ! -s "$DIR/munge/etc/munge.key" ]; then
  head -c 1024 /dev/urandom >"$DIR/munge/etc/munge.key"
  chmod 400 "$DIR/munge/etc/munge.key"
fi
munged --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/etc/munge.key" \
  --log-file="$DIR/log/munged.log" --pid-file="$DIR/munge/run/munged.pid" \
  --seed-file="$DIR/munge/etc/munged.seed" ||
  die "munged did not start (see $DIR/log/munged.log)"

# --- slurm.conf ----------------------------------------------------------------------------------
: >"$DIR/plugstack.conf"  # no SPANK plugins (the system's list may name absent ones)
cat >"$DIR/slurm.conf" <<EOF
# Written by cluster/local/start.sh: a single-node cluster in $DIR.
ClusterName=rae-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$USER_NAME
SlurmdUser=$USER_NAME
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=$CRED_EXPIRE
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$DIR/plugstack.conf
TmpFS=$DIR/tmp
MailProg=/bin/true
# No cgroups, no systemd: track job processes by parent pid, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
# The node may advertise more CPUs than the machine has (ranks are time-sliced).
SlurmdParameters=config_overrides
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,sched_min_interval=100000,bf_interval=1
# Requeued and preempted jobs come back: batch jobs are requeueable unless they say otherwise.
JobRequeue=1
KillWait=$KILL_WAIT
ReturnToService=2
# Finished jobs stay visible to 'scontrol show job' for 30 minutes (no accounting database).
MinJobAge=1800
InactiveLimit=0
Waittime=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF

export SLURM_CONF=$DIR/slurm.conf RAE_SLURM_DIR=$DIR

slurmctld -i -f "$SLURM_CONF" || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
slurmd -f "$SLURM_CONF" || die "slurmd did not start (see $DIR/log/slurmd.log)"

# Ready when the node is idle (slurmd registered with slurmctld).
for i in $(seq 150); do
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
  case "$state" in
    idle*) break ;;
  esac
  [ "$i" -lt 150 ] || die "the node did not become idle in 30 s (state '$state'; see $DIR/log)"
  sleep 0.2
done
started=1
log "cluster up in $DIR (node $HOST, $CPUS CPUs, slurmctld port $CTLD_PORT)"
echo "export RAE_SLURM_DIR=$DIR SLURM_CONF=$DIR/slurm.conf"
