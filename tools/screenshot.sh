#!/usr/bin/env bash
# Takes a screenshot of moe-workbench's main window under Xvfb, the way a newcomer first sees
# it: a fresh store, the bundled corpora (datasets/) traced on start, the heatmap of the run.
# The model is the embedded default (resources/models/default).
# Usage: tools/screenshot.sh [build-dir] [out.png]   (default: build, docs/images/workbench.png)
#   VIEW=domains|layers MEASURE=share|ratio|log-ratio|gate pick the heatmap (default: domains, share).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
OUT="${2:-docs/images/workbench.png}"
APP="$BUILD/app/moe-workbench"
MOEWB="$BUILD/app/moewb"
for f in "$APP" "$MOEWB"; do
  [ -x "$f" ] || { echo "screenshot: $f is not built (cmake --build $BUILD)" >&2; exit 1; }
done
for c in xvfb-run import; do
  command -v "$c" >/dev/null || { echo "screenshot: needs $c (tools/install-deps.sh installs it)" >&2; exit 1; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
MODEL=resources/models/default

# A fresh user: settings and the default store location in the work directory.
export XDG_CONFIG_HOME="$WORK/config" XDG_DATA_HOME="$WORK/data"
case "${VIEW:-domains}" in layers) axes=0 ;; domains) axes=1 ;; *) echo "screenshot: VIEW=layers|domains" >&2; exit 2 ;; esac
case "${MEASURE:-share}" in
  share) measure=0 ;; ratio) measure=1 ;; log-ratio) measure=2 ;; gate) measure=3 ;;
  *) echo "screenshot: MEASURE=share|ratio|log-ratio|gate" >&2; exit 2 ;;
esac
mkdir -p "$XDG_CONFIG_HOME/MoE Workbench"
printf '[heatmap]\naxes=%s\nmeasure=%s\n' "$axes" "$measure" > "$XDG_CONFIG_HOME/MoE Workbench/moe-workbench.conf"
DB="$WORK/workbench.db"
W="${WIDTH:-1440}"
H="${HEIGHT:-900}"
mkdir -p "$(dirname "$OUT")"
xvfb-run -a -s "-screen 0 ${W}x${H}x24" bash -c '
  set -u
  app=$1 moewb=$2 model=$3 db=$4 out=$5 geometry=$6
  "$app" --model "$model" --db "$db" --corpus datasets --auto-trace-tokens 1500 -qwindowgeometry "$geometry" &
  pid=$!
  for _ in $(seq 1 600); do
    "$moewb" stats --db "$db" --runs 2>/dev/null | grep -q "\"status\":\"complete\"" && break
    kill -0 "$pid" 2>/dev/null || { echo "screenshot: moe-workbench exited" >&2; exit 1; }
    sleep 1
  done
  sleep 3  # the heatmap query and repaint after the run completes
  import -window root "$out"
  kill "$pid"
  wait "$pid" || true
' _ "$APP" "$MOEWB" "$MODEL" "$DB" "$OUT" "${W}x${H}+0+0"
echo "screenshot: $OUT"
