#!/usr/bin/env bash
# The test command: installs what is missing, builds (CUDA code too when nvcc is present) and runs every test;
# then the CPU suite again under AddressSanitizer + UndefinedBehaviorSanitizer (clang, build-asan/) and a
# bounded run of each libFuzzer target in tests/fuzz/ (see docs/testing.md, "Fuzzing and sanitizers").
# CUDA tests skip with a visible "SKIPPED: no CUDA device" line where there is no GPU.
# Environment: BUILD_DIR (default build), ASAN_BUILD_DIR (default build-asan), ASAN_CMAKE_ARGS (extra cmake
# arguments for it), FUZZ_SECONDS (per target, default 10), JOBS (default: all cores), SANITIZERS=0 to stop
# after the first suite (quick local runs; CI runs everything).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=${JOBS:-$(nproc)}
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$jobs"
[[ ${SANITIZERS:-1} == 0 ]] && exit 0

# One clang tree holds both the sanitized suite and the fuzz targets, so the engine is compiled once for them.
asan=${ASAN_BUILD_DIR:-build-asan}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
# Leaks inside third-party libraries we cannot free (fontconfig's process-wide cache): tests/lsan.supp.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}
cxx=$(command -v clang++-14)
# A tree configured with another compiler would make CMake drop its cache and reconfigure without our options.
if [[ -f $asan/CMakeCache.txt ]] && ! grep -qx "CMAKE_CXX_COMPILER:[A-Z]*=$cxx" "$asan/CMakeCache.txt"; then
  echo "test: $asan was configured with another compiler; configuring it afresh"
  rm "$asan/CMakeCache.txt"
fi
# shellcheck disable=SC2086
cmake -S . -B "$asan" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" -DENGINE_CUDA=OFF -DENGINE_FUZZ=ON ${ASAN_CMAKE_ARGS:-}
grep -qx "ENGINE_FUZZ:BOOL=ON" "$asan/CMakeCache.txt" || { echo "test: $asan is not a fuzz build" >&2; exit 1; }
cmake --build "$asan" -j "$jobs"
ctest --test-dir "$asan" --output-on-failure -j "$jobs"

# Each fuzz target from its committed seeds; what it learns goes to $asan/fuzz/<target>/, never into the
# repository, and a crashing input to $asan/fuzz/crash-<target>-*.
for src in tests/fuzz/fuzz_*.cpp; do
  t=$(basename "$src" .cpp)
  t=${t#fuzz_}
  mkdir -p "$asan/fuzz/$t"
  log=$asan/fuzz/$t.log
  dict=()
  [[ -f tests/fuzz/$t.dict ]] && dict=(-dict="tests/fuzz/$t.dict")
  if ! "$asan/fuzz_$t" -max_total_time="${FUZZ_SECONDS:-10}" -artifact_prefix="$asan/fuzz/crash-$t-" "${dict[@]}" \
    "$asan/fuzz/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
    cat "$log"
    echo "fuzz: $t failed; the input is in $asan/fuzz/crash-$t-* (docs/testing.md says how to keep it)" >&2
    exit 1
  fi
  echo "fuzz: $t: $(grep -E '^Done [0-9]+ runs' "$log")"
done
