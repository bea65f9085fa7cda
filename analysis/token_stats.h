// Statistics of a run that need its per-token rows (one streaming pass over the run's
// documents, one document in memory at a time): router entropy histograms, expert
// co-activation, vocabulary specialisation and consecutive-token repetition. Each is per
// layer — expert indices are never pooled across layers — and per domain plus all domains
// pooled (kAllDomains). Definitions: docs/metrics.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/expert_stats.h"
#include "analysis/routing_store.h"

namespace moe::analysis {

struct EntropyHistogram {
    std::string domain;  // a domain, or kAllDomains
    int64_t layer = 0;
    int64_t tokens = 0;
    double max_entropy = 0;     // ln E: the bins cover [0, ln E]
    std::vector<int64_t> bins;  // equal width; a value of ln E (or above, by rounding) falls in the last
    double mean = 0;
};
std::vector<EntropyHistogram> entropy_histograms(RoutingStore& store, int64_t run_id, int n_bins = 20,
                                                 std::optional<int64_t> layer = std::nullopt);

struct Coactivation {
    std::string domain;  // a domain, or kAllDomains
    int64_t layer = 0, n_expert = 0, k = 0, tokens = 0;
    std::vector<int64_t> selected;  // [E] tokens whose top-k holds e
    std::vector<int64_t> pairs;     // [E, E] symmetric: tokens whose top-k holds both a and b; diagonal 0
    std::vector<int64_t> adjacent;  // [E, E] ordered: (token, r) with a at rank r and b at rank r+1
    int64_t pair(int64_t a, int64_t b) const { return pairs[static_cast<size_t>(a * n_expert + b)]; }
    int64_t adjacent_pair(int64_t a, int64_t b) const { return adjacent[static_cast<size_t>(a * n_expert + b)]; }
    double pair_lift(int64_t a, int64_t b) const;      // P(a and b) / (P(a) P(b)); 0 when undefined
    double adjacent_lift(int64_t a, int64_t b) const;  // vs. independent ranks drawn by share
};
std::vector<Coactivation> coactivation(RoutingStore& store, int64_t run_id,
                                       std::optional<int64_t> layer = std::nullopt);

struct TokenEnrichment {
    int32_t token_id = 0;
    std::string text;                 // from the store's vocab ("" when unknown)
    int64_t with_expert = 0;          // times this token was routed to the expert
    int64_t occurrences = 0;          // times the token occurs (in this layer's traced tokens)
    double p_token_given_expert = 0;  // with_expert / selections of the expert
    double p_token = 0;               // occurrences / tokens
    double enrichment = 0;            // p_token_given_expert / p_token
};
struct ExpertVocabulary {
    int64_t layer = 0, expert = 0;
    int64_t selections = 0;            // times the expert was selected (any rank)
    std::vector<TokenEnrichment> top;  // by enrichment, then with_expert, then token id
};
// The defaults of `moewb stats --vocab` and of the GUI's expert detail.
inline constexpr size_t kVocabTop = 20;
inline constexpr int64_t kVocabMinCount = 5;
// One layer; tokens routed to the expert fewer than `min_count` times are left out.
std::vector<ExpertVocabulary> vocabulary_specialisation(RoutingStore& store, int64_t run_id, int64_t layer,
                                                        std::optional<int64_t> domain_id = std::nullopt,
                                                        size_t top_n = kVocabTop, int64_t min_count = kVocabMinCount);

struct Repetition {
    std::string domain;  // a domain, or kAllDomains
    int64_t layer = 0, n_expert = 0, k = 0;
    int64_t pairs = 0;                 // consecutive token pairs (t, t+1) within a document
    double rank0_repeat = 0;           // P(rank-0 expert of t+1 = that of t)
    double rank0_baseline = 0;         // Σ_e p0(e)²: two independent tokens of the run
    double rank0_uniform = 0;          // 1 / E
    double any_overlap = 0;            // P(top-k of t and t+1 share an expert)
    double any_overlap_baseline = 0;   // same for two independent tokens (sampled, fixed seed)
    double any_overlap_uniform = 0;    // 1 − C(E−k, k) / C(E, k)
    double mean_overlap = 0;           // E |S_t ∩ S_t+1|
    double mean_overlap_baseline = 0;  // Σ_e q(e)², q(e) = P(e ∈ S)
};
std::vector<Repetition> repetition(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer = std::nullopt,
                                   uint64_t seed = 1);

}  // namespace moe::analysis
