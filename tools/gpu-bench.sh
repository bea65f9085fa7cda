#!/usr/bin/env bash
# The GPU benchmarks of docs/performance.md on random weights of DeepSeekMoE 16B's true shape:
# `moewb bench --backend cuda` with exact and BF16 activations, with and without CUDA graphs,
# the routed experts' products both ways, the decode products' streaming rates (bench_gemv),
# the backend's stage profile, and the PyTorch eager peer when torch is installed — each JSON
# into OUT-DIR. Called by tools/gpu-check.sh (after a build) and tools/gpu-bundle-run.sh.
# Usage: tools/gpu-bench.sh MOEWB BENCH_GEMV OUT-DIR [config.json]
# GPU_BENCH="main score experts prefill decode gemv stages peer" (the default: all) picks sections,
# for a short turn on a lent GPU; GPU_BENCH=layer compares decode with the layer kernel and
# without, alone; GPU_BENCH=wide prefill with 16 and 32 query rows a warp in attention, alone;
# GPU_BENCH=wgmma prefill with the experts' products on the warpgroup products and as by default;
# GPU_BENCH=route decode with the routing in the experts' launch and as by default, in turn;
# GPU_BENCH=stream decode with the stream kernel (a launch a layer, a launch a step) and as by
# default, in turn; GPU_BENCH=warp the same with the decode split a warp an item and with each
# head's splits merged by its last block; GPU_BENCH=score
# an ablation condition's steps scored on the device against the logits copied to the host.
# Not -e: a run that fails (its error in the log) does not keep the others from running; the
# summary at the end shows which results are missing.
set -uo pipefail
cd "$(dirname "$0")/.."
MOEWB="$1"
GEMV="$2"
OUT="$3"
CONFIG="${4:-../shared/configs/deepseek-moe-16b-base.json}"
mkdir -p "$OUT"
# Each run ends after GPU_RUN_TIMEOUT seconds (300 unless set), so that one that hangs does not
# take the rest of a short turn.
LIMIT=(timeout -k 5 "${GPU_RUN_TIMEOUT:-300}")
if [ ! -f "$CONFIG" ]; then
    echo "gpu-bench: $CONFIG not found: benchmarks skipped" >&2
    exit 0
fi
want() { [[ " ${GPU_BENCH:-main score experts prefill decode gemv stages peer} " == *" $1 "* ]]; }
if want main; then
    "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 2048 --gen-tokens 128 --repeat 3 --observer \
        | tee "$OUT/bench-cuda.json"
    "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 2048 --gen-tokens 128 --repeat 3 --observer \
        --activations bf16 | tee "$OUT/bench-cuda-bf16-activations.json"
    "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 2048 --gen-tokens 128 --repeat 3 --no-cuda-graphs \
        | tee "$OUT/bench-cuda-no-graphs.json"
fi
if want score; then
    # A 2,048-token prompt as an ablation condition runs it (steps of 256 tokens, each row's NLL,
    # top-1 and KL from a kept baseline row), scored on the device and from logits copied to
    # the host, in turn; both activations.
    for act in exact bf16; do
        "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 2048 --gen-tokens 0 --repeat 3 \
            --score --activations $act | tee "$OUT/bench-cuda-score-$act.json"
    done
    # A prefill step of 256 tokens (a trace's step on the CPU, and on a GPU before its steps
    # became 2,048 tokens), against the 2,048 of the runs above.
    "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 256 --gen-tokens 0 --repeat 3 \
        | tee "$OUT/bench-cuda-prefill-256.json"
fi
if want experts; then
    # The routed experts' products each way (docs/engine.md, MOEWB_CUDA_EXPERT_GEMM), prefill only.
    for way in grouped cublas batched wgmma; do
        MOEWB_CUDA_EXPERT_GEMM=$way "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 2048 \
            --gen-tokens 8 --repeat 3 | tee "$OUT/bench-cuda-experts-$way.json"
        MOEWB_CUDA_EXPERT_GEMM=$way "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 2048 \
            --gen-tokens 8 --repeat 3 --activations bf16 | tee "$OUT/bench-cuda-experts-$way-bf16-activations.json"
    done
    # With exact activations, each expert's hi and lo parts as two products (the former default).
    MOEWB_CUDA_EXPERT_PARTS=apart "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 2048 \
        --gen-tokens 8 --repeat 3 | tee "$OUT/bench-cuda-experts-apart.json"
    # Batched products over rows padded to 16, 32 and 128 (MOEWB_CUDA_EXPERT_PAD; 64 above): less
    # padding, more batches.
    for pad in 16 32 128; do
        for act in exact bf16; do
            MOEWB_CUDA_EXPERT_GEMM=batched MOEWB_CUDA_EXPERT_PAD=$pad "${LIMIT[@]}" "$MOEWB" bench --backend cuda \
                --random-config "$CONFIG" --prompt-tokens 2048 --gen-tokens 8 --repeat 3 --activations $act \
                | tee "$OUT/bench-cuda-experts-batched-pad$pad-$act.json"
        done
    done
