#!/usr/bin/env bash
# Creates (once) the Python environment the test suite uses and prints its interpreter path.
# The environment lives in ${RAE_PYENV_DIR:-$HOME/.cache/rae/pyenv-<hash>}, keyed by the hash of
# tests/python/requirements.txt, so fresh clones on one machine share it and a change of
# requirements makes a new one. Packages come from PyPI; nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=tests/python/requirements.txt
hash=$(sha256sum "$REQ" | cut -c1-12)
DIR=${RAE_PYENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rae/pyenv-$hash}
if [ ! -x "$DIR/bin/python" ] || [ ! -f "$DIR/.complete" ]; then
  echo "python-env: creating $DIR" >&2
  rm -rf "$DIR"
  python3 -m venv "$DIR" >&2
  "$DIR/bin/pip" install --quiet --disable-pip-version-check -r "$REQ" >&2
  touch "$DIR/.complete"
fi
echo "$DIR/bin/python"
