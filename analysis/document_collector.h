// DocumentCollector: the RoutingObserver the trace runner attaches to the forward pass. It
// copies each RoutingBatch of one document (any number of windows and forward steps) into
// that document's DocumentRouting, so that the writer thread receives whole documents. The
// copy is all the forward pass pays for the store. Runs on the forward pass's thread.
#pragma once

#include <memory>
#include <vector>

#include "analysis/store_types.h"
#include "engine/routing.h"

namespace moe::analysis {

class DocumentCollector : public RoutingObserver {
public:
    // `layers`: the run's MoE layers; gate weights / entropy are kept when the run has them.
    DocumentCollector(std::vector<RunLayer> layers, bool keep_gate_weights, bool keep_entropy);

    // Starts a document whose token_ids are set; sizes its per-layer arrays.
    void begin(std::unique_ptr<DocumentRouting> doc);
    // Token index in the document of sequence position 0 of the session now running.
    void set_window_start(int64_t start) { window_start_ = start; }
    void on_routing(const RoutingBatch& batch) override;
    // The finished document; asserts every token of every layer was reported once.
    std::unique_ptr<DocumentRouting> take();

private:
    std::vector<RunLayer> layers_;
    std::vector<int> slot_of_layer_;  // checkpoint layer -> index in layers_, -1 if not MoE
    bool keep_weights_, keep_entropy_;
    std::unique_ptr<DocumentRouting> doc_;
    std::vector<int64_t> filled_;  // tokens reported per layer
    int64_t window_start_ = 0;
};

}  // namespace moe::analysis
