// The per-token router of engine/router.h written once for every backend: plain data in,
// plain pointers for scratch, no allocation, no exceptions, no standard algorithms — so the
// same code compiles as __host__ __device__ under nvcc (engine/cuda/) and is what the CPU
// backend runs. Definitions, masks and the tie rule: engine/router.h.
//
// Orderings are selections under one strict total order (descending score, then ascending
// index), so they give exactly what a sort by that order would, whatever the algorithm.
#pragma once

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define MOE_HD __host__ __device__
#else
#define MOE_HD
#endif

namespace moe::router_core {

struct Args {
    int32_t n_expert = 0;               // E
    int32_t k = 0;                      // experts to select (1 ≤ k; skip_top + skip_random + k ≤ eligible)
    bool norm_topk_prob = false;        // renormalise the k weights (only when k > 1, as published)
    bool sigmoid = false;               // scoring: sigmoid (V3) or softmax
    int32_t method = 0;                 // 0 greedy, 1 group_limited_greedy, 2 noaux_tc
    int32_t n_group = 1, topk_group = 1;
    const uint8_t* excluded = nullptr;  // [E] or null
    int32_t skip_top = 0, skip_random = 0;
    uint64_t random_key = 0;
    const float* bias = nullptr;        // [E] or null
    float routed_scaling_factor = 1.0f;
};

// Caller-owned scratch: score, select [E]; order [E]; group_best, group_second [G];
// group_count, group_order [G].
struct Scratch {
    float* score;
    float* select;
    int32_t* order;
    float* group_best;
    float* group_second;
    int32_t* group_count;
    int32_t* group_order;
};

struct Stats {
    float entropy = 0, selected_mass = 0, margin = 0;
};

// splitmix64: a counter-based generator, identical on host and device.
MOE_HD inline uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// a before b: higher value, then lower index.
MOE_HD inline bool before(const float* v, int32_t a, int32_t b) { return v[a] != v[b] ? v[a] > v[b] : a < b; }

// Moves the m first of ids[0, n) under `before(v, ·, ·)` to ids[0, m), in that order.
MOE_HD inline void select_first(int32_t* ids, int64_t n, int64_t m, const float* v) {
    for (int64_t i = 0; i < m && i < n; ++i) {
        int64_t best = i;
        for (int64_t j = i + 1; j < n; ++j)
            if (before(v, ids[j], ids[best])) best = j;
        const int32_t t = ids[i];
        ids[i] = ids[best];
        ids[best] = t;
    }
}

// logits [E] -> experts [k] (rank order), weights [k]; optional stats, selection scores [k]
// and chosen groups [topk_group] (-1 fills), as engine/router.h route_topk.
MOE_HD inline void route(const float* logits, const Args& p, const Scratch& s, int32_t* experts, float* weights,
                         Stats* stats, float* selection_scores, int32_t* groups) {
    const int64_t E = p.n_expert;
    float* score = s.score;
    float* sel = s.select;
    int32_t* order = s.order;

    // 1. Scores (f32, as the published code computes them).
    float score_sum = 0;
    if (!p.sigmoid) {
        float mx = logits[0];
        for (int64_t e = 1; e < E; ++e) mx = logits[e] > mx ? logits[e] : mx;
        float sum = 0;
        for (int64_t e = 0; e < E; ++e) {
            score[e] = expf(logits[e] - mx);
            sum += score[e];
        }
        const float inv = 1.0f / sum;
        for (int64_t e = 0; e < E; ++e) score[e] *= inv;
        score_sum = 1.0f;
    } else {
        for (int64_t e = 0; e < E; ++e) {
            score[e] = 1.0f / (1.0f + expf(-logits[e]));
            score_sum += score[e];
        }
    }
    for (int64_t e = 0; e < E; ++e) sel[e] = p.bias ? score[e] + p.bias[e] : score[e];

    // 2. Eligible experts in index order; skip-top removes the best, skip-random random ones
    // (both leave order[0, n) as the candidates, still in index order before skip-random).
    int64_t n = 0;
    for (int64_t e = 0; e < E; ++e)
        if (!p.excluded || !p.excluded[e]) order[n++] = static_cast<int32_t>(e);
    for (int64_t j = 0; j < p.skip_top; ++j) {
        int64_t best = 0;
        for (int64_t i = 1; i < n; ++i)
            if (before(sel, order[i], order[best])) best = i;
        const int32_t removed = order[best];
        for (int64_t i = best; i + 1 < n; ++i) order[i] = order[i + 1];
        order[--n] = removed;
    }
    if (p.skip_random > 0) {
        // r of the remaining experts chosen uniformly without replacement (partial
        // Fisher-Yates) move behind the eligible range.
        uint64_t state = p.random_key;
        for (int64_t j = 0; j < p.skip_random; ++j) {
            state = mix64(state);
            const int64_t pick = static_cast<int64_t>(state % static_cast<uint64_t>(n - j));
            const int32_t t = order[pick];
            order[pick] = order[n - 1 - j];
            order[n - 1 - j] = t;
        }
        n -= p.skip_random;
    }

    // 3. Group limiting: groups scored over their eligible experts; experts of groups not
    // kept score 0.0 (and remain candidates, as in the published code).
    const bool grouped = p.method != 0 && p.n_group > 1;
    if (grouped) {
        const int64_t G = p.n_group, per = E / G;
        float* best = s.group_best;
        float* second = s.group_second;
        int32_t* count = s.group_count;
        int32_t* go = s.group_order;
        for (int64_t g = 0; g < G; ++g) count[g] = 0;
        for (int64_t i = 0; i < n; ++i) {
            const int32_t e = order[i];
            const int64_t g = e / per;
            const float v = sel[e];
            if (count[g] == 0) {
                best[g] = v;
            } else if (v > best[g]) {
                second[g] = best[g];
                best[g] = v;
            } else if (count[g] == 1 || v > second[g]) {
                second[g] = v;
            }
            ++count[g];
        }
        int64_t n_groups = 0;
        for (int64_t g = 0; g < G; ++g) {
            if (count[g] == 0) continue;  // no eligible expert: the group cannot be chosen
            if (p.method == 2 && count[g] > 1) best[g] += second[g];
            go[n_groups++] = static_cast<int32_t>(g);
        }
        const int64_t keep = p.topk_group < n_groups ? p.topk_group : n_groups;
        select_first(go, n_groups, keep, best);
        if (groups)
            for (int64_t j = 0; j < p.topk_group; ++j) groups[j] = j < keep ? go[j] : -1;
        for (int64_t g = 0; g < G; ++g) count[g] = 0;  // now: 1 = kept
        for (int64_t j = 0; j < keep; ++j) count[go[j]] = 1;
        for (int64_t i = 0; i < n; ++i)
            if (!count[order[i] / per]) sel[order[i]] = 0.0f;
    }

    // 4. Top-k of the candidates by selection score (+1: the margin's competitor).
    const int64_t need = n < p.k + 1 ? n : p.k + 1;
    select_first(order, n, need, sel);

    // 5. Weights: softmax -> the (group-masked) score; sigmoid -> the unbiased score.
    float wsum = 0, mass = 0;
    for (int64_t j = 0; j < p.k; ++j) {
        const int32_t e = order[j];
        experts[j] = e;
        weights[j] = p.sigmoid ? score[e] : (grouped ? sel[e] : score[e]);
        wsum += weights[j];
        mass += score[e];
        if (selection_scores) selection_scores[j] = sel[e];
    }
    const bool renorm = p.norm_topk_prob && p.k > 1;
    if (renorm) {
        const float denom = wsum + 1e-20f;
        for (int64_t j = 0; j < p.k; ++j) weights[j] /= denom;
    }
    if ((!renorm || p.sigmoid) && p.routed_scaling_factor != 1.0f)
        for (int64_t j = 0; j < p.k; ++j) weights[j] *= p.routed_scaling_factor;

    if (stats) {
        double h = 0;
        const double inv = 1.0 / static_cast<double>(score_sum);
        for (int64_t e = 0; e < E; ++e) {
            const double q = static_cast<double>(score[e]) * inv;
            if (q > 0) h -= q * log(q);
        }
        stats->entropy = static_cast<float>(h);
        stats->selected_mass = !p.sigmoid ? mass : static_cast<float>(mass * inv);
        const float last = sel[order[p.k - 1]];
        stats->margin = (p.k < n) ? last - sel[order[p.k]] : last;
    }
}

}  // namespace moe::router_core
