#!/usr/bin/env bash
# Runs a bundle of tools/gpu-bundle.sh on a machine with an NVIDIA GPU and the CUDA toolkit
# (its cudart and cuBLAS of the same major version), from a checkout of the bundle's commit:
# each CUDA parity suite, then the GPU benchmarks (tools/gpu-bench.sh); logs and JSON into
# OUT-DIR. The suites read tests/fixtures at the path the build had: when that path does not
# exist here, it is made a link to this checkout (or the suites that need fixtures fail, saying so).
# Usage: tools/gpu-bundle-run.sh BUNDLE.tar.xz [out-dir] [config.json]
# GPU_PASSES and GPU_BENCH (tools/gpu-bench.sh) pick the parts, for a short turn on a lent GPU.
# At the end OUT-DIR is also packed into OUT-DIR.tgz (GPU_LOOSE=0: and removed, its two summaries
# kept beside it: a lent GPU's tool brings back only a few files).
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE="$1"
OUT="${2:-gpu-bundle-out}"
CONFIG="${3:-../shared/configs/deepseek-moe-16b-base.json}"
mkdir -p "$OUT"
dir=$(mktemp -d)
tar -C "$dir" -xJf "$BUNDLE" || { echo "gpu-bundle-run: $BUNDLE is not a bundle of tools/gpu-bundle.sh" >&2; exit 2; }
here=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[ "$(cat "$dir/COMMIT")" = "$here" ] || echo "gpu-bundle-run: the bundle was built at $(cat "$dir/COMMIT"), this checkout is $here" >&2
src=$(cat "$dir/SOURCE_DIR")
if [ ! -e "$src" ]; then
    mkdir -p "$(dirname "$src")" 2>/dev/null && ln -s "$PWD" "$src" 2>/dev/null ||
        echo "gpu-bundle-run: cannot link $src to this checkout: the suites that read fixtures will fail" >&2
fi
cuda_libs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib; do [ -d "$d" ] && cuda_libs="$cuda_libs:$d"; done
export LD_LIBRARY_PATH="$dir/lib$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export QT_QPA_PLATFORM=offscreen
if ldd "$dir/bin/moewb" | grep -q "not found"; then
    echo "gpu-bundle-run: libraries missing here:" >&2
    ldd "$dir/bin/moewb" | grep "not found" >&2
    exit 2
fi
failed=0
# Each suite as the backend runs by default, then with the switches that are not the default yet,
# then with the former defaults (tools/gpu-switches.sh). A suite that fails only with the
# switches (or the former defaults) runs again with each alone (GPU_BISECT=0 skips that), so
# that the log names the one that breaks it. GPU_PASSES="default" (or "switches", "former") runs
# those passes only; GPU_PASSES="" none, for the benchmarks alone.
# A suite ends after GPU_SUITE_TIMEOUT seconds (600 unless set): one that hangs does not take the turn.
# GPU_SUITES="test_cuda_model …" runs those suites alone, and GPU_FUNCTIONS="f g …" only those
# test functions of them (with GPU_SUITES): each suite is given the ones it has (QTest's
# -functions), and a suite that has none of them is left out.
LIMIT=(timeout -k 5 "${GPU_SUITE_TIMEOUT:-600}")
source tools/gpu-switches.sh
for pass in ${GPU_PASSES-default switches former}; do
    for t in "$dir"/bin/test_cuda_*; do
        name=$(basename "$t")
        [ -z "${GPU_SUITES:-}" ] || [[ " $GPU_SUITES " == *" $name "* ]] || continue
        # The asked-for functions this suite has.
        functions=""
        if [ -n "${GPU_SUITES:-}" ] && [ -n "${GPU_FUNCTIONS:-}" ]; then
            has=" $("$t" -functions 2>/dev/null | sed 's/()$//' | tr '\n' ' ') "
            for f in $GPU_FUNCTIONS; do [[ "$has" == *" $f "* ]] && functions="$functions $f"; done
            [ -n "$functions" ] || continue
        fi
        log="$OUT/$name-$pass.log"
        start=$SECONDS
        case $pass in
        default) set -- ;;
        switches) set -- "${GPU_SWITCHES[@]}" ;;
        former) set -- "${GPU_FORMER[@]}" ;;
        *) echo "gpu-bundle-run: no pass $pass (default, switches, former)" >&2; exit 2 ;;
        esac
        # shellcheck disable=SC2086 # the functions, one word each
        env "$@" "${LIMIT[@]}" "$t" $functions > "$log" 2>&1
        rc=$?
        echo "$name ($pass, $((SECONDS - start)) s): $(grep -E '^Totals' "$log" || echo "exit $rc")" | tee -a "$OUT/suites.txt"
        # What failed and where, for a log read from its end.
        [ $rc -eq 0 ] || grep -A1 -E '^FAIL!' "$log" | head -12 | sed 's/^/    /' | tee -a "$OUT/suites.txt"
        [ $rc -eq 0 ] || failed=1
        if [ $rc -ne 0 ] && [ $pass != default ] && [ "${GPU_BISECT:-1}" != 0 ] &&
            grep -qE "^$name \(default, [0-9]+ s\): Totals: [0-9]+ passed, 0 failed" "$OUT/suites.txt"; then
            for sw in "$@"; do
                alone="$OUT/$name-${sw%%=*}.log"
                # shellcheck disable=SC2086
                env "$sw" "${LIMIT[@]}" "$t" $functions > "$alone" 2>&1
                rc_alone=$?
                echo "    $sw alone: $(grep -E '^Totals' "$alone" || echo "exit $rc_alone")" | tee -a "$OUT/suites.txt"
            done
        fi
    done
done
tools/gpu-bench.sh "$dir/bin/moewb" "$dir/bin/bench_gemv" "$OUT" "$CONFIG"
echo "== suites"
cat "$OUT/suites.txt" 2>/dev/null
# Everything in one file beside OUT-DIR (a lent GPU's tool brings back only a few files); with
# GPU_LOOSE=0 only that file and the two summaries (OUT-DIR-suites.txt, OUT-DIR-summary.txt)
# stay.
tar -C "$OUT" -czf "${OUT%/}.tgz" . && echo "gpu-bundle-run: all results in ${OUT%/}.tgz"
if [ "${GPU_LOOSE:-1}" = 0 ] && [ -s "${OUT%/}.tgz" ]; then
    for f in suites summary; do [ -f "$OUT/$f.txt" ] && cp "$OUT/$f.txt" "${OUT%/}-$f.txt"; done
    rm -rf "$OUT"
fi
rm -rf "$dir"
exit $failed
