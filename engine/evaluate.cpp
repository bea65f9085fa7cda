// Loss evaluation; see evaluate.h.
#include "engine/evaluate.h"

#include <algorithm>
#include <cstdint>

#include "engine/error.h"
#include "engine/exp_poly.h"
#include "engine/scoring.h"

namespace moe {

namespace {

using exp_poly::exp_block;
using exp_poly::exp_le0;

constexpr int kLanes = 8;     // running sums, element i into sum i mod 8
constexpr int kBlock = 1024;  // elements whose e^x are made before they are summed

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
    if (context < 2)
        throw_input_error(
            "eval", "a window of " + std::to_string(context) + " token(s) predicts nothing: at least 2 are needed");
    EvalResult r;
    std::vector<RowScore> rows;
    const auto step = static_cast<size_t>(model.step_tokens());
    for (size_t start = 0; start + 1 < ids.size(); start += static_cast<size_t>(context)) {
        const size_t n = std::min(ids.size() - start, static_cast<size_t>(context));
        if (n < 2) break;
        // Within a window, prefill in chunks through the KV cache, each chunk's rows scored
        // where the backend makes them.
        Session s(model);
        ForwardOptions opt;
        opt.mask = mask;
        opt.observer = observer;
        for (size_t c0 = 0; c0 < n; c0 += step) {
            const size_t cn = std::min(step, n - c0);
            const size_t usable = std::min(cn, n - 1 - c0);  // the window's last token predicts nothing
            ScoreRequest req;
            req.targets = ids.subspan(start + c0 + 1, usable);
            s.forward_scored(ids.subspan(start + c0, cn), opt, req, rows);
            for (size_t t = 0; t < usable; ++t) r.total_nll += rows[t].nll;  // in order
            r.predicted += static_cast<int64_t>(usable);
        }
    }
    return r;
}

}  // namespace moe