fi
source tools/gpu-switches.sh
if want prefill; then
    # Prefill with the first tensor-core attention kernel (MOEWB_CUDA_ATTENTION=tensor-cores), and
    # with it and the experts' products of the former default (ours with exact activations, cuBLAS
    # per expert on side streams with BF16 ones) together, both activations.
    for act in exact bf16; do
        former=grouped
        [ $act = bf16 ] && former=cublas
        env MOEWB_CUDA_ATTENTION=tensor-cores "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" \
            --prompt-tokens 2048 --gen-tokens 8 --repeat 3 --activations $act | tee "$OUT/bench-cuda-prefill-tiles-$act.json"
        env MOEWB_CUDA_ATTENTION=tensor-cores MOEWB_CUDA_EXPERT_GEMM=$former "${LIMIT[@]}" "$MOEWB" bench --backend cuda \
            --random-config "$CONFIG" --prompt-tokens 2048 --gen-tokens 8 --repeat 3 --activations $act \
            | tee "$OUT/bench-cuda-prefill-former-$act.json"
    done
fi
if want wgmma; then
    # The routed experts' products on Hopper's warpgroup products (MOEWB_CUDA_EXPERT_GEMM=wgmma),
    # as by default and on the mma.sync kernel they replace (grouped), both activations; then
    # where the time of such a prefill goes.
    for act in exact bf16; do
        for way in auto wgmma grouped; do
            MOEWB_CUDA_EXPERT_GEMM=$way "${LIMIT[@]}" \
                "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 2048 --gen-tokens 8 --repeat 3 \
                --activations $act | tee "$OUT/bench-cuda-experts-$way-$act.json"
        done
    done
    MOEWB_CUDA_EXPERT_GEMM=wgmma MOEWB_CUDA_STAGES=1 "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" \
        --prompt-tokens 2048 --gen-tokens 8 --repeat 2 --activations bf16 >/dev/null 2> "$OUT/stages-wgmma.txt"
    cat "$OUT/stages-wgmma.txt"
fi
if want prefill || want wide; then
    # Prefill attention with 32 query rows a warp (MOEWB_CUDA_ATTENTION=wide) and, in turn, the
    # default's 16, both activations; then where the time of a wide prefill goes.
    for act in exact bf16; do
        for attention in pipelined wide; do
            MOEWB_CUDA_ATTENTION=$attention "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG"                 --prompt-tokens 2048 --gen-tokens 8 --repeat 3 --activations $act                 | tee "$OUT/bench-cuda-prefill-$attention-$act.json"
        done
    done
    MOEWB_CUDA_ATTENTION=wide MOEWB_CUDA_STAGES=1 "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" \
        --prompt-tokens 2048 --gen-tokens 8 --repeat 2 --activations bf16 >/dev/null 2> "$OUT/stages-wide.txt"
    cat "$OUT/stages-wide.txt"
fi
# Decode with each switch that is not the default yet on its own, and all of them
# (tools/gpu-switches.sh, and MOEWB_CUDA_KV_CACHE=bf16); and with each former default.
decode_bench() {
    local name="$1"
    shift
    env "$@" "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 2048 --gen-tokens 128 --repeat 3 \
        | tee "$OUT/bench-cuda-decode-$name.json"
}
if want layer; then
    # The shortest comparison of the decode layer kernel (MOEWB_CUDA_DECODE_KERNEL=layer) with the
    # launches, for a short turn (not among the default sections: decode has both).
    decode_bench launches
    decode_bench layer MOEWB_CUDA_DECODE_KERNEL=layer
    # And where the layer kernel's time goes, stage by stage inside it ("layer: qkv", …).
    MOEWB_CUDA_DECODE_KERNEL=layer MOEWB_CUDA_STAGES=1 "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" \
        --prompt-tokens 2048 --gen-tokens 64 --repeat 2 >/dev/null 2> "$OUT/stages-layer.txt"
    cat "$OUT/stages-layer.txt"
