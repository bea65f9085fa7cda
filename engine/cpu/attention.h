// Causal multi-head self-attention with grouped KV heads and a KV cache (CPU).
// q/k/v projections, RoPE (halves layout), softmax(q·kᵀ/√hd) over positions ≤ the
// query's, output projection. No biases. Published definition: model-spec.md §1.
#pragma once

#include <cstdint>

#include "engine/cpu/matmul.h"
#include "engine/cpu/ops.h"
#include "engine/kv_cache.h"

namespace moe::cpu {

class ThreadPool;
class Arena;

struct AttentionWeights {
    WeightMatrix q, k, v, o;  // [nh·hd, H], [nkv·hd, H], [nkv·hd, H], [H, nh·hd]
    int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
};

// x [T, H] (normalised input) -> out [T, H]. Writes K/V of positions
// [cache.length(), cache.length()+T) into `layer` of the cache (the caller advances it).
void attention_forward(const AttentionWeights& w, const float* x, int64_t T, int64_t H, KvCache& cache,
                       int64_t layer, const RopeTables& rope, float* out, ThreadPool& pool, Arena& arena);

}  // namespace moe::cpu
