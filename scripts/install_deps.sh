#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages denserl builds against, only those missing.
# Run as root (or with sudo available). Idempotent: a no-op once everything is there.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libjansson-dev libopenblas-openmp-dev
      openmpi-bin libopenmpi-dev python3)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
