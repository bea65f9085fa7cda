// Sampler implementation; see sampler.h.
#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "engine/error.h"
#include "engine/exp_poly.h"

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

// Lanes of 32 running maxima, each with the first index where it was reached: loops the
// compiler turns into vector compares and blends (a clone for each instruction set, picked when
// the program loads).
__attribute__((target_clones("avx512f", "avx2", "default"))) int32_t argmax(std::span<const float> v) {
    const int64_t n = static_cast<int64_t>(v.size());
    if (n == 0 || std::isnan(v[0])) return 0;
    constexpr int kLanes = 32;
    float best[kLanes];
    int32_t at[kLanes];
    for (int j = 0; j < kLanes; ++j) {
        best[j] = -INFINITY;
        at[j] = -1;
    }
    const float* x = v.data();
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int j = 0; j < kLanes; ++j) {
            const float value = x[i + j];
            const bool larger = value > best[j];
            best[j] = larger ? value : best[j];
            at[j] = larger ? static_cast<int32_t>(i + j) : at[j];
        }
    float m = -INFINITY;
    int32_t r = -1;
    for (int j = 0; j < kLanes; ++j)
        if (at[j] >= 0 && (best[j] > m || (best[j] == m && at[j] < r))) {
            m = best[j];
            r = at[j];
        }
    for (; i < n; ++i)
        if (x[i] > m) {
            m = x[i];
            r = static_cast<int32_t>(i);
        }
    return r < 0 ? 0 : r;
}

namespace {

constexpr int kWeightBlock = 1024;

// A candidate's weight: e^x for x = logit / T − max / T rounded to float, e^x by exp_poly's
// polynomial in double, rounded to float.
inline double softmax_weight(float logit, float temperature, double mx) {
    const float x = static_cast<float>(logit / temperature - mx);
    return static_cast<float>(exp_poly::exp_le0(static_cast<double>(x)));
}

// w[i] = softmax_weight(l[i], …) for i < n: the loop the compiler vectorises.
__attribute__((target_clones("avx512f", "avx2", "default"))) void softmax_weights(const float* l, int n,
                                                                                  float temperature, double mx,
                                                                                  double* w) {
    for (int i = 0; i < n; ++i) w[i] = softmax_weight(l[i], temperature, mx);
}

}  // namespace

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history) {
    const int64_t V = static_cast<int64_t>(logits.size());
    MOE_ASSERT(V > 0);
    apply_repetition_penalty(logits, history, p_.repetition_penalty);
    if (p_.temperature == 0.0f) return argmax(logits);
    // Candidates ranked by logit (descending, ties by id); neither the top-k cut nor the top-p
    // cut sorts them: a sort of a 100k vocabulary cost more than a decode step on a GPU.
    const auto before = [](const Candidate& a, const Candidate& b) {
        return a.logit != b.logit ? a.logit > b.logit : a.id < b.id;
    };
    const auto at = [&](size_t i) { return cand_.begin() + static_cast<std::ptrdiff_t>(i); };
    cand_.resize(static_cast<size_t>(V));
    size_t n = cand_.size();
    double sum = 0;
    if (p_.top_k > 0 && p_.top_k < V) {
        for (int64_t i = 0; i < V; ++i) cand_[static_cast<size_t>(i)] = {logits[i], static_cast<int32_t>(i), 0.0};
        n = static_cast<size_t>(p_.top_k);
        std::nth_element(cand_.begin(), at(n), cand_.end(), before);
        // Softmax of logits / temperature over the k candidates.
        float top = cand_[0].logit;
        for (size_t i = 1; i < n; ++i) top = std::max(top, cand_[i].logit);
        const double mx = top / p_.temperature;
        for (size_t i = 0; i < n; ++i) {
            cand_[i].weight = softmax_weight(cand_[i].logit, p_.temperature, mx);
            sum += cand_[i].weight;
        }
    } else {
        // Over the whole vocabulary, in id order: the weights made a block at a time by a
        // vectorised loop.
        const double mx = logits[static_cast<size_t>(argmax(logits))] / p_.temperature;  // in float, as top-k's
        double w[kWeightBlock];
        for (int64_t i0 = 0; i0 < V; i0 += kWeightBlock) {
            const int nb = static_cast<int>(std::min<int64_t>(kWeightBlock, V - i0));
            softmax_weights(logits.data() + i0, nb, p_.temperature, mx, w);
            for (int j = 0; j < nb; ++j) {
                cand_[static_cast<size_t>(i0 + j)] = {logits[i0 + j], static_cast<int32_t>(i0 + j), w[j]};
                sum += w[j];
            }
        }
    }
    const auto mass = [&](size_t from, size_t to) {
        double m = 0;
        for (size_t i = from; i < to; ++i) m += cand_[i].weight;
        return m;
    };
    // Top-p: the smallest prefix of the ranking whose probability reaches p (at least one
    // token), narrowed by halves: cand_[lo, hi) all rank before cand_[hi, n) and after
    // cand_[0, lo), and the prefix ends in (lo, hi].
    size_t cut = n;
    double total = sum;
    if (p_.top_p < 1.0f) {
        const double target = p_.top_p * sum;
        // A candidate of weight w is preceded by at least sum - n w, which reaches the target
        // when w <= (sum - target) / n: such light ones (most of a trained model's vocabulary)
        // are set aside at once, behind the rest, where they rank anyway.
        const double light = 0.5 * (sum - target) / static_cast<double>(n);
        const size_t live = static_cast<size_t>(
            std::partition(cand_.begin(), at(n), [&](const Candidate& c) { return c.weight > light; }) - cand_.begin());
        size_t lo = 0, hi = live;
        double below = 0;  // mass of cand_[0, lo)
        while (hi - lo > 32) {
            const size_t mid = lo + (hi - lo) / 2;
            std::nth_element(at(lo), at(mid), at(hi), before);
            const double upper = mass(lo, mid);
            if (below + upper >= target) {
                hi = mid;
            } else {
                below += upper;
                lo = mid;
            }
        }
        std::sort(at(lo), at(hi), before);
        cut = hi;
        for (size_t i = lo; i < hi; ++i) {
            below += cand_[i].weight;
            if (below >= target) {
                cut = i + 1;
                break;
            }
        }
        total = mass(0, cut);
    }
    // The draw: a point of [0, total) against the candidates' weights, in the order they lie.
    std::uniform_real_distribution<double> u(0.0, total);
    double r = u(rng_);
    size_t last = 0;  // where rounding leaves r short of the end: the last candidate of weight
    for (size_t i = 0; i < cut; ++i) {
        if (cand_[i].weight <= 0) continue;  // an id of probability 0 (a logit of -inf) is never drawn
        last = i;
        r -= cand_[i].weight;
        if (r < 0) return cand_[i].id;
    }
    return cand_[last].id;
}

}  // namespace moe
