// ExpertMask: the routing interventions of an ablation, per MoE layer — routed experts
// switched off, shared experts off, the number of activated routed experts (k), and the
// per-token exclusion of the r most probable experts — plus how switched-off experts
// are handled: reroute (they cannot be selected) or drop (selected as usual, their
// output discarded). Parsed from the SPEC syntax of the CLI; semantics in docs/masks.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/model_config.h"

namespace moe {

enum class MaskMode { reroute, drop };

MaskMode parse_mask_mode(const std::string& text);  // "reroute" | "drop", else input error
const char* mask_mode_name(MaskMode m);

struct LayerIntervention {
    std::vector<uint8_t> disabled;  // [E]: 1 = routed expert switched off
    int64_t n_disabled = 0;
    bool shared_off = false;
    int64_t k = 0;         // activated routed experts for this layer (resolved, never 0)
    int64_t skip_top = 0;  // per token, the r most probable (eligible) experts are excluded
    int64_t skip_random = 0;     // per token, r further eligible experts excluded at random
    uint64_t random_seed = 0;    // seed of that choice (router_random_key)
};

class ExpertMask {
public:
    ExpertMask() = default;
    // Resolves SPEC against a model config; every bad part is an input error naming it.
    static ExpertMask parse(const std::string& spec, const ModelConfig& config, MaskMode mode);

    MaskMode mode() const { return mode_; }
    const std::string& spec() const { return spec_; }
    bool empty() const { return layers_.empty(); }
    // The intervention for a layer, or nullptr when the layer runs as published.
    const LayerIntervention* layer(int64_t layer) const;
    const std::map<int64_t, LayerIntervention>& layers() const { return layers_; }

private:
    MaskMode mode_ = MaskMode::reroute;
    std::string spec_;
    std::map<int64_t, LayerIntervention> layers_;
};

// A mask saved as a file (the workbench's ablation panel writes them, `moewb ... --mask-file`
// reads them; docs/masks.md): {"format": "moe-workbench-mask", "version": 1, "spec", "mode",
// "model"}. "model" is informative; the SPEC is resolved against whatever model it is used on.
struct SavedMask {
    std::string spec;
    MaskMode mode = MaskMode::reroute;
};
std::string saved_mask_json(const std::string& spec, MaskMode mode, const std::string& model_name);
SavedMask parse_saved_mask(const std::string& text, const std::string& where);  // input errors name `where`
SavedMask read_saved_mask(const std::string& path);  // the file read and parsed; errors name it

}  // namespace moe
