// CSV exports; see csv_exports.h and docs/store.md.
#include "analysis/csv_exports.h"

#include "analysis/expert_stats.h"
#include "analysis/token_stats.h"
#include "engine/error.h"

namespace moe::analysis {

namespace {

void header(CsvWriter& w, const char* columns) {
    std::string_view s(columns);
    while (true) {
        const size_t c = s.find(',');
        w.field(s.substr(0, c));
        if (c == std::string_view::npos) break;
        s.remove_prefix(c + 1);
    }
    w.end_row();
}

std::string_view token_text(const std::vector<std::string>& vocab, int32_t id) {
    return id >= 0 && static_cast<size_t>(id) < vocab.size() ? std::string_view(vocab[static_cast<size_t>(id)])
                                                             : std::string_view();
}

// domain,tokens,baseline_loss,ablated_loss,delta_loss,ppl_ratio,kl,top1_agreement
// (empty where the domain predicted no token)
void score_fields(CsvWriter& w, const AblationScore& s) {
    w.field(s.domain).field(s.tokens);
    for (double v :
         {s.baseline_loss(), s.ablated_loss(), s.delta_loss(), s.ppl_ratio(), s.mean_kl(), s.top1_agreement()}) {
        if (s.tokens > 0)
            w.field(v);
        else
            w.empty();
    }
}

void check_layer(const RunInfo& run, std::optional<int64_t> layer) {
    if (layer && !run.layer(*layer))
        throw_input_error("--layer",
                          std::to_string(*layer) + " is not a MoE layer of run " + std::to_string(run.run_id));
}

}  // namespace

int64_t write_stats_csv(RoutingStore& store, std::optional<int64_t> run_id, std::optional<int64_t> layer,
                        const std::string& out) {
    const StoreSnapshot snapshot(store);
    std::vector<int64_t> ids;
    if (run_id) {
        ids.push_back(store.run(*run_id).run_id);
    } else {
        for (const RunInfo& r : store.runs()) ids.push_back(r.run_id);
    }
    CsvWriter w(out);
    header(w, kStatsCsvHeader);
    int64_t rows = 0;
    for (int64_t id : ids) {
        const RunInfo run = store.run(id);
        if (layer && !run.layer(*layer)) {
            if (run_id) check_layer(run, layer);
            continue;
        }
        for (const ExpertShare& s : expert_shares(store, id, layer)) {
            w.field(s.run_id).field(s.model).field(s.domain).field(s.layer).field(s.expert).field(s.tokens);
            w.field(s.count).field(s.share).field(s.ratio_to_uniform);
            if (s.gate_weight_sum)
                w.field(*s.gate_weight_sum);
            else
                w.empty();
            if (s.mean_gate_weight)
                w.field(*s.mean_gate_weight);
            else
                w.empty();
            w.field(s.rank0_count);
            w.end_row();
            ++rows;
        }
    }
    w.close();
    return rows;
}

int64_t write_tokens_csv(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer, const std::string& out) {
    const StoreSnapshot snapshot(store);
    const RunInfo run = store.run(run_id);
    check_layer(run, layer);
    const std::vector<std::string> vocab = store.vocab(run.model_id);
    CsvWriter w(out);
    header(w, kTokensCsvHeader);
    int64_t rows = 0;
    DocumentFilter f;
    f.layer = layer;
    store.for_each_document(run_id, f, [&](const StoredDocument& d) {
        for (size_t t = 0; t < d.token_ids.size(); ++t) {
            const std::string_view text = token_text(vocab, d.token_ids[t]);
            for (const StoredLayer& l : d.layers) {
                const size_t K = static_cast<size_t>(l.k);
                for (size_t r = 0; r < K; ++r) {
                    w.field(run_id).field(d.doc_id).field(d.domain).field(static_cast<int64_t>(t));
                    w.field(int64_t{d.token_ids[t]}).field(text).field(l.layer).field(static_cast<int64_t>(r));
                    w.field(int64_t{l.experts[t * K + r]});
                    if (l.gate_weights.empty())
                        w.empty();
                    else
                        w.field(l.gate_weights[t * K + r]);
                    w.end_row();
                    ++rows;
                }
            }
        }
        return true;
    });
    w.close();
    return rows;
}

int64_t write_entropy_csv(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer, const std::string& out) {
    const StoreSnapshot snapshot(store);
    const RunInfo run = store.run(run_id);
    check_layer(run, layer);
    require_entropy(run, "the entropy export");
    const std::vector<std::string> vocab = store.vocab(run.model_id);
    CsvWriter w(out);
    header(w, kEntropyCsvHeader);
    int64_t rows = 0;
    DocumentFilter f;
    f.layer = layer;
    store.for_each_document(run_id, f, [&](const StoredDocument& d) {
        for (size_t t = 0; t < d.token_ids.size(); ++t) {
            const std::string_view text = token_text(vocab, d.token_ids[t]);
            for (const StoredLayer& l : d.layers) {
                w.field(run_id).field(d.doc_id).field(d.domain).field(static_cast<int64_t>(t));
                w.field(int64_t{d.token_ids[t]}).field(text).field(l.layer).field(l.entropy[t]);
                w.end_row();
                ++rows;
            }
        }
        return true;
    });
    w.close();
    return rows;
}

int64_t write_coactivation_csv(RoutingStore& store, int64_t run_id, std::optional<int64_t> layer,
                               const std::string& out) {
    const StoreSnapshot snapshot(store);
    const RunInfo run = store.run(run_id);
    check_layer(run, layer);
    const std::vector<Coactivation> all = coactivation(store, run_id, layer);
    CsvWriter w(out);
    header(w, kCoactivationCsvHeader);
    int64_t rows = 0;
    auto row = [&](const Coactivation& c, const char* kind, int64_t a, int64_t b, int64_t n, double lift) {
        w.field(run_id).field(c.domain).field(c.layer).field(kind).field(a).field(b).field(n);
        w.field(c.selected[static_cast<size_t>(a)])
            .field(c.selected[static_cast<size_t>(b)])
            .field(c.tokens)
            .field(lift);
        w.end_row();
        ++rows;
    };
    for (const Coactivation& c : all) {
        for (int64_t a = 0; a < c.n_expert; ++a)
            for (int64_t b = a + 1; b < c.n_expert; ++b)
                if (const int64_t n = c.pair(a, b)) row(c, "pair", a, b, n, c.pair_lift(a, b));
        for (int64_t a = 0; a < c.n_expert; ++a)
            for (int64_t b = 0; b < c.n_expert; ++b)
                if (const int64_t n = c.adjacent_pair(a, b)) row(c, "adjacent", a, b, n, c.adjacent_lift(a, b));
    }
    w.close();
    return rows;
}

int64_t write_ablation_csv(CsvWriter& w, const AblationResult& result) {
    header(w, kAblationCsvHeader);
    int64_t rows = 0;
    for (const AblationConditionResult& c : result.conditions) {
        auto row = [&](const AblationScore& s) {
            w.field(c.condition.sweep);
            c.condition.value ? w.field(*c.condition.value) : w.empty();
            w.field(c.condition.control).field(c.condition.mask.spec()).field(mask_mode_name(c.condition.mask.mode()));
            score_fields(w, s);
            w.end_row();
            ++rows;
        };
        for (const AblationScore& s : c.domains) row(s);
        row(c.all);
    }
    w.close();
    return rows;
}

int64_t write_stored_ablations_csv(RoutingStore& store, const std::string& out) {
    const std::vector<StoredAblation> stored = read_ablations(store);
    CsvWriter w(out);
    header(w, kStoredAblationsCsvHeader);
    int64_t rows = 0;
    for (const StoredAblation& a : stored) {
        auto row = [&](const AblationScore& s) {
            w.field(a.ablation_id).field(a.model_name).field(a.corpus_name).field(a.split).field(a.max_tokens);
            w.field(a.context).field(a.created);
            a.from_run ? w.field(*a.from_run) : w.empty();
            a.seed ? w.field(*a.seed) : w.empty();
            w.field(a.sweep);
            a.value ? w.field(*a.value) : w.empty();
            w.field(a.control).field(a.mask_spec).field(a.mask_mode);
            score_fields(w, s);
            w.end_row();
            ++rows;
        };
        for (const AblationScore& s : a.domains) row(s);
        row(a.all());
    }
    w.close();
    return rows;
}

}  // namespace moe::analysis
