// Per-token statistics in one streaming pass; see token_stats.h and docs/metrics.md.
#include "analysis/token_stats.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>

#include "engine/error.h"

namespace moe::analysis {

namespace {

// Accumulators per (domain, layer), plus one per layer for all domains pooled. The pooled
// one is filled by the same pass rather than merged, so that samplers stay exact.
template <typename Acc>
class PerDomainLayer {
public:
    PerDomainLayer(const RunInfo& run, std::optional<int64_t> layer) : run_(run) {
        for (size_t i = 0; i < run.layers.size(); ++i)
            if (!layer || run.layers[i].layer == *layer) layers_.push_back(i);
        if (layer && layers_.empty())
            throw_input_error("--layer",
                              std::to_string(*layer) + " is not a MoE layer of run " + std::to_string(run.run_id));
    }
    // The accumulators of a document's domain and of the pool, for run layer index i.
    std::pair<Acc*, Acc*> get(const StoredDocument& d, size_t layer_index, const auto& init) {
        auto& dom = domains_[d.domain];
        auto& pool = domains_[kAllDomains];
        for (auto* m : {&dom, &pool}) {
            if (!m->count(layer_index)) init((*m)[layer_index], run_.layers[layer_index]);
        }
        return {&dom[layer_index], &pool[layer_index]};
    }
    const std::vector<size_t>& layer_indices() const { return layers_; }
    // Domains in name order with kAllDomains ("*") last.
    template <typename F>
    void for_each(F fn) const {
        for (const auto& [name, m] : domains_)
            if (name != kAllDomains)
                for (const auto& [i, acc] : m) fn(name, run_.layers[i], acc);
        if (auto it = domains_.find(kAllDomains); it != domains_.end())
            for (const auto& [i, acc] : it->second) fn(std::string(kAllDomains), run_.layers[i], acc);
    }

private:
    const RunInfo& run_;
    std::vector<size_t> layers_;
    std::map<std::string, std::map<size_t, Acc>> domains_;
};

// Iterates the documents with the routing of the layers asked for.
template <typename F>
void each_layer(RoutingStore& store, const RunInfo& run, std::optional<int64_t> layer, std::optional<int64_t> domain_id,
                F fn) {
    DocumentFilter f;
    f.layer = layer;
    f.domain_id = domain_id;
    store.for_each_document(run.run_id, f, [&](const StoredDocument& d) {
        for (const StoredLayer& l : d.layers) {
            size_t i = 0;
            while (i < run.layers.size() && run.layers[i].layer != l.layer) ++i;
            if (i == run.layers.size())
                throw_input_error(store.path(),
                                  "routing row for layer " + std::to_string(l.layer) + " that the run does not list");
            fn(d, i, l);
        }
        return true;
    });
}

uint64_t splitmix(uint64_t& s) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace

std::vector<EntropyHistogram> entropy_histograms(RoutingStore& store, int64_t run_id, int n_bins,
                                                 std::optional<int64_t> layer) {
    const StoreSnapshot snapshot(store);
    MOE_ASSERT(n_bins > 0);
    const RunInfo run = store.run(run_id);
    require_entropy(run, "the router entropy histogram");
    struct Acc {
        EntropyHistogram h;
        double sum = 0;
    };
    PerDomainLayer<Acc> accs(run, layer);
    auto init = [&](Acc& a, const RunLayer& rl) {
        a.h.layer = rl.layer;
        a.h.max_entropy = std::log(static_cast<double>(rl.n_expert));
        a.h.bins.assign(static_cast<size_t>(n_bins), 0);
    };
    each_layer(store, run, layer, std::nullopt, [&](const StoredDocument& d, size_t i, const StoredLayer& l) {
        auto [dom, pool] = accs.get(d, i, init);
        for (Acc* a : {dom, pool}) {
            const double width = a->h.max_entropy / n_bins;
            for (float v : l.entropy) {
                int b = width > 0 ? static_cast<int>(static_cast<double>(v) / width) : 0;
                a->h.bins[static_cast<size_t>(std::clamp(b, 0, n_bins - 1))] += 1;
                a->sum += static_cast<double>(v);
            }
            a->h.tokens += static_cast<int64_t>(l.entropy.size());
        }
    });
    std::vector<EntropyHistogram> out;
    accs.for_each([&](const std::string& name, const RunLayer&, const Acc& a) {
        EntropyHistogram h = a.h;
        h.domain = name;
        h.mean = h.tokens ? a.sum / static_cast<double>(h.tokens) : 0.0;
        out.push_back(std::move(h));
    });
    return out;
}

double Coactivation::pair_lift(int64_t a, int64_t b) const {
    const double den =
        static_cast<double>(selected[static_cast<size_t>(a)]) * static_cast<double>(selected[static_cast<size_t>(b)]);
    return den > 0 ? static_cast<double>(pair(a, b)) * static_cast<double>(tokens) / den : 0.0;
}

double Coactivation::adjacent_lift(int64_t a, int64_t b) const {
    // Expected count of (a at rank r, b at rank r+1) if every rank were drawn independently
    // by share q(e) = selected(e) / (T k): T (k−1) q(a) q(b).
    const double T = static_cast<double>(tokens), K = static_cast<double>(k);
    const double expected = T * (K - 1) * (static_cast<double>(selected[static_cast<size_t>(a)]) / (T * K)) *
                            (static_cast<double>(selected[static_cast<size_t>(b)]) / (T * K));
    return expected > 0 ? static_cast<double>(adjacent_pair(a, b)) / expected : 0.0;
}

std::vector<Coactivation> coactivation(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer) {
    const StoreSnapshot snapshot(store);
    const RunInfo run = store.run(run_id);
    PerDomainLayer<Coactivation> accs(run, layer);
    auto init = [&](Coactivation& c, const RunLayer& rl) {
        c.layer = rl.layer;
        c.n_expert = rl.n_expert;
        c.k = rl.k;
        const size_t E = static_cast<size_t>(rl.n_expert);
        c.selected.assign(E, 0);
        c.pairs.assign(E * E, 0);
        c.adjacent.assign(E * E, 0);
    };
    each_layer(store, run, layer, std::nullopt, [&](const StoredDocument& d, size_t i, const StoredLayer& l) {
        auto [dom, pool] = accs.get(d, i, init);
        const size_t K = static_cast<size_t>(l.k), T = d.token_ids.size();
        for (Coactivation* c : {dom, pool}) {
            const size_t E = static_cast<size_t>(c->n_expert);
            for (size_t t = 0; t < T; ++t) {
                const uint16_t* e = l.experts.data() + t * K;
                for (size_t r = 0; r < K; ++r) {
                    c->selected[e[r]] += 1;
                    for (size_t s = r + 1; s < K; ++s) {
                        c->pairs[e[r] * E + e[s]] += 1;
                        c->pairs[e[s] * E + e[r]] += 1;
                    }
                    if (r + 1 < K) c->adjacent[e[r] * E + e[r + 1]] += 1;
                }
            }
            c->tokens += static_cast<int64_t>(T);
        }
    });
    std::vector<Coactivation> out;
    accs.for_each([&](const std::string& name, const RunLayer&, const Coactivation& c) {
        out.push_back(c);
        out.back().domain = name;
    });
    return out;
}

std::vector<ExpertVocabulary> vocabulary_specialisation(RoutingStore& store, int64_t run_id, int64_t layer,
                                                        std::optional<int64_t> domain_id, size_t top_n,
                                                        int64_t min_count) {
    const StoreSnapshot snapshot(store);
    const RunInfo run = store.run(run_id);
    const RunLayer* rl = run.layer(layer);
    if (!rl)
        throw_input_error("--layer", std::to_string(layer) + " is not a MoE layer of run " + std::to_string(run_id));
    const size_t E = static_cast<size_t>(rl->n_expert);
    std::unordered_map<uint64_t, int64_t> with_expert;  // (token << 16 | expert) -> count
    std::unordered_map<int32_t, int64_t> occurrences;
    std::vector<int64_t> selections(E, 0);
    int64_t tokens = 0;
    each_layer(store, run, layer, domain_id, [&](const StoredDocument& d, size_t, const StoredLayer& l) {
        const size_t K = static_cast<size_t>(l.k);
        for (size_t t = 0; t < d.token_ids.size(); ++t) {
            const int32_t tok = d.token_ids[t];
            occurrences[tok] += 1;
            for (size_t r = 0; r < K; ++r) {
                const uint16_t e = l.experts[t * K + r];
                with_expert[(static_cast<uint64_t>(static_cast<uint32_t>(tok)) << 16) | e] += 1;
                selections[e] += 1;
            }
        }
        tokens += static_cast<int64_t>(d.token_ids.size());
    });
    const std::vector<std::string> vocab = store.vocab(run.model_id);
    std::vector<ExpertVocabulary> out(E);
    for (size_t e = 0; e < E; ++e) {
        out[e].layer = layer;
        out[e].expert = static_cast<int64_t>(e);
        out[e].selections = selections[e];
    }
    for (const auto& [key, n] : with_expert) {
        if (n < min_count) continue;
        const auto tok = static_cast<int32_t>(key >> 16);
        const size_t e = key & 0xffff;
        TokenEnrichment te;
        te.token_id = tok;
        te.with_expert = n;
        te.occurrences = occurrences[tok];
        te.p_token_given_expert = static_cast<double>(n) / static_cast<double>(selections[e]);
        te.p_token = static_cast<double>(te.occurrences) / static_cast<double>(tokens);
        te.enrichment = te.p_token_given_expert / te.p_token;
        if (static_cast<size_t>(tok) < vocab.size()) te.text = vocab[static_cast<size_t>(tok)];
        out[e].top.push_back(std::move(te));
    }
    for (ExpertVocabulary& v : out) {
        std::sort(v.top.begin(), v.top.end(), [](const TokenEnrichment& a, const TokenEnrichment& b) {
            if (a.enrichment != b.enrichment) return a.enrichment > b.enrichment;
            if (a.with_expert != b.with_expert) return a.with_expert > b.with_expert;
            return a.token_id < b.token_id;
        });
        if (v.top.size() > top_n) v.top.resize(top_n);
    }
    return out;
}

std::vector<Repetition> repetition(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer, uint64_t seed) {
    const StoreSnapshot snapshot(store);
    const RunInfo run = store.run(run_id);
    constexpr size_t kReservoir = 2048;  // token sets kept per (domain, layer) for the overlap baseline
    struct Acc {
        Repetition r;
        int64_t tokens = 0, rank0_same = 0, overlap_any = 0, overlap_sum = 0;
        std::vector<int64_t> rank0, member;  // [E]
        size_t words = 0;                    // 64-bit words per expert set
        std::vector<uint64_t> reservoir;     // [≤ kReservoir, words] expert sets as bitsets
        int64_t seen = 0;
        uint64_t rng = 0;
    };
    PerDomainLayer<Acc> accs(run, layer);
    auto init = [&](Acc& a, const RunLayer& rl) {
        a.r.layer = rl.layer;
        a.r.n_expert = rl.n_expert;
        a.r.k = rl.k;
        a.rank0.assign(static_cast<size_t>(rl.n_expert), 0);
        a.member.assign(static_cast<size_t>(rl.n_expert), 0);
        a.words = static_cast<size_t>((rl.n_expert + 63) / 64);
        a.rng = seed ^ (static_cast<uint64_t>(rl.layer) << 32);
    };
    std::vector<uint64_t> set;
    each_layer(store, run, layer, std::nullopt, [&](const StoredDocument& d, size_t i, const StoredLayer& l) {
        auto [dom, pool] = accs.get(d, i, init);
        const size_t K = static_cast<size_t>(l.k), T = d.token_ids.size();
        for (Acc* a : {dom, pool}) {
            for (size_t t = 0; t < T; ++t) {
                const uint16_t* e = l.experts.data() + t * K;
                a->rank0[e[0]] += 1;
                set.assign(a->words, 0);
                for (size_t r = 0; r < K; ++r) {
                    a->member[e[r]] += 1;
                    set[e[r] / 64] |= uint64_t{1} << (e[r] % 64);
                }
                // Reservoir sampling (algorithm R) of whole token sets.
                if (a->reservoir.size() < kReservoir * a->words) {
                    a->reservoir.insert(a->reservoir.end(), set.begin(), set.end());
                } else if (const uint64_t j = splitmix(a->rng) % static_cast<uint64_t>(a->seen + 1); j < kReservoir) {
                    std::copy(set.begin(), set.end(), a->reservoir.begin() + static_cast<ptrdiff_t>(j * a->words));
                }
                ++a->seen;
                if (t + 1 < T) {
                    const uint16_t* f = e + K;
                    a->rank0_same += e[0] == f[0];
                    int64_t common = 0;
                    for (size_t r = 0; r < K; ++r)
                        for (size_t s = 0; s < K; ++s) common += e[r] == f[s];
                    a->overlap_sum += common;
                    a->overlap_any += common > 0;
                    a->r.pairs += 1;
                }
            }
            a->tokens += static_cast<int64_t>(T);
        }
    });
    std::vector<Repetition> out;
    accs.for_each([&](const std::string& name, const RunLayer& rl, const Acc& a) {
        Repetition r = a.r;
        r.domain = name;
        const double E = static_cast<double>(rl.n_expert), K = static_cast<double>(rl.k);
        const double P = static_cast<double>(r.pairs), T = static_cast<double>(a.tokens);
        if (P > 0) {
            r.rank0_repeat = static_cast<double>(a.rank0_same) / P;
            r.any_overlap = static_cast<double>(a.overlap_any) / P;
            r.mean_overlap = static_cast<double>(a.overlap_sum) / P;
        }
        for (size_t e = 0; e < a.rank0.size() && T > 0; ++e) {
            const double p0 = static_cast<double>(a.rank0[e]) / T, q = static_cast<double>(a.member[e]) / T;
            r.rank0_baseline += p0 * p0;
            r.mean_overlap_baseline += q * q;
        }
        const size_t n = a.words ? a.reservoir.size() / a.words : 0;
        int64_t overlapping = 0, sampled = 0;
        for (size_t x = 0; x < n; ++x)
            for (size_t y = x + 1; y < n; ++y) {
                bool any = false;
                for (size_t w = 0; w < a.words && !any; ++w)
                    any = (a.reservoir[x * a.words + w] & a.reservoir[y * a.words + w]) != 0;
                overlapping += any;
                ++sampled;
            }
        r.any_overlap_baseline = sampled ? static_cast<double>(overlapping) / static_cast<double>(sampled) : 0.0;
        r.rank0_uniform = 1.0 / E;
        // C(E−k, k) / C(E, k) = Π_{i<k} (E−k−i) / (E−i)
        double none = 1.0;
        for (int64_t i = 0; i < rl.k; ++i)
            none *= std::max(0.0, E - K - static_cast<double>(i)) / (E - static_cast<double>(i));
        r.any_overlap_uniform = 1.0 - none;
        out.push_back(std::move(r));
    });
    return out;
}

}  // namespace moe::analysis
