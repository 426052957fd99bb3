#!/usr/bin/env bash
# Downloads the Debian packages denserl links against (jansson, PCRE2, OpenBLAS with OpenMP and the
# Fortran runtime it needs) into .gpudeps/debs, for GPU machines that cannot install packages
# or reach a registry: benchmarks/gpu_check.sh unpacks them into .gpudeps/root and builds
# against them (nothing is installed system-wide). Run on a machine with apt, then copy the
# folder along with the checkout.
set -eu
cd "$(dirname "$0")/.."
mkdir -p .gpudeps/debs
cd .gpudeps/debs
apt-get download libjansson4 libjansson-dev libopenblas0-openmp libopenblas-openmp-dev \
    libopenblas-dev libgfortran5 libquadmath0 libpcre2-dev libpcre2-8-0
ls -1
