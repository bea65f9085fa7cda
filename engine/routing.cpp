// RoutingRecorder and name helpers; see routing.h.
#include "engine/routing.h"

namespace moe {

const char* token_source_name(TokenSource s) { return s == TokenSource::prompt ? "prompt" : "generated"; }

const char* gate_weight_kind_name(GateWeightKind k) {
    return k == GateWeightKind::router_prob ? "router_prob" : "renormalized";
}

void RoutingRecorder::on_routing(const RoutingBatch& b) {
    weight_kind_ = b.weight_kind;
    auto& tokens = layers_[b.layer];
    for (int64_t t = 0; t < b.n_tokens; ++t) {
        Token tok;
        tok.pos = b.pos0 + t;
        tok.source = b.source;
        tok.experts.assign(b.experts + t * b.k, b.experts + (t + 1) * b.k);
        tok.gate_weights.assign(b.gate_weights + t * b.k, b.gate_weights + (t + 1) * b.k);
        tok.entropy = b.entropy[t];
        tok.selected_mass = b.selected_mass[t];
        tok.margin = b.margin[t];
        if (b.selection_scores) tok.selection_scores.assign(b.selection_scores + t * b.k, b.selection_scores + (t + 1) * b.k);
        if (b.groups) tok.groups.assign(b.groups + t * b.n_groups, b.groups + (t + 1) * b.n_groups);
        tokens.push_back(std::move(tok));
    }
}

}  // namespace moe
