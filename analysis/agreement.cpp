// Cross-layer and cross-run agreement; see agreement.h and docs/metrics.md.
#include "analysis/agreement.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "engine/error.h"

namespace moe::analysis {

namespace {

double entropy_of(const std::vector<int64_t>& counts, double total) {
    double h = 0;
    for (int64_t c : counts)
        if (c > 0) h -= static_cast<double>(c) / total * std::log(static_cast<double>(c) / total);
    return h;
}

}  // namespace

std::vector<CrossLayerAgreement> cross_layer_agreement(RoutingStore& store, int64_t run_id,
                                                       std::optional<int64_t> domain_id,
                                                       std::vector<std::pair<int64_t, int64_t>> pairs) {
    const StoreSnapshot snapshot(store);
    const RunInfo run = store.run(run_id);
    if (pairs.empty())
        for (size_t i = 0; i + 1 < run.layers.size(); ++i)
            pairs.emplace_back(run.layers[i].layer, run.layers[i + 1].layer);
    struct Acc {
        size_t ea = 0, eb = 0;
        std::vector<int64_t> joint;  // [E_a, E_b] rank-0 contingency table
        int64_t tokens = 0;
    };
    std::vector<Acc> accs(pairs.size());
    for (size_t p = 0; p < pairs.size(); ++p) {
        const RunLayer* a = run.layer(pairs[p].first);
        const RunLayer* b = run.layer(pairs[p].second);
        if (!a || !b)
            throw_input_error("run " + std::to_string(run_id), "layers " + std::to_string(pairs[p].first) + " and " +
                                                                   std::to_string(pairs[p].second) +
                                                                   " are not both MoE layers of the run");
        accs[p].ea = static_cast<size_t>(a->n_expert);
        accs[p].eb = static_cast<size_t>(b->n_expert);
        accs[p].joint.assign(accs[p].ea * accs[p].eb, 0);
    }
    DocumentFilter f;
    f.domain_id = domain_id;
    store.for_each_document(run_id, f, [&](const StoredDocument& d) {
        for (size_t p = 0; p < pairs.size(); ++p) {
            const StoredLayer* a = d.layer(pairs[p].first);
            const StoredLayer* b = d.layer(pairs[p].second);
            if (!a || !b) continue;
            const size_t ka = static_cast<size_t>(a->k), kb = static_cast<size_t>(b->k);
            for (size_t t = 0; t < d.token_ids.size(); ++t)
                accs[p].joint[a->experts[t * ka] * accs[p].eb + b->experts[t * kb]] += 1;
            accs[p].tokens += static_cast<int64_t>(d.token_ids.size());
        }
        return true;
    });
    std::vector<CrossLayerAgreement> out;
    for (size_t p = 0; p < pairs.size(); ++p) {
        const Acc& a = accs[p];
        CrossLayerAgreement r;
        r.layer_a = pairs[p].first;
        r.layer_b = pairs[p].second;
        r.tokens = a.tokens;
        if (a.tokens > 0) {
            const double T = static_cast<double>(a.tokens);
            std::vector<int64_t> ma(a.ea, 0), mb(a.eb, 0);
            int64_t best = 0;
            for (size_t i = 0; i < a.ea; ++i) {
                int64_t row_max = 0;
                for (size_t j = 0; j < a.eb; ++j) {
                    const int64_t n = a.joint[i * a.eb + j];
                    ma[i] += n;
                    mb[j] += n;
                    row_max = std::max(row_max, n);
                }
                best += row_max;
            }
            double mi = 0;
            for (size_t i = 0; i < a.ea; ++i)
                for (size_t j = 0; j < a.eb; ++j) {
                    const double n = static_cast<double>(a.joint[i * a.eb + j]);
                    if (n > 0)
                        mi += n / T * std::log(n * T / (static_cast<double>(ma[i]) * static_cast<double>(mb[j])));
                }
            const double ha = entropy_of(ma, T), hb = entropy_of(mb, T);
            r.mutual_information = std::max(0.0, mi);
            r.nmi = ha > 0 && hb > 0 ? r.mutual_information / std::sqrt(ha * hb) : 0.0;
            r.best_map_agreement = static_cast<double>(best) / T;
        }
        out.push_back(r);
    }
    return out;
}

RunAgreement routing_agreement(RoutingStore& store, int64_t run_a, int64_t run_b) {
    const StoreSnapshot snapshot(store);
    const RunInfo ra = store.run(run_a), rb = store.run(run_b);
    struct Acc {
        RunAgreementLayer r;
        double overlap = 0, jaccard = 0;
        int64_t top1 = 0, exact = 0;
    };
    std::map<int64_t, Acc> accs;  // by layer: those in both runs with the same E
    for (const RunLayer& la : ra.layers)
        if (const RunLayer* lb = rb.layer(la.layer); lb && lb->n_expert == la.n_expert)
            accs[la.layer].r.layer = la.layer;
    if (accs.empty())
        throw_input_error("runs " + std::to_string(run_a) + " and " + std::to_string(run_b),
                          "no MoE layer in common with the same number of experts");

    // Run b's documents by identity; run a is streamed and each match read from run b, so
    // memory holds two documents at a time.
    std::map<std::tuple<std::string, std::string, std::string, std::string>, int64_t> b_docs;
    for (const DocumentEntry& e : store.documents(run_b)) b_docs[{e.domain, e.split, e.name, e.text_hash}] = e.doc_id;
    RunAgreement result;
    StoredDocument other;
    store.for_each_document(run_a, {}, [&](const StoredDocument& d) {
        auto it = b_docs.find({d.domain, d.split, d.name, d.text_hash});
        if (it == b_docs.end() || !store.read_document(run_b, it->second, {}, other) ||
            other.token_ids != d.token_ids) {
            ++result.documents_unmatched;
            return true;
        }
        ++result.documents_matched;
        for (auto& [layer, acc] : accs) {
            const StoredLayer* la = d.layer(layer);
            const StoredLayer* lb = other.layer(layer);
            if (!la || !lb) continue;
            const size_t ka = static_cast<size_t>(la->k), kb = static_cast<size_t>(lb->k);
            for (size_t t = 0; t < d.token_ids.size(); ++t) {
                const uint16_t* x = la->experts.data() + t * ka;
                const uint16_t* y = lb->experts.data() + t * kb;
                acc.top1 += x[0] == y[0];
                size_t common = 0;
                for (size_t i = 0; i < ka; ++i)
                    for (size_t j = 0; j < kb; ++j) common += x[i] == y[j];
                acc.overlap += static_cast<double>(common) / static_cast<double>(std::min(ka, kb));
                acc.jaccard += static_cast<double>(common) / static_cast<double>(ka + kb - common);
                acc.exact += ka == kb && common == ka;
                acc.r.tokens += 1;
            }
        }
        return true;
    });
    for (auto& [layer, acc] : accs) {
        RunAgreementLayer r = acc.r;
        if (r.tokens > 0) {
            const double T = static_cast<double>(r.tokens);
            r.top1 = static_cast<double>(acc.top1) / T;
            r.overlap = acc.overlap / T;
            r.jaccard = acc.jaccard / T;
            r.exact_set = static_cast<double>(acc.exact) / T;
        }
        result.layers.push_back(r);
    }
    return result;
}

}  // namespace moe::analysis
