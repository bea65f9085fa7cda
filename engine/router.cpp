// The routers with masks; see router.h for the definitions and tie rule.
#include "engine/router.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace moe {

namespace {

// splitmix64: a counter-based generator, identical on host and device.
uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace

uint64_t router_random_key(uint64_t seed, int64_t layer, uint64_t stream, int64_t position) {
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
    MOE_ASSERT(p.k >= 1 && p.k <= E && s.score.size() >= static_cast<size_t>(E));
    float* score = s.score.data();
    float* sel = s.select.data();
    int32_t* order = s.order.data();

    // 1. Scores (f32, as the published code computes them).
    float score_sum = 0;
    if (p.scoring == ScoringFunc::softmax) {
        float mx = logits[0];
        for (int64_t e = 1; e < E; ++e) mx = std::max(mx, logits[e]);
        float sum = 0;
        for (int64_t e = 0; e < E; ++e) {
            score[e] = std::exp(logits[e] - mx);
            sum += score[e];
        }
        const float inv = 1.0f / sum;
        for (int64_t e = 0; e < E; ++e) score[e] *= inv;
        score_sum = 1.0f;
    } else {
        for (int64_t e = 0; e < E; ++e) {
            score[e] = 1.0f / (1.0f + std::exp(-logits[e]));
            score_sum += score[e];
        }
    }
    for (int64_t e = 0; e < E; ++e) sel[e] = p.bias ? score[e] + p.bias[e] : score[e];

    // 2. Eligible experts; skip-top removes the best, skip-random random ones.
    int64_t n = 0;
    for (int64_t e = 0; e < E; ++e)
        if (!p.excluded || !p.excluded[e]) order[n++] = static_cast<int32_t>(e);
    auto better = [sel](int32_t a, int32_t b) { return sel[a] != sel[b] ? sel[a] > sel[b] : a < b; };
    MOE_ASSERT(p.skip_top + p.skip_random + p.k <= n);
    if (p.skip_top > 0) {
        std::partial_sort(order, order + p.skip_top, order + n, better);
        std::sort(order + p.skip_top, order + n);  // the rest back in index order
        std::rotate(order, order + p.skip_top, order + n);
        n -= p.skip_top;
    }
    if (p.skip_random > 0) {
        // r of the remaining experts (in expert-index order) chosen uniformly without
        // replacement (partial Fisher-Yates) move behind the eligible range.
        uint64_t state = p.random_key;
        for (int64_t j = 0; j < p.skip_random; ++j) {
            state = mix64(state);
            const int64_t pick = static_cast<int64_t>(state % static_cast<uint64_t>(n - j));
            std::swap(order[pick], order[n - 1 - j]);
        }
        n -= p.skip_random;
    }

    // 3. Group limiting: groups scored over their eligible experts; experts of groups not
    // kept score 0.0 (and remain candidates, as in the published code).
    const bool grouped = p.method != TopkMethod::greedy && p.n_group > 1;
    if (grouped) {
        const int64_t G = p.n_group, per = E / G;
        float* best = s.group_score.data();
        float* second = s.group_second.data();
        int32_t* count = s.group_count.data();
        int32_t* go = s.group_order.data();
        std::fill(count, count + G, 0);
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
            if (p.method == TopkMethod::noaux_tc && count[g] > 1) best[g] += second[g];
            go[n_groups++] = static_cast<int32_t>(g);
        }
        const int64_t keep = std::min(p.topk_group, n_groups);
        std::partial_sort(go, go + keep, go + n_groups,
                          [best](int32_t a, int32_t b) { return best[a] != best[b] ? best[a] > best[b] : a < b; });
        if (groups)
            for (int64_t j = 0; j < p.topk_group; ++j) groups[j] = j < keep ? go[j] : -1;
        std::fill(count, count + G, 0);  // now: 1 = kept
        for (int64_t j = 0; j < keep; ++j) count[go[j]] = 1;
        for (int64_t i = 0; i < n; ++i)
            if (!count[order[i] / per]) sel[order[i]] = 0.0f;
    }

    // 4. Top-k of the candidates by selection score.
    const int64_t need = std::min<int64_t>(n, p.k + 1);  // +1: the margin's competitor
    std::partial_sort(order, order + need, order + n, better);

    // 5. Weights: softmax -> the (group-masked) score; sigmoid -> the unbiased score.
    float wsum = 0, mass = 0;
    for (int64_t j = 0; j < p.k; ++j) {
        const int32_t e = order[j];
        experts[j] = e;
        weights[j] = p.scoring == ScoringFunc::sigmoid ? score[e] : (grouped ? sel[e] : score[e]);
        wsum += weights[j];
        mass += score[e];
        if (selection_scores) selection_scores[j] = sel[e];
    }
    const bool renorm = p.norm_topk_prob && p.k > 1;
    if (renorm) {
        const float denom = wsum + 1e-20f;
        for (int64_t j = 0; j < p.k; ++j) weights[j] /= denom;
    }
    if ((!renorm || p.scoring == ScoringFunc::sigmoid) && p.routed_scaling_factor != 1.0f)
        for (int64_t j = 0; j < p.k; ++j) weights[j] *= p.routed_scaling_factor;

    if (stats) {
        double h = 0;
        const double inv = 1.0 / static_cast<double>(score_sum);
        for (int64_t e = 0; e < E; ++e) {
            const double q = static_cast<double>(score[e]) * inv;
            if (q > 0) h -= q * std::log(q);
        }
        stats->entropy = static_cast<float>(h);
        stats->selected_mass = p.scoring == ScoringFunc::softmax ? mass : static_cast<float>(mass * inv);
        const float last = sel[order[p.k - 1]];
        stats->margin = (p.k < n) ? last - sel[order[p.k]] : last;
    }
}

}  // namespace moe
