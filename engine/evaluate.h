// Language-model loss of a token sequence: the mean negative log-likelihood (nats) of
// each token given those before it, over windows of at most `context` tokens (each
// window starts fresh and predicts its tokens after the first). Used by `moewb eval`
// and, later, by the ablation evaluator.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/expert_mask.h"
#include "engine/model.h"

namespace moe {

struct EvalResult {
    double total_nll = 0;   // Σ −ln p(token | prefix), nats
    int64_t predicted = 0;  // tokens predicted
    double mean_loss() const { return predicted ? total_nll / static_cast<double>(predicted) : 0.0; }
    double perplexity() const { return std::exp(mean_loss()); }
};

EvalResult evaluate_loss(const Model& model, std::span<const int32_t> ids, int64_t context, const ExpertMask* mask,
                         RoutingObserver* observer = nullptr);

// What a row's log-probabilities are made of, in double: its largest logit (as std::max keeps
// it from the first on) and Σ exp(l − max), its terms in a fixed order of 8 running sums and
// exp by a polynomial of the same operations everywhere (within an ulp of e^x rounded from
// long double, e^x for x below -708 taken as 0) — the same value on every machine and
// instruction set, vectorised: a vocabulary of 102,400 in a fifth of a loop over std::exp.
struct LogSumExp {
    double max = 0, sum = 0;
    double log_z() const { return max + std::log(sum); }
};
LogSumExp log_sum_exp(std::span<const float> logits);

// e^x for x ≤ 0 as log_sum_exp computes it (for the tests).
double exp_nonpositive(double x);

// Σ exp(p) · (p − q) over two rows of log-probabilities: the KL divergence of q from p, in
// double, exp as log_sum_exp's.
double kl_divergence(std::span<const float> log_p, std::span<const float> log_q);

// −ln softmax(logits)[target], computed in double: −(l_target − max − ln Σ).
double token_nll(std::span<const float> logits, int32_t target);
double token_nll(std::span<const float> logits, int32_t target, const LogSumExp& z);

}  // namespace moe
