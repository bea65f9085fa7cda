// The numbers behind the token routing inspector: one document's (or one chat answer's)
// tokens as rows and the MoE layers as columns, with the k experts and gate weights of
// every cell, copied from the routing store's per-token routing (RoutingStore::read_document)
// or from a RoutingRecorder. Not a statistic of its own. No Qt, so it can be built on a
// worker thread and tested alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "analysis/routing_store.h"
#include "engine/routing.h"

namespace moe::ui {

struct TokenRouting {
    std::string title;  // "run 3 · code · doc-7 (412 tokens)"
    int64_t run_id = 0, doc_id = 0;
    std::vector<int32_t> token_ids;        // [T]
    std::vector<std::string> token_texts;  // [T] the vocab's text ("" when unknown)
    std::vector<int64_t> layers;           // [L] MoE layers (checkpoint indices), in order
    std::vector<int64_t> layer_k;          // [L] experts selected per token in the layer
    std::vector<int64_t> n_experts;        // [L] E of the layer (0: unknown)
    int64_t k = 0;                         // the largest layer_k: the stride of the cells
    std::vector<int32_t> experts;          // [T, L, k] rank order; -1 past a layer's k
    std::vector<float> gate_weights;       // [T, L, k], empty when there are none

    int64_t n_tokens() const { return static_cast<int64_t>(token_ids.size()); }
    int64_t n_layers() const { return static_cast<int64_t>(layers.size()); }
    bool has_gate_weights() const { return !gate_weights.empty(); }
    size_t index(int64_t t, int64_t l, int64_t r) const { return static_cast<size_t>((t * n_layers() + l) * k + r); }
    int32_t expert(int64_t t, int64_t l, int64_t r) const { return experts[index(t, l, r)]; }
    std::optional<float> gate_weight(int64_t t, int64_t l, int64_t r) const;
    // The rank of expert e among the cell's k experts; -1 when it was not selected.
    int64_t rank_of(int64_t t, int64_t l, int64_t e) const;
    int64_t max_experts() const;  // the largest E (for the highlight's range), at least 1
    // The column of a checkpoint layer; -1 when the document has no such MoE layer.
    int64_t column_of_layer(int64_t layer) const;
    // The hover text of a cell: token, position, layer, the k experts and their gate weights.
    std::string describe(int64_t t, int64_t l) const;
    // The same on one line: "token 7: "ory" (id 2493) · layer 2 · experts by rank: 5 (0.4214), 60 (0.1146), …".
    std::string describe_line(int64_t t, int64_t l) const;
};

// The token as one line of text: newline, tab and carriage return as ⏎ ⇥ ␍; empty as "∅".
std::string display_token(const std::string& text);

// One finished document of a run, with token texts from the run's model vocab.
// Throws moe::Error(input) when the run has no such document.
TokenRouting load_token_routing(analysis::RoutingStore& store, int64_t run_id, int64_t doc_id);

// The tokens a RoutingRecorder saw (prompt and generated, by position) with their texts.
TokenRouting token_routing_from_recorder(const RoutingRecorder& recorder, const std::vector<int32_t>& token_ids,
                                         const std::vector<std::string>& token_texts, const std::string& title);

}  // namespace moe::ui
