// The routers of the DeepSeek MoE family as one pure per-token function: router logits ->
// scores over all routed experts -> masked, possibly group-limited selection -> gate weights.
// The same function decides on every backend: route_topk wraps engine/router_core.h, which
// compiles as __host__ __device__ for the CUDA backend.
//   DeepSeekMoE 16B, V2-Lite: softmax scores, greedy top-k.
//   V2 (group_limited_greedy): a group's score is its best eligible expert's score; only
//     experts of the topk_group best groups keep their score, the others score 0.0 (as the
//     published Hugging Face code masks them) and stay candidates.
//   V3 / R1 (noaux_tc): sigmoid scores; selection on score + bias; a group's score is the
//     sum of its two best eligible biased scores; weights are the unbiased scores.
// Tie rule: experts are ordered by descending selection score; exactly equal scores by
// ascending expert index (groups likewise by ascending group index). Published
// definitions: model-spec.md §1 (MoE FFN) and model-spec-v2v3.md §2; masks: docs/masks.md.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model_config.h"

namespace moe {

struct RouterParams {
    int64_t n_expert = 0;               // E
    int64_t k = 0;                      // experts to select
    bool norm_topk_prob = false;        // renormalise the k weights (only when k > 1, as published)
    const uint8_t* excluded = nullptr;  // [E] or null: experts that may not be selected (reroute)
    int64_t skip_top = 0;               // exclude the r eligible experts with the highest selection score
    int64_t skip_random = 0;            // then exclude r eligible experts chosen at random
    uint64_t random_key = 0;            // the token's key for skip_random (router_random_key)
    ScoringFunc scoring = ScoringFunc::softmax;
    TopkMethod method = TopkMethod::greedy;
    int64_t n_group = 1, topk_group = 1;
    const float* bias = nullptr;          // [E] selection bias (noaux_tc's e_score_correction_bias)
    float routed_scaling_factor = 1.0f;   // V2: when not renormalised; V3: always
};

struct RouterStats {
    float entropy = 0;        // nats, over the normalised scores of all E experts
    float selected_mass = 0;  // Σ normalised score over the selected
    float margin = 0;         // selection score of rank k-1 − best candidate not selected (or rank k-1's)
};

// Per-thread scratch of route_topk, sized for E experts and G groups.
struct RouterScratch {
    std::vector<float> score, select, group_score, group_second;
    std::vector<int32_t> order, group_order, group_count;
    void resize(int64_t n_expert, int64_t n_group);
};

// logits [E] -> experts [k] (rank order), weights [k]. Optional outputs: the selection
// score of each selected expert [k] (biased and group-masked, what the top-k compared) and
// the chosen groups [topk_group] (by descending group score; -1 fills when fewer groups
// had eligible experts). Stats are computed only when `stats` is non-null.
void route_topk(const float* logits, const RouterParams& p, RouterScratch& s, int32_t* experts, float* weights,
                RouterStats* stats, float* selection_scores = nullptr, int32_t* groups = nullptr);

// The per-token key of the random exclusion: a function of the mask's seed, the layer, the
// caller's stream (e.g. which document window) and the token's position in the sequence, so
// the choice is the same on every backend, thread count and batching.
uint64_t router_random_key(uint64_t seed, int64_t layer, uint64_t stream, int64_t position);

}  // namespace moe
