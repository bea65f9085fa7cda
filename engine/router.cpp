// Softmax top-k routing with masks; see router.h for the definition and tie rule.
#include "engine/router.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace moe {

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
    const int64_t need = std::min<int64_t>(n, p.skip_top + p.k + 1);  // +1: the margin's competitor
    MOE_ASSERT(p.skip_top + p.k <= n);
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

