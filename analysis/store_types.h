// The records of the routing store as C++ values: what is written (models, corpora,
// domains, runs, one document's routing) and what is read back (run descriptions,
// aggregates, stored per-token routing). The tables behind them: docs/store.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/routing.h"

namespace moe::analysis {

struct ModelRecord {
    std::string name;          // the model directory's name ("in-memory" when there is none)
    std::string path;          // absolute directory ("" when there is none)
    std::string architecture;  // config.json model_type, e.g. "deepseek"
    std::string config_json;
    std::string content_hash;  // fingerprint of config, weights and tokenizer (docs/store.md)
    int64_t n_layers = 0;
    int64_t n_routed_experts = 0;
    int64_t n_shared_experts = 0;
    int64_t num_experts_per_tok = 0;
    int64_t vocab_size = 0;
    std::vector<std::string> vocab;  // token text by id, valid UTF-8; empty when unknown
};

struct CorpusRecord {
    std::string name;
    std::string path;  // absolute; identifies the corpus
    std::string source;
    std::string licence;
};

struct DomainRecord {
    std::string name;
    std::string source;
    std::string licence;
};

struct RunLayer {
    int64_t layer = 0;     // checkpoint layer index
    int64_t n_expert = 0;  // E: routed experts of the layer
    int64_t k = 0;         // experts selected per token (a mask may change it)
};

// What a new run records about itself.
struct RunSpec {
    int64_t model_id = 0;
    std::optional<int64_t> corpus_id;
    std::string source = "cpu";  // backend: cpu | cuda, or a captured run: sglang | vllm
    std::string engine_version;  // a captured run: the server's reported version ("" if unknown)
    std::string dtype;
    std::string mask_spec;
    std::string mask_mode = "reroute";
    std::optional<GateWeightKind> gate_weight_kind;  // nullopt: the run has no gate weights
    bool has_entropy = true;                         // false: no router entropy (captured runs)
    std::string split;
    int64_t context = 0;
    int64_t max_tokens = 0;  // per domain; 0: no limit
    std::string trace_key;   // identifies "the same trace" for resuming
    std::vector<RunLayer> layers;
};

struct RunInfo : RunSpec {
    int64_t run_id = 0;
    std::string model_name;
    std::string model_content_hash;  // the run's model's fingerprint (ModelRecord::content_hash)
    std::string corpus_name;
    std::string gate_weight_format;  // "f16" (or "f32"); "" when the run has no gate weights
    std::string experts_format = "u16";  // "u8" (E <= 256, written since schema 2) or "u16"
    std::string entropy_format;          // "f16" (since schema 2) or "f32"; "" when the run has no entropy
    std::string status;              // "incomplete" | "complete"
    std::string started, finished;
    int64_t n_documents = 0;
    int64_t n_tokens = 0;
    bool has_gate_weights() const { return gate_weight_kind.has_value(); }
    const RunLayer* layer(int64_t layer) const;
};

// The routing of one finished document, handed to TraceWriter: everything the store keeps
// of it, written in one transaction with its aggregates.
struct DocumentRouting {
    int64_t domain_id = 0;
    std::string split;
    std::string name;                // the corpus's id of the document
    std::string text_hash;           // of its text; a changed text is a different document
    int64_t n_bytes = 0;             // of its text
    bool truncated = false;          // cut short by the run's token budget
    std::vector<int32_t> token_ids;  // [T]
    struct Layer {
        int64_t layer = 0;
        int64_t k = 0;
        std::vector<int32_t> experts;     // [T, k] rank order
        std::vector<float> gate_weights;  // [T, k], or empty when the run has none
        std::vector<float> entropy;       // [T], or empty when the run has none
    };
    std::vector<Layer> layers;  // the run's MoE layers, in order
    size_t bytes() const;       // memory held, for the writer's queue bound
};

struct DocumentKey {
    int64_t domain_id = 0;
    std::string split, name, text_hash;
    auto operator<=>(const DocumentKey&) const = default;
};

// Per-token routing as stored (gate weights at the stored precision).
struct StoredLayer {
    int64_t layer = 0;
    int64_t k = 0;
    std::vector<uint16_t> experts;    // [T, k]
    std::vector<float> gate_weights;  // [T, k], empty when the run has none
    std::vector<float> entropy;       // [T], empty when the run has none
};

struct StoredDocument {
    int64_t doc_id = 0;
    std::string name;  // the corpus's id
    std::string split;
    std::string text_hash;
    int64_t domain_id = 0;
    std::string domain;
    int64_t seq = 0;  // order in which the run finished it
    bool truncated = false;
    std::vector<int32_t> token_ids;  // [T]
    std::vector<StoredLayer> layers;
    const StoredLayer* layer(int64_t layer) const;
};

// A finished document of a run, without its routing.
struct DocumentEntry {
    int64_t doc_id = 0;
    int64_t domain_id = 0;
    std::string domain, split, name, text_hash;
    int64_t n_tokens = 0;
};

// One row of the aggregates: run × domain × layer × expert.
struct AggregateRow {
    int64_t domain_id = 0;
    int64_t layer = 0;
    int64_t expert = 0;
    int64_t count = 0;                      // times selected (any rank)
    int64_t rank0_count = 0;                // times selected at rank 0
    std::optional<double> gate_weight_sum;  // nullopt: the run has no gate weights
};

// Tokens (and entropy sum) per run × domain × layer.
struct DomainTotal {
    int64_t domain_id = 0;
    std::string domain;
    int64_t layer = 0;
    int64_t documents = 0;
    int64_t tokens = 0;
    std::optional<double> entropy_sum;  // nullopt: the run has no entropy
};

}  // namespace moe::analysis
