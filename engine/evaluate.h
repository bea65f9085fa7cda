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

// −ln softmax(logits)[target], computed in double.
double token_nll(std::span<const float> logits, int32_t target);

}  // namespace moe
