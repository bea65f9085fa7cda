// Pieces shared by the moewb subcommands: loading a model with the common flags,
// building an ExpertMask from --mask/--mask-mode, and printing JSON.
#pragma once

#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "analysis/ablation.h"
#include "analysis/store_types.h"
#include "app/moewb/args.h"
#include "engine/expert_mask.h"
#include "engine/model.h"

namespace moewb {

// Flags every model-running command accepts.
std::set<std::string> model_value_flags();  // --model --threads --mask --mask-file --mask-mode --backend

// --threads and --backend (cpu | cuda).
moe::LoadOptions load_options(const Args& args);
std::unique_ptr<moe::Model> open_model(const Args& args);
// --mask SPEC, or --mask-file FILE (a mask saved by the workbench: its SPEC and mode, the mode
// unless --mask-mode says otherwise); --mask-mode. An empty mask when none is given.
moe::ExpertMask mask_from_args(const Args& args, const moe::ModelConfig& config);
// The help texts' sentence on --mask-file (a string literal, joined to theirs).
#define MOEWB_MASK_FILE_HELP                                                                       \
    "--mask-file FILE reads a mask saved by the workbench's ablation panel (JSON: its SPEC and\n" \
    "mode; --mask-mode overrides the mode). Mask syntax: docs/masks.md.\n"

// Prints --help text for a command and returns 0.
int print_help(const char* text);

// Writes JSON on stdout followed by a newline; floats with enough digits to round-trip.
void print_json(const nlohmann::json& j);

// A run of a routing store as `moewb stats --runs` lists it (and `delete-run` reports it).
nlohmann::json run_json(const moe::analysis::RunInfo& r);
// One domain's (or "all") scores of an ablation as `moewb ablate --json` writes them.
nlohmann::json score_json(const moe::analysis::AblationScore& s);
// A stored ablation as `moewb stats --ablations` lists it (and `delete-ablation` reports it).
nlohmann::json stored_ablation_json(const moe::analysis::StoredAblation& x);

}  // namespace moewb
