// The MoE feed-forward block on the CPU: router logits, per-token routing (router.h)
// with the layer's interventions, grouping of tokens by expert so each expert runs one
// matrix product over its tokens, the shared experts, and the weighted sum in rank
// order. Reports the layer's routing to the observer in one batch.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cpu/ffn.h"
#include "engine/expert_mask.h"
#include "engine/routing.h"

namespace moe::cpu {

class ThreadPool;
class Arena;

struct MoeWeights {
    WeightMatrix router;              // [E, H]
    std::vector<FfnWeights> experts;  // E units of width F
    bool has_shared = false;
    FfnWeights shared;                // width F·S
    int64_t n_expert = 0;             // E
    int64_t k = 0;                    // K from the config
    bool norm_topk_prob = false;
    ScoringFunc scoring = ScoringFunc::softmax;
    TopkMethod method = TopkMethod::greedy;
    int64_t n_group = 1, topk_group = 1;
    std::vector<float> bias;  // [E] noaux_tc's selection bias, or empty
    float routed_scaling_factor = 1.0f;
};

struct MoeCall {
    int64_t layer = 0;
    int64_t pos0 = 0;
    TokenSource source = TokenSource::prompt;
    const LayerIntervention* intervention = nullptr;  // null: as published
    MaskMode mode = MaskMode::reroute;
    RoutingObserver* observer = nullptr;
    uint64_t random_stream = 0;  // ForwardOptions::random_stream
};

// x [T, H] (normalised) -> out [T, H].
void moe_forward(const MoeWeights& w, const MoeCall& call, const float* x, int64_t T, int64_t H, float* out,
                 ThreadPool& pool, Arena& arena);

}  // namespace moe::cpu