fi
# Decode as by default and with each switch given (NAME:VAR=value), all in turn, twice (the
# first argument names the default's runs); then where the time of a step with each switch goes
# (stages-NAME.txt).
decode_turns() {
    local group="$1" pair
    shift
    for turn in 1 2; do
        decode_bench "$group-default-$turn"
        for pair in "$@"; do decode_bench "${pair%%:*}-$turn" "${pair#*:}"; done
    done
    for pair in "$@"; do
        env "${pair#*:}" MOEWB_CUDA_STAGES=1 "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" \
            --prompt-tokens 2048 --gen-tokens 64 --repeat 2 >/dev/null 2> "$OUT/stages-${pair%%:*}.txt"
        cat "$OUT/stages-${pair%%:*}.txt"
    done
}
# (Not among the default sections: decode has both.) Each MoE layer routed by its experts' gate
# and up launch (MOEWB_CUDA_DECODE_ROUTE=experts) rather than a launch of its own.
if want route; then decode_turns route route:MOEWB_CUDA_DECODE_ROUTE=experts; fi
# The stream kernel: a launch a layer (MOEWB_CUDA_DECODE_KERNEL=stream) and a launch a step
# (=step); their stage profiles time the stages inside them ("stream: qkv", …).
if want stream; then
    decode_turns stream stream:MOEWB_CUDA_DECODE_KERNEL=stream step:MOEWB_CUDA_DECODE_KERNEL=step
fi
# The decode split a warp an item (MOEWB_CUDA_DECODE_ATTENTION=warp) rather than a block, and
# each head's splits merged by the last of its blocks (=merged) rather than by a launch of its own.
if want warp; then
    decode_turns warp warp:MOEWB_CUDA_DECODE_ATTENTION=warp merged:MOEWB_CUDA_DECODE_ATTENTION=merged
fi
if want decode; then
    decode_bench default
    decode_bench stream MOEWB_CUDA_DECODE_KERNEL=stream
    decode_bench step MOEWB_CUDA_DECODE_KERNEL=step
    decode_bench route-experts MOEWB_CUDA_DECODE_ROUTE=experts
    decode_bench layer MOEWB_CUDA_DECODE_KERNEL=layer
    decode_bench vector-attention MOEWB_CUDA_DECODE_ATTENTION=vector
    decode_bench warp-attention MOEWB_CUDA_DECODE_ATTENTION=warp
    decode_bench merged-attention MOEWB_CUDA_DECODE_ATTENTION=merged
    decode_bench kv-bf16 MOEWB_CUDA_KV_CACHE=bf16
    decode_bench stream-loads MOEWB_CUDA_WEIGHT_LOADS=stream
    decode_bench blocks3 MOEWB_CUDA_DECODE_BLOCKS=3
    decode_bench all "${GPU_SWITCHES[@]}"
    decode_bench all-kv-bf16 "${GPU_SWITCHES[@]}" MOEWB_CUDA_KV_CACHE=bf16
    decode_bench early-on MOEWB_CUDA_EARLY_LAUNCH=on
    decode_bench separate-rope MOEWB_CUDA_ROPE=separate
    decode_bench former "${GPU_FORMER[@]}"
fi
if want gemv; then
    # How fast decode products stream the weights (bench/bench_gemv.cu).
    "${LIMIT[@]}" "$GEMV" | tee "$OUT/bench-gemv.json"
    # The same with the engine's products waiting for the kernel before them to end (MOEWB_CUDA_EARLY_LAUNCH=on).
    MOEWB_CUDA_EARLY_LAUNCH=on "${LIMIT[@]}" "$GEMV" | tee "$OUT/bench-gemv-early-on.json"
    # And with its weight loads skipping L1 (MOEWB_CUDA_WEIGHT_LOADS=stream).
    MOEWB_CUDA_WEIGHT_LOADS=stream "${LIMIT[@]}" "$GEMV" | tee "$OUT/bench-gemv-stream.json"
fi
if want stages; then
    # Where the time goes, stage by stage (docs/engine.md, MOEWB_CUDA_STAGES).
    MOEWB_CUDA_STAGES=1 "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 2048 --gen-tokens 64 \
        --repeat 2 --activations bf16 >/dev/null 2> "$OUT/stages.txt"
    cat "$OUT/stages.txt"
    # And with the switches.
    env "${GPU_SWITCHES[@]}" MOEWB_CUDA_STAGES=1 "${LIMIT[@]}" "$MOEWB" bench --backend cuda --random-config "$CONFIG" --prompt-tokens 2048 \
        --gen-tokens 64 --repeat 2 --activations bf16 >/dev/null 2> "$OUT/stages-switches.txt"
    cat "$OUT/stages-switches.txt"
fi
if ! want peer; then
    :
elif python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    python3 bench/torch_peer.py --random-config "$CONFIG" --device cuda --prompt-tokens 2048 --gen-tokens 128 --repeat 3 \
        | tee "$OUT/bench-torch-peer.json"
else
    echo "gpu-bench: no PyTorch with CUDA here: the peer is skipped" >&2
fi
# The results in one line each (the end of a log is what a short turn on a GPU reads).
echo "== summary"
python3 tools/gpu-summary.py "$OUT" | tee "$OUT/summary.txt" || echo "gpu-bench: no python3 here: see the JSON in $OUT" >&2
