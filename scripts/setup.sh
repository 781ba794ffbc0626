#!/usr/bin/env bash
# Installs what is missing (Debian packages) and builds everything into build/.
#   scripts/setup.sh            configure (CUDA backend when nvcc is found) and build
# Environment: BUILD_DIR (default build), CMAKE_ARGS (extra cmake arguments), JOBS (default: all cores).
set -euo pipefail
cd "$(dirname "$0")/.."

# clang-14 and libclang-rt-14-dev (libFuzzer, the sanitizer runtimes) are for scripts/test.sh's build-asan tree.
# Libraries: fmt (text), CLI11 (command lines), nlohmann-json (JSON), cairo + DejaVu (figures).
packages=(build-essential cmake ninja-build catch2 pkg-config libopenblas-dev libopenblas-openmp-dev zlib1g-dev libomp-dev
  libfmt-dev libcli11-dev nlohmann-json3-dev libcairo2-dev fonts-dejavu-core dataset-fashion-mnist clang-14 libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

build=${BUILD_DIR:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build" -G Ninja ${CMAKE_ARGS:-}
cmake --build "$build" -j "${JOBS:-$(nproc)}"
