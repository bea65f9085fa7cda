// The trace job; see trace_runner.h.
#include "analysis/trace_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <tuple>

#include "analysis/corpus_tokens.h"
#include "analysis/document_collector.h"
#include "analysis/fingerprint.h"
#include "analysis/run_resume.h"
#include "engine/error.h"

namespace moe::analysis {

namespace {

struct WorkItem {
    std::unique_ptr<DocumentRouting> doc;
    std::string domain;
};

std::string trace_key(const Corpus& corpus, const TraceOptions& opt, int64_t context, const std::string& source) {
    std::string domains;
    for (const auto& d : corpus.domains) domains += d.name + ";";
    return "corpus=" + corpus.path + "|split=" + corpus.split + "|domains=" + domains +
           "|max_tokens=" + std::to_string(opt.max_tokens) + "|context=" + std::to_string(context) +
           "|mask=" + (opt.mask ? opt.mask->spec() : "") +
           "|mode=" + (opt.mask ? mask_mode_name(opt.mask->mode()) : "reroute") + "|source=" + source;
}

// A router fed NaN or infinity (a checkpoint with non-finite weights) still picks k experts,
// the first ones, with weights that are not numbers: such routing is refused, not stored as if
// it were the model's.
void require_finite_routing(const DocumentRouting& doc, const std::string& model_source) {
    for (const DocumentRouting::Layer& l : doc.layers)
        for (const std::vector<float>* values : {&l.gate_weights, &l.entropy})
            for (size_t i = 0; i < values->size(); ++i)
                if (!std::isfinite((*values)[i])) {
                    const size_t per_token = values == &l.entropy ? 1 : static_cast<size_t>(l.k);
                    throw_input_error(model_source,
                                      "document '" + doc.name + "', layer " + std::to_string(l.layer) + ", token " +
                                          std::to_string(i / per_token) +
                                          ": the router's gate weights are not numbers (NaN or infinity): "
                                          "the model's weights hold non-finite values; the run stays "
                                          "incomplete");
                }
}

}  // namespace

TraceResult run_trace(RoutingStore& store, const Model& model, const ModelRecord& model_record,
                      const Tokenizer& tokenizer, const Corpus& corpus, const TraceOptions& opt) {
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    const ModelConfig& cfg = model.config();
    if (cfg.n_routed_experts <= 0) throw_input_error(cfg.source, "the model has no routed experts: nothing to trace");
    require_tokenizer_fits(tokenizer, cfg.vocab_size);
    const int64_t context = opt.context > 0 ? opt.context : cfg.max_position_embeddings;
    if (context < 1) throw_input_error("--context", "must be at least 1");

    // Every document read and tokenized before anything is written: a corpus with a bad file
    // (not UTF-8, broken JSON) leaves the store as it was.
    std::vector<std::vector<TokenizedDocument>> tokenized =
        given_or_tokenized(opt.tokenized, corpus, tokenizer, opt.max_tokens);

    TraceResult result;
    const int64_t model_id = store.add_model(model_record);
    const int64_t corpus_id = store.add_corpus({corpus.name, corpus.path, "", ""});
    std::vector<int64_t> domain_ids;
    for (const auto& d : corpus.domains)
        domain_ids.push_back(store.add_domain(corpus_id, {d.name, d.source, d.licence}));

    RunSpec spec;
    spec.model_id = model_id;
    spec.corpus_id = corpus_id;
    spec.source = opt.source.empty() ? model.backend_label() : opt.source;
    spec.dtype = model.dtype_summary();
    spec.mask_spec = opt.mask ? opt.mask->spec() : "";
    spec.mask_mode = opt.mask ? mask_mode_name(opt.mask->mode()) : "reroute";
    spec.gate_weight_kind = cfg.norm_topk_prob ? GateWeightKind::renormalized : GateWeightKind::router_prob;
    spec.has_entropy = true;
    spec.split = corpus.split;
    spec.context = context;
    spec.max_tokens = opt.max_tokens;
    spec.trace_key = trace_key(corpus, opt, context, spec.source);
    spec.layers = run_layers(cfg, opt.mask);

    const RunResume resume = RunResume::start(store, spec, opt.new_run);
    if (resume.report_into(result)) return result;

    // The work list, in corpus order. The token budget counts finished documents too, so a
    // resumed trace cuts the same documents as an uninterrupted one.
    std::vector<WorkItem> work;
    TraceProgress progress;
    progress.run_id = result.run_id;
    for (size_t di = 0; di < corpus.domains.size(); ++di) {
        const CorpusDomain& dom = corpus.domains[di];
        for (TokenizedDocument& td : tokenized[di]) {
            if (resume.finished(domain_ids[di], corpus.split, td.id, td.text_hash, dom.file, "traced")) {
                ++result.documents_skipped;
                continue;
            }
            auto doc = std::make_unique<DocumentRouting>();
            doc->domain_id = domain_ids[di];
            doc->split = corpus.split;
            doc->name = std::move(td.id);
            doc->text_hash = std::move(td.text_hash);
            doc->n_bytes = td.n_bytes;
            doc->truncated = td.truncated;
            doc->token_ids = std::move(td.ids);
            progress.tokens_total += static_cast<int64_t>(doc->token_ids.size());
            work.push_back({std::move(doc), dom.name});
        }
    }
    progress.documents_total = static_cast<int64_t>(work.size());

    const RunInfo run = store.run(result.run_id);
    TraceWriter writer(store, result.run_id, opt.writer);
    DocumentCollector collector(run.layers, run.has_gate_weights(), run.has_entropy);
    ForwardOptions fo;
    fo.mask = opt.mask;
    fo.observer = &collector;
    fo.all_logits = false;  // routing is all we want; the LM head runs for the last position only
    std::vector<float> logits;
    auto report = [&] {
        progress.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        if (opt.progress && !opt.progress(progress)) result.stopped = true;
    };
    report();
    const auto step = static_cast<size_t>(opt.step_tokens > 0 ? opt.step_tokens : model.step_tokens());
    for (WorkItem& item : work) {
        if (result.stopped) break;
        progress.domain = item.domain;
        const std::span<const int32_t> ids = item.doc->token_ids;
        const size_t T = ids.size();
        collector.begin(std::move(item.doc));
        for (size_t w0 = 0; w0 < T; w0 += static_cast<size_t>(context)) {
            const size_t wn = std::min(T - w0, static_cast<size_t>(context));
            Session session(model);
            collector.set_window_start(static_cast<int64_t>(w0));
            for (size_t c0 = 0; c0 < wn; c0 += step) {
                const size_t cn = std::min(step, wn - c0);
                session.forward(ids.subspan(w0 + c0, cn), fo, logits);
                progress.tokens_done += static_cast<int64_t>(cn);
                report();
            }
        }
        std::unique_ptr<DocumentRouting> routed = collector.take();
        require_finite_routing(*routed, cfg.source);
        writer.submit(std::move(routed));
        ++result.documents_traced;
        result.tokens_traced += static_cast<int64_t>(T);
        ++progress.documents_done;
        report();
    }
    writer.finish();
    result.writer = writer.stats();
    result.complete = result.documents_traced == static_cast<int64_t>(work.size());
    if (result.complete) store.finish_run(result.run_id, true);
    result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return result;
}

}  // namespace moe::analysis
