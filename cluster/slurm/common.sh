# shellcheck shell=bash
# Shared by the batch scripts of cluster/slurm/ (sourced, not run): where rae is, how ranks are
# launched inside the allocation, the NCCL/OpenMPI environment, and preemption handling.
# Every setting is an environment variable with a default; nothing here is edited per run.
#
# Launcher (RAE_LAUNCHER=auto|srun|mpirun, default auto):
#   srun    srun --mpi=pmix: Slurm starts every rank itself (one task per GPU), signals reach
#           the ranks directly, and a rank's exit status is the step's.
#   mpirun  Open MPI's mpirun inside the allocation (it reads the node list from Slurm and starts
#           its daemons with srun). For clusters whose Slurm lacks PMIx.
#   auto    srun when `srun --mpi=list` offers pmix and Open MPI was built with PMIx support,
#           else mpirun.
# Extra launcher arguments: RAE_SRUN_ARGS, RAE_MPIRUN_ARGS (word-split).
#
# Ranks and GPUs: one rank per GPU. Ask for --ntasks-per-node equal to the GPUs per node
# (--gpus-per-node); every rank sees the node's GPUs and rae picks GPU (local rank % visible GPUs)
# (src/distributed: the rank's index among the ranks of its node), so with Slurm's block
# distribution rank r of a node drives GPU r. CPU threads per rank: --cpus-per-task.
#
# Network (explained in docs/operations.md):
#   RAE_NET_IFNAME   interface(s) for NCCL's bootstrap sockets and Open MPI's TCP traffic, e.g.
#                    ib0 or eth0 or ^docker,lo (default: the libraries choose)
#   NCCL_IB_HCA, NCCL_IB_GID_INDEX, NCCL_CROSS_NIC, ...: passed through untouched when set
#   NCCL_DEBUG       WARN unless set (INFO prints the rings/trees and the transport chosen)
# A hung or dead rank: rae's watchdog (rae train --dist.timeout_s, default 300 s) aborts the
# whole job instead of waiting forever; that is what NCCL_ASYNC_ERROR_HANDLING does for PyTorch.
#
# Preemption (rae_run_preemptible): SIGUSR1 to the batch shell (sbatch --signal=B:USR1@SECONDS,
# sent that long before the time limit) is forwarded to the ranks; rae checkpoints at the next
# step boundary (all ranks at the same step) and exits 75; the script then requeues the job
# (scontrol requeue, unless RAE_REQUEUE=0) and the requeued job resumes from that checkpoint on
# whatever nodes it gets. SIGTERM (scancel, preemption, scontrol requeue) reaches the ranks from
# Slurm itself; they checkpoint the same way within Slurm's KillWait, and Slurm decides whether
# the job comes back (the script never requeues a cancelled job).

RAE_EXIT_STOPPED=75  # rae train / rae decoder-train: stopped on a signal, checkpoint written

rae_log() { echo "[$(date '+%F %T')] ${RAE_JOB_KIND:-job} ${SLURM_JOB_ID:-}: $*" >&2; }
rae_die() {
  rae_log "error: $*"
  exit 2
}

# Prints the comment block at the top of script $1 (its usage).
rae_usage() {
  sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$1" | grep -v '^SBATCH' |
    awk 'NF { for (; blank > 0; blank--) print ""; print; next } { blank++ }'
}

# The rae executable: $RAE, else the checkout's build, else rae on PATH.
rae_find_binary() {
  if [ -n "${RAE:-}" ]; then
    :
  elif [ -x "$RAE_ROOT/build/src/rae" ]; then
    RAE=$RAE_ROOT/build/src/rae
  else
    RAE=$(command -v rae || true)
  fi
  [ -n "$RAE" ] && [ -x "$RAE" ] || rae_die "no rae executable: set RAE=/path/to/rae or build $RAE_ROOT"
  export RAE
}

# Open MPI built with PMIx client support (then srun --mpi=pmix can wire its ranks): always from
# Open MPI 5; in 4.x a pmix component other than the placeholders (isolated, flux, s1, s2).
rae_ompi_has_pmix() {
  command -v ompi_info >/dev/null || return 1
  local major
  major=$(ompi_info --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\..*/\1/p' | head -n 1)
  [ "${major:-0}" -ge 5 ] || ompi_info 2>/dev/null | grep -Eqi 'MCA pmix: (ext[0-9]+x|pmix[0-9]+x)'
}

# shellcheck disable=SC2034  # LAUNCH is used by the scripts that source this file
# Sets the array LAUNCH to the command that starts one rank per task of the allocation.
rae_select_launcher() {
  local mode=${RAE_LAUNCHER:-auto}
  if [ "$mode" = auto ]; then
    if srun --mpi=list 2>&1 | grep -qw pmix && rae_ompi_has_pmix; then mode=srun; else mode=mpirun; fi
  fi
  case "$mode" in
    srun)
      # --kill-on-bad-exit is left off: every rank exits 75 after a stop, and a rank that dies
      # is caught by rae's watchdog, which ends the others with a message naming it.
      # shellcheck disable=SC2206
      LAUNCH=(srun --mpi=pmix --export=ALL ${RAE_SRUN_ARGS:-})
      ;;
    mpirun)
      # --bind-to none: a rank runs oneTBB threads on all the CPUs Slurm gave it (binding to
      # one core would serialise them). Slurm's task layout gives the ranks per node.
      # shellcheck disable=SC2206
      LAUNCH=(mpirun --bind-to none ${RAE_MPIRUN_ARGS:-})
      [ "$(id -u)" = 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
      ;;
    *) rae_die "RAE_LAUNCHER=$mode: expected auto, srun or mpirun" ;;
  esac
  RAE_LAUNCHER_USED=$mode
}

