// The softmax top-k router of DeepSeekMoE as a pure per-token function: router logits
// -> probabilities over all routed experts -> masked selection -> gate weights.
// The same function decides on every backend (CUDA uses it as __host__ __device__ later).
// Tie rule: experts are ordered by descending probability; exactly equal probabilities
// are ordered by ascending expert index. Published definition: model-spec.md §1 (MoE FFN).
#pragma once

#include <cstdint>

namespace moe {

struct RouterParams {
    int64_t n_expert = 0;             // E
    int64_t k = 0;                    // experts to select
    bool norm_topk_prob = false;      // renormalise the k weights (only when k > 1, as published)
    const uint8_t* excluded = nullptr;  // [E] or null: experts that may not be selected (reroute)
    int64_t skip_top = 0;             // exclude the r most probable still-eligible experts
    int64_t skip_random = 0;          // then exclude r eligible experts chosen at random
    uint64_t random_key = 0;          // the token's key for skip_random (router_random_key)
};

// The per-token key of the random exclusion: a function of the mask's seed, the layer, the
// caller's stream (e.g. which document window) and the token's position in the sequence, so
// the choice is the same on every backend, thread count and batching.
uint64_t router_random_key(uint64_t seed, int64_t layer, uint64_t stream, int64_t position);

struct RouterStats {
    float entropy = 0;        // nats, over all E probabilities
    float selected_mass = 0;  // Σ p over the selected
    float margin = 0;         // p[rank k-1] − best eligible unselected p (or p[rank k-1])
};

// logits [E] -> experts [k] (rank order), weights [k]; `probs` [E] and `order` [E] are
// scratch. Stats are computed only when `stats` is non-null (they cost E logarithms).
void route_softmax_topk(const float* logits, const RouterParams& p, float* probs, int32_t* order,
                        int32_t* experts, float* weights, RouterStats* stats);

}  // namespace moe
