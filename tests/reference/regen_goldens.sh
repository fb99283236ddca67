#!/usr/bin/env bash
# Regenerates every committed golden file: runs each tests/reference/make_*_golden.py and
# make_*_goldens.py with the Python of $REPO/.venv (created if missing: torch, numpy,
# safetensors, h5py, transformers, torch-fidelity, torchmetrics, torchdiffeq, lpips and timm from
# PyPI).
# Usage: tests/reference/regen_goldens.sh [--venv DIR] [--list]   (default DIR: $REPO/.venv)
#   --list  prints the commands without running them.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO/.venv"
LIST=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --venv) VENV="$2"; shift 2 ;;
    --list) LIST=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

# Scripts that make several golden sets run once per argument list ("" = no arguments).
declare -A RUNS=([make_dit_golden.py]=$'\nplain')

commands=()
for script in "$REPO"/tests/reference/make_*_golden.py "$REPO"/tests/reference/make_*_goldens.py; do
  [[ -e "$script" ]] || continue
  name="$(basename "$script")"
  while IFS= read -r args; do
    commands+=("$script${args:+ $args}")
  done <<< "${RUNS[$name]:-}"
done
if [[ $LIST == 1 ]]; then
  printf '%s\n' "${commands[@]}"
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet torch numpy safetensors h5py transformers torch-fidelity torchmetrics torchdiffeq \
    lpips timm
fi
PY="$VENV/bin/python"
"$PY" -c 'import torch, numpy, safetensors; print("torch", torch.__version__, "numpy", numpy.__version__, "safetensors", safetensors.__version__)' >&2
status=0
for cmd in "${commands[@]}"; do
  echo "== ${cmd#"$REPO"/}" >&2
  # shellcheck disable=SC2086  # arguments are plain words
  "$PY" $cmd || { echo "FAILED: $cmd" >&2; status=1; }
done
exit $status