# The NCCL / Open MPI / threading environment of the ranks (see the header).
rae_network_env() {
  export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
  if [ -n "${RAE_NET_IFNAME:-}" ]; then
    export NCCL_SOCKET_IFNAME=$RAE_NET_IFNAME
    # Open MPI's TCP transport and its daemons' control channel take a list without '^'.
    case "$RAE_NET_IFNAME" in
      ^*) export OMPI_MCA_btl_tcp_if_exclude=${RAE_NET_IFNAME#^} OMPI_MCA_oob_tcp_if_exclude=${RAE_NET_IFNAME#^} ;;
      *) export OMPI_MCA_btl_tcp_if_include=$RAE_NET_IFNAME OMPI_MCA_oob_tcp_if_include=$RAE_NET_IFNAME ;;
    esac
  fi
  # rae parallelises CPU work with oneTBB; a multi-threaded BLAS inside those tasks would
  # oversubscribe the CPUs.
  export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
}

# Where the job runs and what it got, for the log.
rae_log_allocation() {
  rae_log "nodes ${SLURM_JOB_NUM_NODES:-1} (${SLURM_JOB_NODELIST:-$(hostname -s)}), tasks ${SLURM_NTASKS:-1}" \
    "(${SLURM_TASKS_PER_NODE:-?} per node), GPUs per node ${SLURM_GPUS_PER_NODE:-${SLURM_GPUS_ON_NODE:-0}}," \
    "restart ${SLURM_RESTART_COUNT:-0}, launcher ${RAE_LAUNCHER_USED:-none}"
  if [ "${SLURM_GPUS_ON_NODE:-0}" -gt 0 ] 2>/dev/null && [ -n "${SLURM_TASKS_PER_NODE:-}" ] &&
    [ "${SLURM_GPUS_ON_NODE}" != "${SLURM_TASKS_PER_NODE%%(*}" ]; then
    rae_log "warning: ${SLURM_TASKS_PER_NODE} tasks per node but ${SLURM_GPUS_ON_NODE} GPUs per node; one rank per GPU is intended"
  fi
}

# rae_run_preemptible CMD...: runs CMD (the launcher with rae) in the background so that this
# shell can take signals meanwhile (bash runs a trap only between commands), forwards SIGUSR1 to
# it, and acts on its exit status:
#   0   done; the script exits 0
#   75  stopped on a signal with a checkpoint: after a SIGUSR1 (the time-limit warning) the job
#       requeues itself (RAE_REQUEUE=0: exits 75 instead, for --dependency=singleton chains);
#       after a SIGTERM it exits 75 and leaves the decision to Slurm (requeue or cancel)
#   else a failure; the script exits with it (no requeue: a crash would repeat)
rae_run_preemptible() {
  local pid="" rc=0 warned=0 terminated=0
  # shellcheck disable=SC2064
  trap 'warned=1; [ -n "$pid" ] && kill -USR1 "$pid" 2>/dev/null; rae_log "SIGUSR1: asked the ranks to checkpoint and stop"' USR1
  trap 'terminated=1; rae_log "SIGTERM: the ranks checkpoint and stop (Slurm signals them itself)"' TERM
  # A warning before the launch (a slow start): nothing to checkpoint beyond what exists, and a
  # rank signalled before it installs its handler would die, so requeue without starting.
  if [ "$warned" = 1 ]; then
    rc=$RAE_EXIT_STOPPED
  else
    "$@" &
    pid=$!
  fi
  # `wait` returns early (status > 128) when a trapped signal arrives; wait again until it ends.
  while [ -n "$pid" ]; do
    wait "$pid" && rc=0 || rc=$?
    kill -0 "$pid" 2>/dev/null || break
  done
  trap - USR1 TERM
  if [ "$rc" = 0 ]; then
    rae_log "finished"
    exit 0
  fi
  if [ "$rc" != "$RAE_EXIT_STOPPED" ]; then
    rae_log "failed with exit status $rc"
    exit "$rc"
  fi
  if [ "$warned" = 1 ] && [ "$terminated" = 0 ] && [ "${RAE_REQUEUE:-1}" != 0 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    rae_log "stopped with a checkpoint; requeueing job $SLURM_JOB_ID (it resumes from that checkpoint)"
    scontrol requeue "$SLURM_JOB_ID" || rae_die "scontrol requeue $SLURM_JOB_ID failed; resubmit to resume"
    exit 0
  fi
  rae_log "stopped with a checkpoint (exit status $RAE_EXIT_STOPPED); resubmitting resumes from it"
  exit "$RAE_EXIT_STOPPED"
}

# Common start of every script: finds the checkout (RAE_ROOT), rae, the launcher, the env.
rae_job_setup() {
  rae_find_binary
  rae_select_launcher
  rae_network_env
  rae_log_allocation
}
