#!/usr/bin/env bash
# Regenerates every committed golden file: runs each tests/reference/make_*_goldens.py with the
# Python of $REPO/.venv (created if missing: torch, numpy, safetensors, h5py from PyPI).
# Usage: tests/reference/regen_goldens.sh [--venv DIR]     (default DIR: $REPO/.venv)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO/.venv"
if [[ "${1:-}" == "--venv" ]]; then VENV="$2"; fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip
  "$VENV/bin/pip" install --quiet torch numpy safetensors h5py
fi
PY="$VENV/bin/python"
"$PY" -c 'import torch, numpy, safetensors; print("torch", torch.__version__, "numpy", numpy.__version__, "safetensors", safetensors.__version__)' >&2
status=0
for script in "$REPO"/tests/reference/make_*_goldens.py; do
  echo "== $(basename "$script")" >&2
  "$PY" "$script" || { echo "FAILED: $script" >&2; status=1; }
done
exit $status
