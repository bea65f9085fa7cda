// Statistics of a run read from its aggregates (one indexed query each, no per-token
// rows): selection share per expert, specialisation (ratio to the uniform share, domain-vs-
// rest log-ratio), router entropy means and load balance, per run × domain × layer. Expert
// indices are never pooled across layers; domains may be pooled within a layer ("*").
// Definitions: docs/metrics.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/routing_store.h"

namespace moe::analysis {

// The name used for "all domains of the run pooled".
inline constexpr const char* kAllDomains = "*";

struct ExpertShare {
    int64_t run_id = 0;
    std::string model;
    int64_t domain_id = 0;
    std::string domain;
    int64_t layer = 0;
    int64_t expert = 0;
    int64_t tokens = 0;  // tokens of the domain traced in this layer
    int64_t k = 0, n_expert = 0;
    int64_t count = 0;                       // times selected (any rank)
    double share = 0;                        // count / (tokens × k)
    double ratio_to_uniform = 0;             // (count / tokens) / (k / E) = share · E
    std::optional<double> gate_weight_sum;   // nullopt: the run has no gate weights
    std::optional<double> mean_gate_weight;  // gate_weight_sum / count; nullopt also when count = 0
    int64_t rank0_count = 0;
};

// Every expert of every (selected) layer for each domain of the run, zero counts included,
// ordered by domain name, layer, expert. `domain_id` restricts to one domain (the heatmap).
std::vector<ExpertShare> expert_shares(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer = std::nullopt,
                                       std::optional<int64_t> domain_id = std::nullopt);

struct DomainLogRatio {
    std::string domain;
    int64_t layer = 0;
    int64_t expert = 0;
    double share = 0;       // in the domain
    double rest_share = 0;  // in all other domains of the run pooled
    double log_ratio = 0;   // ln of the smoothed shares' ratio (docs/metrics.md)
};
// Needs at least two domains in the run (input error otherwise). `alpha`: additive smoothing.
std::vector<DomainLogRatio> domain_log_ratios(RoutingStore& store, int64_t run_id, double alpha = 0.5,
                                              std::optional<int64_t> layer = std::nullopt);

struct LoadBalance {
    std::string domain;  // a domain, or kAllDomains
    int64_t layer = 0;
    int64_t tokens = 0;
    int64_t n_expert = 0;
    double max_over_mean = 0;   // max load / mean load
    double cv = 0;              // population standard deviation / mean of the loads
    double max_vio = 0;         // (max load − mean load) / mean load
    int64_t dead_experts = 0;   // experts never selected
    std::vector<int64_t> dead;  // their indices
};
// Per domain and for all domains pooled, per layer.
std::vector<LoadBalance> load_balance(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer = std::nullopt);

struct EntropyMean {
    std::string domain;  // a domain, or kAllDomains
    int64_t layer = 0;
    int64_t tokens = 0;
    double mean = 0;         // nats
    double max_entropy = 0;  // ln E
};
// From the domain totals; input error when the run has no router entropy.
std::vector<EntropyMean> entropy_means(RoutingStore& store, int64_t run_id);

// Throws moe::Error(input) saying the statistic needs gate weights / entropy that the run
// (e.g. a captured sglang/vllm run) lacks.
void require_gate_weights(const RunInfo& run, const std::string& statistic);
void require_entropy(const RunInfo& run, const std::string& statistic);

}  // namespace moe::analysis
