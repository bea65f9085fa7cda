// Multi-head Latent Attention (DeepSeek-V2, V2-Lite, V3, R1) on the CPU. Per token the KV
// cache keeps only the normalised latent c_kv [kv_lora_rank] and one RoPE key k_pe
// [qk_rope_head_dim] shared by all heads. Two exact forms of the same math:
//   expanded: k_nope and v of every cached position from kv_b_proj, then ordinary attention
//     with key [k_nope_h | k_pe] per head (used for a fresh prefill);
//   absorbed: the key up-projection folded into the query (q_nope_h · W_uk,h scores against
//     the latent directly) and the value up-projection applied after the weighted sum of
//     latents (used when positions are already cached, i.e. decode).
// Scores are scaled by softmax_scale (qk_head_dim^-1/2 · mscale² under YaRN). Published
// definition: ../shared/model-spec-v2v3.md §1.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cpu/matmul.h"
#include "engine/cpu/ops.h"
#include "engine/kv_cache.h"

namespace moe::cpu {

class ThreadPool;
class Arena;

enum class MlaForm { automatic, expanded, absorbed };

struct MlaWeights {
    int64_t n_heads = 0, nope_dim = 0, rope_dim = 0, v_dim = 0, latent_dim = 0, q_lora_rank = 0;
    WeightMatrix q;                 // [nh·dq, H] when q_lora_rank is 0
    WeightMatrix q_a;               // [r, H]
    std::vector<float> q_a_norm;    // [r]
    WeightMatrix q_b;               // [nh·dq, r]
    WeightMatrix kv_a;              // [c + dr, H]
    std::vector<float> kv_a_norm;   // [c]
    WeightMatrix kv_b;              // [nh·(dn + dv), c]
    WeightMatrix o;                 // [H, nh·dv]
    float softmax_scale = 1.0f;
    int64_t qk_dim() const { return nope_dim + rope_dim; }
};

// The published code normalises the two low-rank paths with RMSNorm's default epsilon.
constexpr float kMlaNormEps = 1e-6f;

// x [T, H] (normalised input) -> out [T, H]. Writes the latent and RoPE key of positions
// [cache.length(), cache.length()+T) into `layer` of the cache (the caller advances it).
// `rope` covers those positions with rope_dim/2 frequencies.
void mla_forward(const MlaWeights& w, const float* x, int64_t T, int64_t H, KvCache& cache, int64_t layer,
                 const RopeTables& rope, MlaForm form, float* out, ThreadPool& pool, Arena& arena);

}  // namespace moe::cpu
