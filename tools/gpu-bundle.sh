#!/usr/bin/env bash
# Packs what a GPU machine needs to run the CUDA parity suites and the GPU benchmarks without
# this project's Debian packages (Qt, SQLite, PCRE2, ...): moewb, bench_gemv, the test_cuda_*
# suites of a build and every shared library they load except the C runtime's and CUDA's (the
# driver and the toolkit's cudart and cuBLAS come from the GPU machine), in one .tar.xz.
# tools/gpu-bundle-run.sh runs it there from a checkout of the same commit.
# Usage: tools/gpu-bundle.sh [build-dir] [out.tar.xz]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
OUT="${2:-$BUILD/gpu-bundle.tar.xz}"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
bins=("$BUILD/app/moewb" "$BUILD/bench/bench_gemv")
for t in "$BUILD"/tests/test_cuda_*; do [ -f "$t" ] && [ -x "$t" ] && bins+=("$t"); done
for b in "${bins[@]}"; do
    if [ ! -x "$b" ]; then
        echo "gpu-bundle: $b is missing: build with the CUDA toolkit first (cmake --build $BUILD)" >&2
        exit 2
    fi
done
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
cp "${bins[@]}" "$stage/bin/"
# The libraries the binaries load, less the C runtime and CUDA's own.
ldd "${bins[@]}" | awk '/=> \//{print $3}' | sort -u |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|libgcc_s|libcuda|libcudart|libcublas|libcublasLt)\.so|/ld-linux' |
    while read -r lib; do cp -L "$lib" "$stage/lib/"; done
# Where the suites look for tests/fixtures (compiled in: MOE_SOURCE_DIR) and which commit.
echo "$PWD" > "$stage/SOURCE_DIR"
git rev-parse HEAD > "$stage/COMMIT" 2>/dev/null || echo unknown > "$stage/COMMIT"
tar -C "$stage" -cJf "$OUT" bin lib SOURCE_DIR COMMIT
echo "gpu-bundle: $OUT ($(du -h "$OUT" | cut -f1)): ${#bins[@]} programs, $(ls "$stage/lib" | wc -l) libraries"
