// Softmax top-k routing with masks; see router.h for the definition and tie rule.
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

void route_softmax_topk(const float* logits, const RouterParams& p, float* probs, int32_t* order,
                        int32_t* experts, float* weights, RouterStats* stats) {
    const int64_t E = p.n_expert;
    MOE_ASSERT(p.k >= 1 && p.k <= E);
    float mx = logits[0];
    for (int64_t e = 1; e < E; ++e) mx = std::max(mx, logits[e]);
    float sum = 0;
    for (int64_t e = 0; e < E; ++e) {
        probs[e] = std::exp(logits[e] - mx);
        sum += probs[e];
    }
    const float inv = 1.0f / sum;
    for (int64_t e = 0; e < E; ++e) probs[e] *= inv;

    // Eligible experts, best first (probability descending, index ascending on ties).
    int64_t n = 0;
    for (int64_t e = 0; e < E; ++e)
        if (!p.excluded || !p.excluded[e]) order[n++] = static_cast<int32_t>(e);
    auto better = [probs](int32_t a, int32_t b) { return probs[a] != probs[b] ? probs[a] > probs[b] : a < b; };
    MOE_ASSERT(p.skip_top + p.skip_random + p.k <= n);
    if (p.skip_random > 0) {
        // The r most probable stay in front (skip-top removes them first); of the others,
        // r chosen uniformly without replacement (partial Fisher-Yates, in expert-index
        // order) move behind the eligible range.
        std::partial_sort(order, order + p.skip_top, order + n, better);
        std::sort(order + p.skip_top, order + n);
        uint64_t state = p.random_key;
        for (int64_t j = 0; j < p.skip_random; ++j) {
            const int64_t pool_size = n - p.skip_top - j;
            state = mix64(state);
            const int64_t pick = p.skip_top + static_cast<int64_t>(state % static_cast<uint64_t>(pool_size));
            std::swap(order[pick], order[n - 1 - j]);
        }
        n -= p.skip_random;
    }
    const int64_t need = std::min<int64_t>(n, p.skip_top + p.k + 1);  // +1: the margin's competitor
    std::partial_sort(order, order + need, order + n, better);

    const int32_t* chosen = order + p.skip_top;
    float wsum = 0;
    for (int64_t j = 0; j < p.k; ++j) {
        experts[j] = chosen[j];
        weights[j] = probs[chosen[j]];
        wsum += weights[j];
    }
    if (p.norm_topk_prob && p.k > 1) {
        const float denom = wsum + 1e-20f;
        for (int64_t j = 0; j < p.k; ++j) weights[j] /= denom;
    }
    if (stats) {
        double h = 0;
        for (int64_t e = 0; e < E; ++e)
            if (probs[e] > 0) h -= static_cast<double>(probs[e]) * std::log(static_cast<double>(probs[e]));
        stats->entropy = static_cast<float>(h);
        stats->selected_mass = wsum;
        const float last = probs[chosen[p.k - 1]];
        stats->margin = (p.skip_top + p.k < n) ? last - probs[chosen[p.k]] : last;
    }
}

}  // namespace moe

