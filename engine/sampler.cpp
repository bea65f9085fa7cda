// Sampler implementation; see sampler.h.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "engine/error.h"

namespace moe {

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {
    if (!(p.temperature >= 0) || !std::isfinite(p.temperature)) throw_input_error("temperature", "must be >= 0");
    if (!(p.top_p > 0 && p.top_p <= 1)) throw_input_error("top-p", "must be in (0, 1]");
    if (p.top_k < 0) throw_input_error("top-k", "must be >= 0");
    if (!(p.repetition_penalty > 0)) throw_input_error("repetition penalty", "must be > 0");
}

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> history, float penalty) {
    if (penalty == 1.0f) return;
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t id : seen) {
        if (id < 0 || static_cast<size_t>(id) >= logits.size()) continue;
        float& l = logits[static_cast<size_t>(id)];
        l = l > 0 ? l / penalty : l * penalty;
    }
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history) {
    const int64_t V = static_cast<int64_t>(logits.size());
    MOE_ASSERT(V > 0);
    apply_repetition_penalty(logits, history, p_.repetition_penalty);
    if (p_.temperature == 0.0f) {
        int64_t best = 0;
        for (int64_t i = 1; i < V; ++i)
            if (logits[i] > logits[best]) best = i;
        return static_cast<int32_t>(best);
    }
    // Candidates sorted by logit (descending, ties by id), cut by top-k.
    order_.resize(static_cast<size_t>(V));
    for (int64_t i = 0; i < V; ++i) order_[i] = static_cast<int32_t>(i);
    const int64_t keep = (p_.top_k > 0 && p_.top_k < V) ? p_.top_k : V;
    auto by_logit = [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; };
    std::partial_sort(order_.begin(), order_.begin() + keep, order_.end(), by_logit);
    order_.resize(static_cast<size_t>(keep));
    // Softmax of logits / temperature over the candidates.
    probs_.resize(order_.size());
    const double mx = logits[order_[0]] / p_.temperature;
    double sum = 0;
    for (size_t i = 0; i < order_.size(); ++i) {
        probs_[i] = std::exp(logits[order_[i]] / p_.temperature - mx);
        sum += probs_[i];
    }
    // Top-p: the smallest prefix whose probability reaches p (at least one token).
    size_t n = order_.size();
    if (p_.top_p < 1.0f) {
        double acc = 0;
        for (size_t i = 0; i < order_.size(); ++i) {
            acc += probs_[i] / sum;
            if (acc >= p_.top_p) {
                n = i + 1;
                break;
            }
        }
    }
    double total = 0;
    for (size_t i = 0; i < n; ++i) total += probs_[i];
    std::uniform_real_distribution<double> u(0.0, total);
    double r = u(rng_);
    for (size_t i = 0; i < n; ++i) {
        r -= probs_[i];
        if (r < 0) return order_[i];
    }
    return order_[n - 1];
}

}  // namespace moe
