// The ablation panel's mask as the toggle grid edits it: per MoE layer, which routed experts
// and whether the shared experts are switched off, and the mode (reroute | drop). It writes
// the CLI's SPEC text (docs/masks.md) — the form that ExpertMask::parse reads, that runs and
// ablations are stored with, and that the panel shows — and reads one back. Parts the grid
// cannot show (k=, skip-top=, skip-random=) are kept as they were written. No Qt.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/expert_mask.h"
#include "engine/model_config.h"

namespace moe::ui {

class MaskState {
public:
    MaskState() = default;
    explicit MaskState(const ModelConfig& config);  // nothing switched off, reroute

    const std::vector<int64_t>& layers() const { return layers_; }  // MoE layers, in order
    int64_t n_experts() const { return n_experts_; }
    int64_t n_shared() const { return n_shared_; }
    MaskMode mode() const { return mode_; }
    void set_mode(MaskMode m) { mode_ = m; }

    // Rows are indices into layers(), not layer numbers.
    bool expert_off(size_t row, int64_t expert) const { return off_[row][static_cast<size_t>(expert)] != 0; }
    void set_expert_off(size_t row, int64_t expert, bool off);
    bool shared_off(size_t row) const { return shared_off_[row] != 0; }
    void set_shared_off(size_t row, bool off);
    void set_all_shared_off(bool off);
    void clear();  // everything on, the extra parts dropped
    int64_t n_experts_off() const;
    bool empty() const { return n_experts_off() == 0 && !any_shared_off() && extra_.empty(); }
    bool any_shared_off() const;
    const std::vector<std::string>& extra_parts() const { return extra_; }

    // Canonical SPEC: routed experts per layer ("*:" when every layer has the same set), then
    // shared ("*:shared" when every layer's are off), then the extra parts; "" when nothing is off.
    std::string spec() const;
    // The engine's mask of spec() and mode(); input errors (e.g. fewer selectable experts than
    // k in reroute mode) name the bad part.
    ExpertMask to_mask(const ModelConfig& config) const;
    // A mask's switched-off experts and shared flags into the grid; its other parts kept as text.
    static MaskState from_mask(const ExpertMask& mask, const ModelConfig& config);
    static MaskState from_spec(const std::string& spec, MaskMode mode, const ModelConfig& config);

    // {"format": "moe-workbench-mask", "version": 1, "spec": "...", "mode": "reroute", "model": "..."}
    std::string to_json(const std::string& model_name) const;
    static MaskState from_json(const std::string& text, const ModelConfig& config, const std::string& where);

private:
    std::vector<int64_t> layers_;
    int64_t n_experts_ = 0, n_shared_ = 0;
    MaskMode mode_ = MaskMode::reroute;
    std::vector<std::vector<uint8_t>> off_;  // [L][E]
    std::vector<uint8_t> shared_off_;        // [L]
    std::vector<std::string> extra_;         // SPEC parts with "=" (k, skip-top, skip-random)
};

}  // namespace moe::ui
