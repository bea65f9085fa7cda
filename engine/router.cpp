// The routers with masks; see router.h for the definitions and tie rule.
#include "engine/router.h"

#include <cstdint>

#include "engine/error.h"
#include "engine/router_core.h"

namespace moe {

uint64_t router_random_key(uint64_t seed, int64_t layer, uint64_t stream, int64_t position) {
    using router_core::mix64;
    uint64_t h = mix64(seed);
    h = mix64(h ^ static_cast<uint64_t>(layer));
    h = mix64(h ^ stream);
    return mix64(h ^ static_cast<uint64_t>(position));
}

void RouterScratch::resize(int64_t n_expert, int64_t n_group) {
    score.resize(static_cast<size_t>(n_expert));
    select.resize(static_cast<size_t>(n_expert));
    order.resize(static_cast<size_t>(n_expert));
    group_score.resize(static_cast<size_t>(n_group));
    group_second.resize(static_cast<size_t>(n_group));
    group_count.resize(static_cast<size_t>(n_group));
    group_order.resize(static_cast<size_t>(n_group));
}

void route_topk(const float* logits, const RouterParams& p, RouterScratch& s, int32_t* experts, float* weights,
                RouterStats* stats, float* selection_scores, int32_t* groups) {
    const int64_t E = p.n_expert;
    MOE_ASSERT(p.k >= 1 && p.k <= E && s.score.size() >= static_cast<size_t>(E) && E <= INT32_MAX);
    const bool grouped = p.method != TopkMethod::greedy && p.n_group > 1;
    MOE_ASSERT(!grouped || (s.group_score.size() >= static_cast<size_t>(p.n_group) && E % p.n_group == 0));
    int64_t eligible = E;
    if (p.excluded)
        for (int64_t e = 0; e < E; ++e) eligible -= p.excluded[e] ? 1 : 0;
    MOE_ASSERT(p.skip_top + p.skip_random + p.k <= eligible);

    router_core::Args a;
    a.n_expert = static_cast<int32_t>(E);
    a.k = static_cast<int32_t>(p.k);
    a.norm_topk_prob = p.norm_topk_prob;
    a.sigmoid = p.scoring == ScoringFunc::sigmoid;
    a.method = p.method == TopkMethod::greedy ? 0 : p.method == TopkMethod::group_limited_greedy ? 1 : 2;
    a.n_group = static_cast<int32_t>(p.n_group);
    a.topk_group = static_cast<int32_t>(p.topk_group);
    a.excluded = p.excluded;
    a.skip_top = static_cast<int32_t>(p.skip_top);
    a.skip_random = static_cast<int32_t>(p.skip_random);
    a.random_key = p.random_key;
    a.bias = p.bias;
    a.routed_scaling_factor = p.routed_scaling_factor;
    const router_core::Scratch sc{s.score.data(),        s.select.data(),       s.order.data(),      s.group_score.data(),
                                  s.group_second.data(), s.group_count.data(), s.group_order.data()};
    router_core::Stats st;
    router_core::route(logits, a, sc, experts, weights, stats ? &st : nullptr, selection_scores, groups);
    if (stats) {
        stats->entropy = st.entropy;
        stats->selected_mass = st.selected_mass;
        stats->margin = st.margin;
    }
}

}  // namespace moe
