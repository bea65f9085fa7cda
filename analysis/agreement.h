// Agreement of routing decisions: between two layers of one run (how much the rank-0
// choice in one layer tells about the choice in another — experts of different layers are
// different experts, so this is mutual information, never index equality) and between two
// runs on the same tokens (e.g. baseline vs ablated, base vs chat model: here expert e of
// layer l is the same expert in both). Definitions: docs/metrics.md.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "analysis/routing_store.h"

namespace moe::analysis {

struct CrossLayerAgreement {
    int64_t layer_a = 0, layer_b = 0;
    int64_t tokens = 0;
    double mutual_information = 0;  // I(X_a; X_b) of the rank-0 experts, nats
    double nmi = 0;                 // I / sqrt(H(X_a) H(X_b)); 0 when either entropy is 0
    double best_map_agreement = 0;  // Σ_a max_b n(a, b) / T: accuracy of predicting X_b from X_a
};
// Pairs of consecutive MoE layers of the run (or the pairs given), optionally one domain.
std::vector<CrossLayerAgreement> cross_layer_agreement(RoutingStore& store, int64_t run_id,
                                                       std::optional<int64_t> domain_id = std::nullopt,
                                                       std::vector<std::pair<int64_t, int64_t>> pairs = {});

struct RunAgreementLayer {
    int64_t layer = 0;
    int64_t tokens = 0;
    double top1 = 0;       // P(rank-0 expert equal)
    double overlap = 0;    // mean |S_a ∩ S_b| / min(k_a, k_b)
    double jaccard = 0;    // mean |S_a ∩ S_b| / |S_a ∪ S_b|
    double exact_set = 0;  // P(S_a = S_b as sets)
};
struct RunAgreement {
    int64_t documents_matched = 0;          // same domain, split, id and text, and the same token ids
    int64_t documents_unmatched = 0;        // finished in run a only, or tokenized differently
    std::vector<RunAgreementLayer> layers;  // the layers both runs traced with the same E
};
RunAgreement routing_agreement(RoutingStore& store, int64_t run_a, int64_t run_b);

}  // namespace moe::analysis
