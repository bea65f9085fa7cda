// Copies routing batches into whole documents; see document_collector.h.
#include "analysis/document_collector.h"

#include <algorithm>
#include <cstring>

#include "engine/error.h"

namespace moe::analysis {

DocumentCollector::DocumentCollector(std::vector<RunLayer> layers, bool keep_gate_weights, bool keep_entropy)
    : layers_(std::move(layers)), keep_weights_(keep_gate_weights), keep_entropy_(keep_entropy) {
    int64_t max_layer = 0;
    for (const RunLayer& l : layers_) max_layer = std::max(max_layer, l.layer);
    slot_of_layer_.assign(static_cast<size_t>(max_layer) + 1, -1);
    for (size_t i = 0; i < layers_.size(); ++i)
        slot_of_layer_[static_cast<size_t>(layers_[i].layer)] = static_cast<int>(i);
}

void DocumentCollector::begin(std::unique_ptr<DocumentRouting> doc) {
    doc_ = std::move(doc);
    const size_t T = doc_->token_ids.size();
    doc_->layers.resize(layers_.size());
    for (size_t i = 0; i < layers_.size(); ++i) {
        DocumentRouting::Layer& l = doc_->layers[i];
        l.layer = layers_[i].layer;
        l.k = layers_[i].k;
        const size_t K = static_cast<size_t>(l.k);
        l.experts.assign(T * K, -1);
        l.gate_weights.assign(keep_weights_ ? T * K : 0, 0.0f);
        l.entropy.assign(keep_entropy_ ? T : 0, 0.0f);
    }
    filled_.assign(layers_.size(), 0);
    window_start_ = 0;
}

void DocumentCollector::on_routing(const RoutingBatch& b) {
    MOE_ASSERT(doc_);
    MOE_ASSERT(b.layer >= 0 && static_cast<size_t>(b.layer) < slot_of_layer_.size());
    const int slot = slot_of_layer_[static_cast<size_t>(b.layer)];
    MOE_ASSERT(slot >= 0);
    DocumentRouting::Layer& l = doc_->layers[static_cast<size_t>(slot)];
    MOE_ASSERT(b.k == l.k);
    const size_t T = doc_->token_ids.size();
    const size_t t0 = static_cast<size_t>(window_start_ + b.pos0);
    const size_t n = static_cast<size_t>(b.n_tokens);
    const size_t K = static_cast<size_t>(b.k);
    MOE_ASSERT(t0 + n <= T);
    std::memcpy(l.experts.data() + t0 * K, b.experts, n * K * sizeof(int32_t));
    if (keep_weights_) std::memcpy(l.gate_weights.data() + t0 * K, b.gate_weights, n * K * sizeof(float));
    if (keep_entropy_) std::memcpy(l.entropy.data() + t0, b.entropy, n * sizeof(float));
    filled_[static_cast<size_t>(slot)] += b.n_tokens;
}

std::unique_ptr<DocumentRouting> DocumentCollector::take() {
    MOE_ASSERT(doc_);
    for (int64_t f : filled_) MOE_ASSERT(f == static_cast<int64_t>(doc_->token_ids.size()));
    return std::move(doc_);
}

}  // namespace moe::analysis
