// The trace job: runs a corpus's documents through a model with a DocumentCollector on the
// forward pass and a TraceWriter behind it, into one run of a routing store. Documents
// longer than the context are cut into windows (each a fresh sequence); token positions in
// the store are positions in the document. The same trace (model, corpus, split, domain,
// budget, context, mask, source) run again resumes its incomplete run, skipping the
// documents already finished; a stop requested through the progress callback finishes the
// current document and leaves the run incomplete. Not the ablation evaluator: no losses.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "analysis/corpus.h"
#include "analysis/corpus_tokens.h"
#include "analysis/routing_store.h"
#include "analysis/trace_writer.h"
#include "engine/expert_mask.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

namespace moe::analysis {

struct TraceProgress {
    int64_t run_id = 0;
    int64_t documents_done = 0, documents_total = 0;  // of this session (finished ones excluded)
    int64_t tokens_done = 0, tokens_total = 0;
    double seconds = 0;
    std::string domain;
};

struct TraceOptions {
    int64_t max_tokens = 0;  // per domain (documents kept in file order, the last one cut); 0: all
    int64_t context = 0;     // window length; 0: the model's max_position_embeddings
    int64_t step_tokens = 0;  // tokens per forward step inside a window; 0: Model::step_tokens()
    const ExpertMask* mask = nullptr;
    std::string source;  // the run's source; empty: the model's backend_label() ("cpu", "cuda", ...)
    bool new_run = false;  // start a new run even when the same trace exists
    TraceWriterOptions writer;
    // The corpus's documents as tokenize_corpus(corpus, tokenizer, max_tokens) gives them, where
    // the caller has read them already (moewb does, before it creates a store file, so that a bad
    // corpus leaves none behind); taken from there. Null: read here.
    std::vector<std::vector<TokenizedDocument>>* tokenized = nullptr;
    // Called after every forward step and document; returning false stops the trace after
    // the current document.
    std::function<bool(const TraceProgress&)> progress;
};

struct TraceResult {
    int64_t run_id = 0;
    bool resumed = false;           // continued an incomplete run
    bool already_complete = false;  // the same trace was complete: nothing was run
    bool complete = false;          // the run is complete now
    bool stopped = false;           // the progress callback asked to stop
    int64_t documents_skipped = 0;  // finished before this session
    int64_t documents_traced = 0;
    int64_t tokens_traced = 0;
    double seconds = 0;
    TraceWriterStats writer;
};

// `model_record` describes `model` (describe_model); `store` must be writable.
TraceResult run_trace(RoutingStore& store, const Model& model, const ModelRecord& model_record,
                      const Tokenizer& tokenizer, const Corpus& corpus, const TraceOptions& opt);

}  // namespace moe::analysis
