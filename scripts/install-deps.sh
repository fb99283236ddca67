#!/usr/bin/env bash
# Installs the Debian packages the build and tests need (idempotent; quiet when all are present).
set -euo pipefail
PKGS=(build-essential cmake ninja-build ccache pkg-config git
      libopenmpi-dev openmpi-bin libhdf5-dev hdf5-tools libtbb-dev libboost-program-options-dev
      libopenblas-dev nlohmann-json3-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev libgtest-dev libgmock-dev
      libbenchmark-dev python3 python3-venv)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
