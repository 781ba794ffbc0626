#!/usr/bin/env bash
# The training command: installs what is missing, builds, and runs train_fmnist with the arguments given
# (by default the one-epoch CPU run of the README: resnet18 at native 28 px, cosine schedule).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
if (($# == 0)); then set -- resnet18 --resize 28 --epochs 1 --schedule cosine; fi
exec "${BUILD_DIR:-build}/train_fmnist" "$@"
