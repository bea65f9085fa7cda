// Loss evaluation; see evaluate.h.
#include "engine/evaluate.h"

#include <algorithm>
#include <bit>
#include <cstdint>

#include "engine/error.h"

namespace moe {

namespace {
constexpr size_t kChunk = 256;  // tokens per forward step inside a window
}  // namespace

namespace {

// e^x for x ≤ 0: x = k·ln 2 + r, |r| ≤ ln 2 / 2 (k rounded to nearest by adding 1.5·2^52), e^r
// by its Taylor polynomial to r^13 (the next term below 2^-57), scaled by 2^k built in the
// exponent bits; 0 below -708 (where 2^k would be subnormal), a NaN kept. Plain operations and
// selects by bit masks, which the compiler vectorises for every instruction set (this file is
// compiled with -ffp-contract=off: no multiply and add fused), so every clone below computes
// the same bits.
inline double exp_le0(double x) {
    const bool nan = x != x;
    const bool tiny = x < -708.0;
    const uint64_t m_nan = -static_cast<uint64_t>(nan), m_tiny = -static_cast<uint64_t>(tiny);
    const double xs = std::bit_cast<double>(std::bit_cast<uint64_t>(x) & ~(m_nan | m_tiny));  // 0 where nan or tiny
    constexpr double kShift = 6755399441055744.0;                                             // 1.5 · 2^52
    const double t = xs * 1.4426950408889634 + kShift;
    const double k = t - kShift;
    const double r = (xs - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;  // 1/13!, then Horner down to 1/0!
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    const uint64_t k_bits = std::bit_cast<uint64_t>(t) - std::bit_cast<uint64_t>(kShift);  // k, two's complement
    const double e = p * std::bit_cast<double>((k_bits + 1023u) << 52);
    const uint64_t e_bits = std::bit_cast<uint64_t>(e) & ~m_tiny;
    return std::bit_cast<double>((e_bits & ~m_nan) | (std::bit_cast<uint64_t>(x) & m_nan));
}

constexpr int kLanes = 8;     // running sums, element i into sum i mod 8
constexpr int kBlock = 1024;  // elements whose e^x are made before they are summed

// e[i] = exp_le0(x[i] + shift) for i < n: the loop the compiler vectorises.
inline void exp_block(const float* x, double shift, double* e, int n) {
    for (int i = 0; i < n; ++i) e[i] = exp_le0(static_cast<double>(x[i]) + shift);
}

}  // namespace

double exp_nonpositive(double x) {
    return exp_le0(x);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) LogSumExp log_sum_exp(std::span<const float> logits) {
    const size_t n = logits.size();
    LogSumExp z;
    if (n == 0) return z;
    const float* l = logits.data();
    // The largest logit as std::max keeps it from l[0] on (a NaN ignored unless it is l[0]).
    float m[kLanes];
    for (int j = 0; j < kLanes; ++j) m[j] = l[0];
    size_t v = 0;
    for (; v + kLanes <= n; v += kLanes)
        for (int j = 0; j < kLanes; ++j) m[j] = m[j] < l[v + j] ? l[v + j] : m[j];
    double mx = m[0];
    for (int j = 1; j < kLanes; ++j) mx = std::max(mx, static_cast<double>(m[j]));
    for (; v < n; ++v) mx = std::max(mx, static_cast<double>(l[v]));
    double s[kLanes] = {};
    double e[kBlock];
    for (v = 0; v < n; v += kBlock) {
        const int nb = static_cast<int>(std::min<size_t>(kBlock, n - v));
        exp_block(l + v, -mx, e, nb);
        for (int i = 0; i < nb; i += kLanes)
            for (int j = 0; j < kLanes; ++j) s[j] += i + j < nb ? e[i + j] : 0.0;
    }
    for (int j = 0; j < kLanes; ++j) z.sum += s[j];
    z.max = mx;
    return z;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) double kl_divergence(std::span<const float> log_p,
                                                                                  std::span<const float> log_q) {
    MOE_ASSERT(log_p.size() == log_q.size());
    const size_t n = log_p.size();
    const float* p = log_p.data();
    const float* q = log_q.data();
    double s[kLanes] = {};
    double e[kBlock];
    for (size_t v = 0; v < n; v += kBlock) {
        const int nb = static_cast<int>(std::min<size_t>(kBlock, n - v));
        exp_block(p + v, 0.0, e, nb);
        for (int i = 0; i < nb; i += kLanes)
            for (int j = 0; j < kLanes; ++j)
                s[j] += i + j < nb ? e[i + j] * (static_cast<double>(p[v + i + j]) - static_cast<double>(q[v + i + j]))
                                   : 0.0;
    }
    double kl = 0;
    for (int j = 0; j < kLanes; ++j) kl += s[j];
    return kl;
}

double token_nll(std::span<const float> logits, int32_t target, const LogSumExp& z) {
    return -(static_cast<double>(logits[static_cast<size_t>(target)]) - z.max - std::log(z.sum));
}

double token_nll(std::span<const float> logits, int32_t target) {
    return token_nll(logits, target, log_sum_exp(logits));
}

EvalResult evaluate_loss(const Model& model, std::span<const int32_t> ids, int64_t context, const ExpertMask* mask,
                         RoutingObserver* observer) {
    if (ids.size() < 2) throw_input_error("eval", "need at least 2 tokens to predict one");
    MOE_ASSERT(context >= 2);
    const int64_t V = model.config().vocab_size;
    EvalResult r;
    std::vector<float> logits;
    for (size_t start = 0; start + 1 < ids.size(); start += static_cast<size_t>(context)) {
        const size_t n = std::min(ids.size() - start, static_cast<size_t>(context));
        if (n < 2) break;
        // Within a window, prefill in chunks through the KV cache so the logits buffer stays
        // [chunk, V] however long the context is.
        Session s(model);
        ForwardOptions opt;
        opt.mask = mask;
        opt.observer = observer;
        for (size_t c0 = 0; c0 < n; c0 += kChunk) {
            const size_t cn = std::min(kChunk, n - c0);
            s.forward(ids.subspan(start + c0, cn), opt, logits);
            for (size_t t = 0; t < cn; ++t) {
                const size_t pos = c0 + t;  // in the window
                if (pos + 1 >= n) break;
                r.total_nll += token_nll(std::span<const float>(logits).subspan(t * V, V), ids[start + pos + 1]);
                ++r.predicted;
            }
        }
    }
    return r;
}

}  // namespace moe
