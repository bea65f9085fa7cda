#!/usr/bin/env bash
# The main job on the embedded default model (resources/models/default, a DeepSeekMoE-
# architecture model trained on datasets/): installs what is missing, builds, and runs what a
# researcher does first — traces the domain corpora into a routing store, shows which experts
# each domain uses, switches the shared experts off to see what breaks, and lets the model
# write, with and without them.
# Usage: tools/demo.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
tools/install-deps.sh
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j "$(nproc)" --target moewb
MODEL=resources/models/default
MOEWB="$BUILD/app/moewb"
DB="$BUILD/demo.db"
echo "== moewb info --model $MODEL"
"$MOEWB" info --model "$MODEL"
echo
echo "== moewb trace: 2,000 test tokens of each domain into $DB"
"$MOEWB" trace --model "$MODEL" --corpus datasets --db "$DB" --max-tokens 2000 --quiet
echo
echo "== which experts each domain uses (moewb stats --csv): layer 2, top 4 experts by share ÷ uniform"
"$MOEWB" stats --db "$DB" --run 1 --layer 2 --csv "$BUILD/demo-experts.csv"
python3 - "$BUILD/demo-experts.csv" <<'PY'
import csv, sys
rows = {}
for r in csv.DictReader(open(sys.argv[1], newline="", encoding="utf-8")):
    rows.setdefault(r["domain"], []).append((float(r["ratio_to_uniform"]), int(r["expert"])))
for domain, v in rows.items():
    top = sorted(v, reverse=True)[:4]
    print(f"  {domain:8s} " + "  ".join(f"expert {e:2d}: {x:4.1f}x" for x, e in top))
PY
echo
echo "== what breaks without the shared experts (moewb ablate, 1,000 test tokens per domain)"
"$MOEWB" ablate --model "$MODEL" --corpus datasets --mask '*:shared' --max-tokens 1000 --quiet
echo
PROMPT="It is a truth universally acknowledged, that"
echo "== moewb generate: \"$PROMPT\""
"$MOEWB" generate --model "$MODEL" --prompt "$PROMPT" --max-new-tokens 40
echo "== the same with the shared experts off"
"$MOEWB" generate --model "$MODEL" --prompt "$PROMPT" --max-new-tokens 40 --mask '*:shared'
