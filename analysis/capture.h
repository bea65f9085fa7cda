// The capture job: the routing of models too big for this machine, taken from a running
// SGLang or vLLM server (docs/capture.md). Each corpus document is tokenized here, cut into
// windows of the server's context, sent as token ids (so the returned rows align with our
// tokens exactly), and the returned expert ids are validated and written through a
// TraceWriter into one run of the routing store (source sglang | vllm, no gate weights, no
// entropy). Resumable like a local trace (same key → the incomplete run continues); a
// document is stored whole or not at all. Also the offline import of saved responses.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "analysis/capture_decode.h"
#include "analysis/capture_http.h"
#include "analysis/corpus.h"
#include "analysis/corpus_tokens.h"
#include "analysis/routing_store.h"
#include "analysis/trace_writer.h"
#include "engine/model_config.h"
#include "engine/tokenizer.h"

namespace moe::analysis {

// The ModelRecord of a model known only by its config and tokenizer (no weights): name and
// path from `dir`, DIR/config.json's text, and the content hash "cfg1:<hex>" of config.json
// and tokenizer.json bytes (a different fingerprint from a local model's "fp1:").
ModelRecord describe_capture_model(const ModelConfig& cfg, const Tokenizer& tokenizer, const std::string& dir);

struct CaptureProgress {
    int64_t run_id = 0;
    int64_t documents_done = 0, documents_total = 0;  // of this session
    int64_t tokens_done = 0, tokens_total = 0;        // prompt tokens sent
    int64_t requests = 0, retries = 0;
    double seconds = 0;
    std::string domain;
};

struct CaptureOptions {
    std::string server;  // base URL, e.g. http://gpu-node:30000
    CaptureEngine engine = CaptureEngine::sglang;
    int64_t max_tokens = 0;  // per domain, as a trace; 0: all
    int64_t context = 0;     // the server's sequence limit; 0: the model's max_position_embeddings
    int64_t gen_tokens = 0;  // tokens generated per window (their routing is stored too); 0: prompt only
    int concurrency = 4;     // requests in flight
    LayerAxis layer_axis = LayerAxis::auto_detect;
    std::string served_model;  // vLLM's "model" field; empty: the first of GET /v1/models
    HttpOptions http;
    bool new_run = false;
    TraceWriterOptions writer;
    // The corpus's documents as tokenize_corpus(corpus, tokenizer, max_tokens) gives them, where
    // the caller has read them already (moewb does, before it creates a store file, so that a bad
    // corpus leaves none behind); taken from there. Null: read here.
    std::vector<std::vector<TokenizedDocument>>* tokenized = nullptr;
    // Called about every 0.2 s and after each document from the calling thread; returning
    // false stops after the requests in flight (their documents are stored whole).
    std::function<bool(const CaptureProgress&)> progress;
};

struct CaptureResult {
    int64_t run_id = 0;
    bool resumed = false, already_complete = false, complete = false, stopped = false;
    int64_t documents_skipped = 0, documents_captured = 0, tokens_captured = 0;  // stored tokens
    int64_t requests = 0, retries = 0;
    double seconds = 0;
    std::string server_version;  // as the server reported it; "" when it did not
    std::string layer_axis;      // the layout the payloads had ("absolute" | "moe"; "" if none seen)
    TraceWriterStats writer;
};

// Window length for a request: context − max(gen_tokens, 1) (the server must hold the
// prompt and the generated tokens; one token is always generated, see docs/capture.md).
int64_t capture_window(int64_t context, int64_t gen_tokens);

// Errors: input errors for bad arguments and for responses that fail validation (naming
// the server, document and window); failures for a server that cannot be reached or keeps
// failing after the retries. Either way the finished documents stay and the run stays
// incomplete.
CaptureResult run_capture(RoutingStore& store, const ModelConfig& cfg, const ModelRecord& model_record,
                          const Tokenizer& tokenizer, const Corpus& corpus, const CaptureOptions& opt);

struct ImportOptions {
    std::optional<CaptureEngine> engine;  // nullopt: detected from the first response
    LayerAxis layer_axis = LayerAxis::auto_detect;
    std::string domain;  // default: each line's "domain", else "import"
    bool new_run = false;
    TraceWriterOptions writer;
    std::function<bool(const CaptureProgress&)> progress;
};

struct ImportResult {
    int64_t run_id = 0;
    bool resumed = false, already_complete = false, complete = false, stopped = false;
    int64_t documents_skipped = 0, documents_imported = 0, tokens_imported = 0;
    std::string engine, layer_axis;
    double seconds = 0;
    TraceWriterStats writer;
};

// Imports a JSONL file of saved responses (format: docs/capture.md), one document per line,
// into a run with the file as its corpus. Errors name the file and line. Every line is
// checked before open_store is called, so a bad file never creates or changes a store.
ImportResult run_import(const std::function<RoutingStore&()>& open_store, const ModelConfig& cfg,
                        const ModelRecord& model_record, const std::string& responses_path, const ImportOptions& opt);
ImportResult run_import(RoutingStore& store, const ModelConfig& cfg, const ModelRecord& model_record,
                        const std::string& responses_path, const ImportOptions& opt);

}  // namespace moe::analysis
