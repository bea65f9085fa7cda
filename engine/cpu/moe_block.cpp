// MoE block implementation; see moe_block.h.
#include "engine/cpu/moe_block.h"

#include <algorithm>
#include <cstring>

#include "engine/cpu/arena.h"
#include "engine/cpu/thread_pool.h"
#include "engine/moe_dispatch.h"
#include "engine/router.h"

namespace moe::cpu {

void moe_forward(const MoeWeights& w, const MoeCall& call, const float* x, int64_t T, int64_t H, float* out,
                 ThreadPool& pool, Arena& arena) {
    const int64_t E = w.n_expert;
    const LayerIntervention* li = call.intervention;
    const int64_t k = li ? li->k : w.k;
    const bool reroute = li && call.mode == MaskMode::reroute && li->n_disabled > 0;
    const bool drop = li && call.mode == MaskMode::drop && li->n_disabled > 0;
    const bool want_stats = call.observer != nullptr;

    // 1. Router: logits [T, E], then per-token selection.
    float* logits = arena.alloc<float>(static_cast<size_t>(T * E));  // [T, E]
    matmul(x, T, H, w.router, logits, E, pool);
    std::vector<int32_t> experts(static_cast<size_t>(T * k));  // [T, k]
    std::vector<float> weights(static_cast<size_t>(T * k));    // [T, k]
    std::vector<float> entropy, mass, margin;
    if (want_stats) {
        entropy.resize(static_cast<size_t>(T));
        mass.resize(static_cast<size_t>(T));
        margin.resize(static_cast<size_t>(T));
    }
    RouterParams rp;
    rp.n_expert = E;
    rp.k = k;
    rp.norm_topk_prob = w.norm_topk_prob;
    rp.excluded = reroute ? li->disabled.data() : nullptr;
    rp.skip_top = li ? li->skip_top : 0;
    rp.skip_random = li ? li->skip_random : 0;
    rp.scoring = w.scoring;
    rp.method = w.method;
    rp.n_group = w.n_group;
    rp.topk_group = w.topk_group;
    rp.bias = w.bias.empty() ? nullptr : w.bias.data();
    rp.routed_scaling_factor = w.routed_scaling_factor;
    const bool grouped = w.method != TopkMethod::greedy && w.n_group > 1;
    const bool report_selection = want_stats && (grouped || !w.bias.empty());
    std::vector<float> selection(report_selection ? static_cast<size_t>(T * k) : 0);
    std::vector<int32_t> chosen_groups(report_selection && grouped ? static_cast<size_t>(T * w.topk_group) : 0);
    {
        // Tokens route independently: chunks of tokens across threads.
        constexpr int64_t kChunk = 32;
        pool.parallel_for((T + kChunk - 1) / kChunk, [&](int64_t chunk, int) {
            RouterScratch scratch;
            scratch.resize(E, w.n_group);
            RouterParams tp = rp;
            for (int64_t t = chunk * kChunk; t < std::min(T, (chunk + 1) * kChunk); ++t) {
                RouterStats st;
                if (tp.skip_random > 0)
                    tp.random_key = router_random_key(li->random_seed, call.layer, call.random_stream, call.pos0 + t);
                route_topk(logits + t * E, tp, scratch, experts.data() + t * k, weights.data() + t * k,
                           want_stats ? &st : nullptr, selection.empty() ? nullptr : selection.data() + t * k,
                           chosen_groups.empty() ? nullptr : chosen_groups.data() + t * w.topk_group);
                if (want_stats) {
                    entropy[t] = st.entropy;
                    mass[t] = st.selected_mass;
                    margin[t] = st.margin;
                }
            }
        });
    }
    if (call.observer) {
        RoutingBatch b;
        b.layer = call.layer;
        b.pos0 = call.pos0;
        b.n_tokens = T;
        b.k = k;
        b.source = call.source;
        b.weight_kind = (w.norm_topk_prob && k > 1) ? GateWeightKind::renormalized : GateWeightKind::router_prob;
        b.shared_off = li && li->shared_off;
        b.experts = experts.data();
        b.gate_weights = weights.data();
        b.entropy = entropy.data();
        b.selected_mass = mass.data();
        b.margin = margin.data();
        b.selection_scores = selection.empty() ? nullptr : selection.data();
        b.groups = chosen_groups.empty() ? nullptr : chosen_groups.data();
        b.n_groups = chosen_groups.empty() ? 0 : w.topk_group;
        b.weight_scale = w.routed_scaling_factor;
        call.observer->on_routing(b);
    }

    // 2. Group (token, rank) slots by expert: counting sort, stable in token order.
    const uint8_t* dropped = drop ? li->disabled.data() : nullptr;
    std::vector<int64_t> count(static_cast<size_t>(E + 1)), cursor(static_cast<size_t>(E));
    dispatch::expert_offsets(experts.data(), T * k, dropped, E, count.data());
    const int64_t n_slots = count[static_cast<size_t>(E)];
    std::vector<int64_t> slot_row(static_cast<size_t>(T * k));  // [T, k] -> row in gathered, -1: dropped
    dispatch::slot_rows(experts.data(), T * k, dropped, count.data(), E, cursor.data(), slot_row.data());
    float* gathered = arena.alloc<float>(static_cast<size_t>(n_slots * H));  // [n_slots, H]
    float* results = arena.alloc<float>(static_cast<size_t>(n_slots * H));   // [n_slots, H]
    for (int64_t s = 0; s < T * k; ++s)
        if (const int64_t row = slot_row[static_cast<size_t>(s)]; row >= 0)
            std::memcpy(gathered + row * H, x + (s / k) * H, static_cast<size_t>(H) * sizeof(float));

    // 3. All experts with tokens, and the shared unit, in one set of parallel loops.
    std::vector<FfnUnit> units;
    for (int64_t e = 0; e < E; ++e) {
        const int64_t n = count[e + 1] - count[e];
        if (n == 0) continue;
        units.push_back({&w.experts[static_cast<size_t>(e)], gathered + count[e] * H, results + count[e] * H, n});
    }
    const bool shared_on = w.has_shared && !(li && li->shared_off);
    if (shared_on) units.push_back({&w.shared, x, out, T});
    run_ffn_units(units, H, pool, arena);

    // 4. out[t] = shared(x)[t] + Σ_rank w·expert(x)[t], summed in rank order.
    pool.parallel_for(T, [&](int64_t t, int) {
        float* o = out + t * H;
        if (!shared_on) std::fill(o, o + H, 0.0f);
        for (int64_t r = 0; r < k; ++r) {
            const int64_t row = slot_row[static_cast<size_t>(t * k + r)];
            if (row < 0) continue;  // dropped
            const float g = weights[static_cast<size_t>(t * k + r)];
            const float* src = results + row * H;
            for (int64_t i = 0; i < H; ++i) o[i] += g * src[i];
        }
    });
}

}  // namespace moe::cpu
