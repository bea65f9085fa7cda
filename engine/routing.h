// The routing observer: what the forward pass reports about every routing decision.
// Reported in bulk, once per MoE layer per forward step, from the very numbers that
// selected the experts. Definitions (docs/routing.md):
//   experts       the selected routed experts, rank order (descending router probability)
//   gate_weights  the weight each selected expert's output is multiplied by
//   entropy       -Σ p·ln p over ALL routed experts' router probabilities p (nats)
//   selected_mass Σ p over the selected experts
//   margin        p of the rank k-1 expert minus the highest p among eligible experts not
//                 selected (the "(k+1)-th"); equals the k-th p when no expert is left over
// For sigmoid routers (V3) p is the normalised score s/Σs for entropy and selected mass,
// and the margin is taken on the selection scores (biased, group-masked), which are
// reported beside the (unbiased) weights together with the chosen groups.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace moe {

enum class TokenSource : uint8_t { prompt, generated };
enum class GateWeightKind : uint8_t {
    router_prob,   // weights are the router's probabilities (norm_topk_prob false)
    renormalized,  // weights are probabilities renormalised over the selected experts
};

const char* token_source_name(TokenSource s);
const char* gate_weight_kind_name(GateWeightKind k);

struct RoutingBatch {
    int64_t layer = 0;     // checkpoint layer index
    int64_t pos0 = 0;      // sequence position of the first token of this batch
    int64_t n_tokens = 0;  // T
    int64_t k = 0;         // selected experts per token in this layer (mask may change it)
    TokenSource source = TokenSource::prompt;
    GateWeightKind weight_kind = GateWeightKind::router_prob;
    bool shared_off = false;
    const int32_t* experts = nullptr;      // [T, k]
    const float* gate_weights = nullptr;   // [T, k]
    const float* entropy = nullptr;        // [T]
    const float* selected_mass = nullptr;  // [T]
    const float* margin = nullptr;         // [T]
    // Where the router has them (V2 group-limited, V3): null otherwise.
    const float* selection_scores = nullptr;  // [T, k] what top-k compared (biased, group-masked)
    const int32_t* groups = nullptr;          // [T, n_groups] chosen groups, best first (-1: none)
    int64_t n_groups = 0;
    float weight_scale = 1.0f;  // routed_scaling_factor included in the gate weights
};

class RoutingObserver {
public:
    virtual ~RoutingObserver() = default;
    // Called on the forward pass's thread; the pointers are valid during the call only.
    virtual void on_routing(const RoutingBatch& batch) = 0;
};

// Keeps every record in memory, by layer (for the CLI and tests).
class RoutingRecorder : public RoutingObserver {
public:
    struct Token {
        int64_t pos = 0;
        TokenSource source = TokenSource::prompt;
        std::vector<int32_t> experts;
        std::vector<float> gate_weights;
        float entropy = 0, selected_mass = 0, margin = 0;
        std::vector<float> selection_scores;  // empty when the router reports none
        std::vector<int32_t> groups;
    };
    void on_routing(const RoutingBatch& b) override;
    const std::map<int64_t, std::vector<Token>>& layers() const { return layers_; }
    GateWeightKind weight_kind() const { return weight_kind_; }
    void clear() { layers_.clear(); }

private:
    std::map<int64_t, std::vector<Token>> layers_;
    GateWeightKind weight_kind_ = GateWeightKind::router_prob;
};

}  // namespace moe
