#!/usr/bin/env bash
# The main job on the default model: installs what is missing, builds, and runs a model
# through the engine, showing its structure, its routing and its loss.
# Usage: tools/demo.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
tools/install-deps.sh
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD" -j "$(nproc)" --target moewb demo_model
MODEL="$BUILD/demo-model"
MOEWB="$BUILD/app/moewb"
echo "== moewb info --model $MODEL"
"$MOEWB" info --model "$MODEL"
echo
echo "== routing of 8 tokens (layer: experts per position, rank order)"
"$MOEWB" logits --model "$MODEL" --ids 1,17,42,99,7,256,1000,3 --no-gate-weights |
  python3 -c 'import json,sys; d=json.load(sys.stdin); [print("layer", l, r) for l, r in d["routing"].items()]'
echo
echo "== loss with and without the shared experts"
"$MOEWB" eval --model "$MODEL" --ids 1,17,42,99,7,256,1000,3,5,77,12,901
"$MOEWB" eval --model "$MODEL" --ids 1,17,42,99,7,256,1000,3,5,77,12,901 --mask '*:shared'
