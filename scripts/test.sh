#!/usr/bin/env bash
# The test command: installs what is missing, builds (CUDA code too when nvcc is present) and runs every test.
# CUDA tests skip with a visible "SKIPPED: no CUDA device" line where there is no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "${JOBS:-$(nproc)}"
