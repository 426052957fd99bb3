#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages denserl builds against, only those missing.
# Run as root (or with sudo available). Idempotent: a no-op once everything is there.
# This file owns both package lists, so docker/Dockerfile (and tests/test_dockerfile.sh)
# take them from here instead of keeping their own:
#   scripts/install_deps.sh                     build and test dependencies (make deps)
#   scripts/install_deps.sh --runtime           what a built denserl needs to run, no compilers
#   scripts/install_deps.sh --fuzz              clang and its libFuzzer runtime (make fuzz)
#   scripts/install_deps.sh --list [--runtime]  print the list, one package a line, install nothing
set -euo pipefail
build_pkgs=(build-essential cmake pkg-config libjansson-dev libpcre2-dev libopenblas-openmp-dev
            openmpi-bin libopenmpi-dev python3)
# the shared libraries behind the -dev packages above, plus mpirun and python3 for the scripts
runtime_pkgs=(libjansson4 libpcre2-8-0 libopenblas0-openmp libgomp1 openmpi-bin python3)
# tests/fuzz/run.sh: clang with the fuzzer and sanitizer runtimes
fuzz_pkgs=(clang libclang-rt-dev)
pkgs=("${build_pkgs[@]}")
list=0
for arg in "$@"; do
    case "$arg" in
        --runtime) pkgs=("${runtime_pkgs[@]}") ;;
        --fuzz) pkgs=("${fuzz_pkgs[@]}") ;;
        --list) list=1 ;;
        *) echo "install_deps.sh: unknown option '$arg' (expected --runtime or --fuzz, and/or --list)" >&2
           exit 2 ;;
    esac
done
if [ "$list" -eq 1 ]; then
    printf '%s\n' "${pkgs[@]}"
    exit 0
fi
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
