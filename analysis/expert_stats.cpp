// Aggregate-based statistics; see expert_stats.h and docs/metrics.md.
#include "analysis/expert_stats.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "engine/error.h"

namespace moe::analysis {

void require_gate_weights(const RunInfo& run, const std::string& statistic) {
    if (!run.has_gate_weights())
        throw_input_error("run " + std::to_string(run.run_id),
                          statistic + " needs gate weights, and this run (source " + run.source + ") has none");
}

void require_entropy(const RunInfo& run, const std::string& statistic) {
    if (!run.has_entropy)
        throw_input_error("run " + std::to_string(run.run_id),
                          statistic + " needs router entropy, and this run (source " + run.source + ") has none");
}

std::vector<ExpertShare> expert_shares(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer,
                                       std::optional<int64_t> domain_id) {
    const StoreSnapshot snapshot(store);
    const RunInfo run = store.run(run_id);
    if (layer && !run.layer(*layer))
        throw_input_error("--layer", std::to_string(*layer) + " is not a MoE layer of run " + std::to_string(run_id));
    // (domain, layer, expert) -> aggregate row
    std::map<std::tuple<int64_t, int64_t, int64_t>, AggregateRow> agg;
    for (const AggregateRow& a : store.aggregates(run_id, domain_id, layer)) agg[{a.domain_id, a.layer, a.expert}] = a;
    std::vector<ExpertShare> out;
    for (const DomainTotal& t : store.domain_totals(run_id)) {
        if (domain_id && t.domain_id != *domain_id) continue;
        if (layer && t.layer != *layer) continue;
        const RunLayer* rl = run.layer(t.layer);
        if (!rl) continue;
        for (int64_t e = 0; e < rl->n_expert; ++e) {
            ExpertShare s;
            s.run_id = run_id;
            s.model = run.model_name;
            s.domain_id = t.domain_id;
            s.domain = t.domain;
            s.layer = t.layer;
            s.expert = e;
            s.tokens = t.tokens;
            s.k = rl->k;
            s.n_expert = rl->n_expert;
            if (auto it = agg.find({t.domain_id, t.layer, e}); it != agg.end()) {
                s.count = it->second.count;
                s.rank0_count = it->second.rank0_count;
                s.gate_weight_sum = it->second.gate_weight_sum;
            } else if (run.has_gate_weights()) {
                s.gate_weight_sum = 0.0;
            }
            const double slots = static_cast<double>(t.tokens) * static_cast<double>(rl->k);
            s.share = slots > 0 ? static_cast<double>(s.count) / slots : 0.0;
            // Uniform routing selects each expert for k/E of the tokens, i.e. a share of 1/E.
            s.ratio_to_uniform = s.share * static_cast<double>(rl->n_expert);
            if (s.gate_weight_sum && s.count > 0)
                s.mean_gate_weight = *s.gate_weight_sum / static_cast<double>(s.count);
            out.push_back(std::move(s));
        }
    }
    return out;
}

std::vector<DomainLogRatio> domain_log_ratios(RoutingStore& store, int64_t run_id, double alpha,
                                              std::optional<int64_t> layer) {
    const std::vector<ExpertShare> shares = expert_shares(store, run_id, layer);
    std::map<std::pair<int64_t, int64_t>, int64_t> total_count;  // (layer, expert) over all domains
    std::map<int64_t, int64_t> total_tokens;                     // layer -> tokens of all domains
    std::map<std::string, int> domains;
    for (const ExpertShare& s : shares) {
        total_count[{s.layer, s.expert}] += s.count;
        if (s.expert == 0) total_tokens[s.layer] += s.tokens;
        domains[s.domain] = 1;
    }
    if (domains.size() < 2)
        throw_input_error("run " + std::to_string(run_id), "the domain-vs-rest log-ratio needs at least two domains");
    std::vector<DomainLogRatio> out;
    for (const ExpertShare& s : shares) {
        const double E = static_cast<double>(s.n_expert), k = static_cast<double>(s.k);
        const double rest_count = static_cast<double>(total_count[{s.layer, s.expert}] - s.count);
        const double rest_tokens = static_cast<double>(total_tokens[s.layer] - s.tokens);
        const double p = (static_cast<double>(s.count) + alpha) / (static_cast<double>(s.tokens) * k + alpha * E);
        const double q = (rest_count + alpha) / (rest_tokens * k + alpha * E);
        DomainLogRatio r;
        r.domain = s.domain;
        r.layer = s.layer;
        r.expert = s.expert;
        r.share = s.share;
        r.rest_share = rest_tokens > 0 ? rest_count / (rest_tokens * k) : 0.0;
        r.log_ratio = std::log(p / q);
        out.push_back(std::move(r));
    }
    return out;
}

namespace {

LoadBalance balance_of(const std::string& domain, int64_t layer, int64_t tokens, const std::vector<int64_t>& loads) {
    LoadBalance b;
    b.domain = domain;
    b.layer = layer;
    b.tokens = tokens;
    b.n_expert = static_cast<int64_t>(loads.size());
    double sum = 0, mx = 0;
    for (size_t e = 0; e < loads.size(); ++e) {
        sum += static_cast<double>(loads[e]);
        mx = std::max(mx, static_cast<double>(loads[e]));
        if (loads[e] == 0) b.dead.push_back(static_cast<int64_t>(e));
    }
    b.dead_experts = static_cast<int64_t>(b.dead.size());
    const double mean = loads.empty() ? 0.0 : sum / static_cast<double>(loads.size());
    if (mean > 0) {
        double var = 0;
        for (int64_t l : loads) var += (static_cast<double>(l) - mean) * (static_cast<double>(l) - mean);
        var /= static_cast<double>(loads.size());
        b.max_over_mean = mx / mean;
        b.max_vio = (mx - mean) / mean;
        b.cv = std::sqrt(var) / mean;
    }
    return b;
}

}  // namespace

std::vector<LoadBalance> load_balance(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer) {
    const std::vector<ExpertShare> shares = expert_shares(store, run_id, layer);
    std::vector<LoadBalance> out;
    std::map<int64_t, std::vector<int64_t>> pooled;  // layer -> loads over all domains
    std::map<int64_t, int64_t> pooled_tokens;
    for (size_t i = 0; i < shares.size();) {
        const ExpertShare& s = shares[i];
        std::vector<int64_t> loads(static_cast<size_t>(s.n_expert), 0);
        size_t j = i;
        for (; j < shares.size() && shares[j].domain_id == s.domain_id && shares[j].layer == s.layer; ++j)
            loads[static_cast<size_t>(shares[j].expert)] = shares[j].count;
        out.push_back(balance_of(s.domain, s.layer, s.tokens, loads));
        auto& p = pooled[s.layer];
        p.resize(loads.size(), 0);
        for (size_t e = 0; e < loads.size(); ++e) p[e] += loads[e];
        pooled_tokens[s.layer] += s.tokens;
        i = j;
    }
    for (const auto& [l, loads] : pooled) out.push_back(balance_of(kAllDomains, l, pooled_tokens[l], loads));
    return out;
}

std::vector<EntropyMean> entropy_means(RoutingStore& store, int64_t run_id) {
    const StoreSnapshot snapshot(store);
    const RunInfo run = store.run(run_id);
    require_entropy(run, "router entropy");
    std::vector<EntropyMean> out;
    std::map<int64_t, std::pair<int64_t, double>> pooled;
    for (const DomainTotal& t : store.domain_totals(run_id)) {
        const RunLayer* rl = run.layer(t.layer);
        if (!rl || !t.entropy_sum) continue;
        const double sum = *t.entropy_sum;
        out.push_back({t.domain, t.layer, t.tokens, t.tokens ? sum / static_cast<double>(t.tokens) : 0.0,
                       std::log(static_cast<double>(rl->n_expert))});
        pooled[t.layer].first += t.tokens;
        pooled[t.layer].second += sum;
    }
    for (const auto& [l, p] : pooled)
        out.push_back({kAllDomains, l, p.first, p.first ? p.second / static_cast<double>(p.first) : 0.0,
                       std::log(static_cast<double>(run.layer(l)->n_expert))});
    return out;
}

}  // namespace moe::analysis
