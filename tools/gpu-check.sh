#!/usr/bin/env bash
# The CUDA backend on a machine with an NVIDIA GPU, in one go: builds (architecture of the GPU
# at hand unless CMAKE_CUDA_ARCHITECTURES is set), runs the parity suites (ctest -L gpu), then
# the benchmarks of docs/performance.md (tools/gpu-bench.sh), writing each JSON into OUT-DIR.
# Needs what tools/install-deps.sh installs (Qt Test runs the suites) and the CUDA toolkit.
# Usage: tools/gpu-check.sh [build-dir] [out-dir] [config.json]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build-gpu}"
OUT="${2:-$BUILD/gpu-check}"
CONFIG="${3:-../shared/configs/deepseek-moe-16b-base.json}"
mkdir -p "$OUT"
ARCH="${CMAKE_CUDA_ARCHITECTURES:-native}"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$ARCH"
cmake --build "$BUILD" -j "$(nproc)"
MOEWB="$BUILD/app/moewb"
if ! "$MOEWB" bench --backend cuda --model resources/models/default --prompt-tokens 4 --gen-tokens 1 >/dev/null 2>"$OUT/probe.err"; then
    echo "gpu-check: the CUDA backend cannot run here: $(cat "$OUT/probe.err")" >&2
    exit 2
fi
ctest --test-dir "$BUILD" -L gpu --output-on-failure 2>&1 | tee "$OUT/ctest-gpu.log"
# Again with the switches that are not the default yet (tools/gpu-switches.sh).
source tools/gpu-switches.sh
env "${GPU_SWITCHES[@]}" ctest --test-dir "$BUILD" -L gpu --output-on-failure 2>&1 | tee "$OUT/ctest-gpu-switches.log"
# And with the former defaults, which can still be chosen.
env "${GPU_FORMER[@]}" ctest --test-dir "$BUILD" -L gpu --output-on-failure 2>&1 | tee "$OUT/ctest-gpu-former.log"
tools/gpu-bench.sh "$MOEWB" "$BUILD/bench/bench_gemv" "$OUT" "$CONFIG"
