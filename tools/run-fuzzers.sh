#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan) in build-fuzz/,
# makes seed corpora from tests/fixtures, and runs each fuzzer for SECONDS (default 60).
# Usage: tools/run-fuzzers.sh [SECONDS] [TARGET...]   (default: every built target)
# Exits 1 when any fuzzer finds a crash, hang, leak or sanitizer report; the input is left
# in build-fuzz/artifacts/<target>/ and the log in build-fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-60}"
shift || true
BUILD=build-fuzz
FIXTURES=tests/fixtures

CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMOE_BUILD_FUZZERS=ON -DMOE_BUILD_TESTS=OFF >/dev/null
TARGETS=(fuzz_safetensors fuzz_model_config)
[ -f tests/fuzz/fuzz_tokenizer.cpp ] && TARGETS+=(fuzz_tokenizer)
TARGETS+=(fuzz_capture_response)
[ $# -gt 0 ] && TARGETS=("$@")
cmake --build "$BUILD" --target "${TARGETS[@]}"

# ---- Seeds, remade from the fixtures on every run (the grown corpora persist) ----
SEEDS="$BUILD/seeds"
rm -rf "$SEEDS"
mkdir -p "$SEEDS"/{fuzz_safetensors,fuzz_model_config,fuzz_tokenizer,fuzz_capture_response} "$BUILD"/dicts
python3 - "$FIXTURES" "$SEEDS" "$BUILD/dicts" <<'PY'
import glob, json, os, struct, sys
fixtures, seeds, dicts = sys.argv[1:4]

def safetensors(header, data):
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

# Safetensors: each fixture file cut down to its smallest tensors (valid, a few KB), plus one
# with the full header and no data (exercises every header check up to the first range).
for path in sorted(glob.glob(f"{fixtures}/*/*.safetensors")):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header, body = json.loads(raw[8:8 + n]), raw[8 + n:]
    tensors = sorted((k for k in header if k != "__metadata__"),
                     key=lambda k: header[k]["data_offsets"][1] - header[k]["data_offsets"][0])
    small, data = {"__metadata__": header.get("__metadata__", {})}, b""
    for k in tensors[:4]:
        b, e = header[k]["data_offsets"]
        small[k] = dict(header[k], data_offsets=[len(data), len(data) + e - b])
        data += body[b:e]
    name = path.replace("/", "_")
    open(f"{seeds}/fuzz_safetensors/{name}.small", "wb").write(safetensors(small, data))
    open(f"{seeds}/fuzz_safetensors/{name}.header", "wb").write(raw[:8 + n])

# config.json: each fixture's, and again carrying its golden cases' mask SPECs under "mask".
for path in sorted(glob.glob(f"{fixtures}/*/config.json")):
    name = path.replace("/", "_")
    config = json.load(open(path))
    open(f"{seeds}/fuzz_model_config/{name}", "w").write(json.dumps(config, indent=2))
    golden = os.path.join(os.path.dirname(path), "golden.json")
    if os.path.exists(golden):
        masks = sorted({c["mask"] for c in json.load(open(golden))["cases"] if c["mask"]})
        config["mask"] = masks
        open(f"{seeds}/fuzz_model_config/{name}.masks", "w").write(json.dumps(config))

# Saved mask files (--mask-file), as the ablation panel writes them, and a few near misses.
for i, m in enumerate([
        {"format": "moe-workbench-mask", "version": 1, "spec": "L1:3,17;*:shared", "mode": "drop", "model": "m"},
        {"format": "moe-workbench-mask", "version": 1, "spec": "*:skip-random=0.25@7", "mode": "reroute"},
        {"spec": "*:k=2"}, {"spec": "L2:k=1", "mode": "sideways"}, {"spec": 3}]):
    open(f"{seeds}/fuzz_model_config/saved_mask_{i}.json", "w").write(json.dumps(m, indent=2))

# tokenizer.json: the small ones (the 3 MB real one would dwarf -max_len), and where there is
# one, followed by a NUL byte and tokenizer_config.json (the target's input format).
for path in sorted(glob.glob(f"{fixtures}/tokenizers/*/tokenizer.json")):
    if os.path.getsize(path) > 64 * 1024:
        continue
    name, text = path.replace("/", "_"), open(path, "rb").read()
    open(f"{seeds}/fuzz_tokenizer/{name}", "wb").write(text)
    config = os.path.join(os.path.dirname(path), "tokenizer_config.json")
    if os.path.exists(config):
        open(f"{seeds}/fuzz_tokenizer/{name}.config", "wb").write(text + b"\0" + open(config, "rb").read())

# Server responses (fuzz_capture_response: a mode byte, the prompt length, the dtype byte, then
# the input), for the target's first config (4 layers, the first dense; 64 experts, top-6):
# an SGLang body with raw int32 routing and a vLLM body with a .npy payload, both for 5 prompt
# and 3 generated tokens, and the bare .npy and raw bytes for the decoders alone.
import base64
def routing(rows, layers, k, dense_first):
    ids = []
    for r in range(rows):
        for l in range(layers):
            ids += [0] * k if (dense_first and l == 0) else [(r * 7 + l * 3 + i * 5) % 64 for i in range(k)]
    return ids
def npy(ids, shape):
    header = "{'descr': '<i4', 'fortran_order': False, 'shape': (%d, %d, %d), }" % shape
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + struct.pack(f"<{len(ids)}i", *ids)
ids = routing(7, 4, 6, True)
raw = struct.pack(f"<{len(ids)}i", *ids)
sglang = json.dumps({"text": "abc", "output_ids": [11, 12, 13], "meta_info": {
    "prompt_tokens": 5, "completion_tokens": 3, "routed_experts": base64.b64encode(raw).decode()}})
vllm = json.dumps({"choices": [{"text": "abc", "token_ids": [11, 12, 13],
                                "routed_experts": base64.b64encode(npy(ids, (7, 4, 6))).decode()}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
out = f"{seeds}/fuzz_capture_response"
open(f"{out}/sglang", "wb").write(bytes([0, 5, 1]) + sglang.encode())
open(f"{out}/vllm", "wb").write(bytes([0, 5, 0x80]) + vllm.encode())
open(f"{out}/npy", "wb").write(bytes([1, 5, 0]) + npy(ids, (7, 4, 6)))
open(f"{out}/raw", "wb").write(bytes([2, 7, 1]) + raw)

# Dictionaries: the tokens the parsers look for.
def write_dict(name, words):
    with open(f"{dicts}/{name}.dict", "w") as f:
        for w in sorted(set(words)):
            f.write('"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"\n')

write_dict("fuzz_capture_response", ['"meta_info"', '"routed_experts"', '"routed_experts_dtype"',
                                     '"routed_experts_start_len"', '"prompt_routed_experts"', '"choices"', '"usage"',
                                     '"prompt_tokens"', '"completion_tokens"', '"output_ids"', '"token_ids"', '"error"',
                                     '"message"', "'descr'", "'<i4'", "'<i8'", "'|u1'", "'fortran_order'", "'shape'",
                                     "False", "True", "null", "-1", "0"])
write_dict("fuzz_safetensors", ['"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', '"F32"', '"F16"',
                                '"BF16"', '"I64"', "[0,0]", "[]", "18446744073709551615", "-1"])
keys = set()
for path in glob.glob(f"{fixtures}/*/config.json"):
    keys |= set(json.load(open(path)))
write_dict("fuzz_model_config", [f'"{k}"' for k in keys] + [
    '"mask"', '"deepseek"', '"deepseek_v2"', '"softmax"', '"sigmoid"', '"linear"', '"dynamic"', '"type"',
    '"factor"', "null", "true", "false", "NaN", "-1", "0", "2.5", "1e12", "1e13", "999999999999", "1000000000000",
    "4294967296", "*:", "L", ":k=", ":skip-top=",
    ":shared", ";", ",", '"format"', '"moe-workbench-mask"', '"version"', '"spec"', '"mode"', '"reroute"', '"drop"',
    '"model"'])
PY

declare -A MAX_LEN=([fuzz_safetensors]=16384 [fuzz_model_config]=4096 [fuzz_tokenizer]=65536 [fuzz_capture_response]=8192)

# ---- Runs ----
mkdir -p "$BUILD/logs"
failed=()
for t in "${TARGETS[@]}"; do
  corpus="$BUILD/corpus/$t"
  artifacts="$BUILD/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts" "$SEEDS/$t"
  dict=()
  [ -f "$BUILD/dicts/$t.dict" ] && dict=(-dict="$BUILD/dicts/$t.dict")
  echo "== $t: ${SECONDS_EACH}s (log: $BUILD/logs/$t.log)"
  # New inputs go to the first directory (the grown corpus); the seeds are read only.
  set +e
  "$BUILD/tests/fuzz/$t" "$corpus" "$SEEDS/$t" "${dict[@]}" \
    -max_total_time="$SECONDS_EACH" -max_len="${MAX_LEN[$t]:-4096}" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts" -print_final_stats=1 >"$BUILD/logs/$t.log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$BUILD/logs/$t.log" | grep -o '[0-9]*$' || echo "?")
  if [ $rc -ne 0 ]; then
    echo "   FAILED (exit $rc) after $execs executions:"
    grep -E 'ERROR: (libFuzzer|AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer)|runtime error|Test unit written' \
      "$BUILD/logs/$t.log" | head -5 | sed 's/^/   /'
    failed+=("$t")
  else
    echo "   ok: $execs executions, corpus $(ls "$corpus" | wc -l) inputs"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "run-fuzzers: findings in ${failed[*]}; reproduce with $BUILD/tests/fuzz/<target> <artifact>"
  exit 1
fi
echo "run-fuzzers: no findings"
