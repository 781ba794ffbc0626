#!/usr/bin/env bash
# Prepares .gpu, what a device call carries for scripts/gpu_check.sh (docs/gpu-validation.md): builds for the
# GPU's architecture only, bundles the programs and the libraries the GPU machine lacks, xz-compresses every file
# over 1 MB (gpu_check.sh unpacks them there), adds the Fashion-MNIST files, and fails if the working tree and the
# bundle together exceed the device's 64 MiB carry limit. Run from anywhere in a checkout:
#
#   scripts/gpu_bundle.sh            (BUILD=build-gpu ARCH=90 SHARED=../shared by default)
#
# The app tests run the programs at the paths compiled into engine_tests (the build folder here); .gpu/build_dir
# records that folder so that gpu_check.sh can point it at .gpu/bin on the device.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build-gpu}
arch=${ARCH:-90}
shared=${SHARED:-../shared}
data=/usr/share/datasets/fashion-mnist
limit=$((64 * 1024 * 1024))

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
[[ -f $build/CMakeCache.txt ]] || cmake -S . -B "$build" -G Ninja -DENGINE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
  -DCMAKE_BUILD_TYPE=Release "${launcher[@]}"
cmake --build "$build"

grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >>.git/info/exclude
"$shared/tools/device-bundle.sh" "$build" .gpu
find .gpu/bin .gpu/lib -type f -size +1M -print0 | xargs -0 -r -n1 -P2 xz -T1
mkdir -p .gpu/data && cp "$data"/* .gpu/data/
realpath "$build" >.gpu/build_dir

tree=$(git ls-files -co --exclude-standard -z | xargs -0 -r du -cb | tail -n1 | cut -f1)
bundle=$(du -sb .gpu | cut -f1)
total=$((tree + bundle))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "gpu_bundle: working tree $(mib "$tree") + .gpu $(mib "$bundle") = $(mib "$total") of the 64 MiB carry limit"
if ((total > limit)); then
  echo "gpu_bundle: over the carry limit; the largest files in .gpu:" >&2
  du -ab .gpu | sort -n | tail -n 8 >&2
  exit 1
fi
echo "gpu_bundle: ready; on the device (carry [\".gpu\"]): scripts/gpu_check.sh info quick"
