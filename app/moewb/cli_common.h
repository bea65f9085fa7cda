// Pieces shared by the moewb subcommands: loading a model with the common flags,
// building an ExpertMask from --mask/--mask-mode, and printing JSON.
#pragma once

#include <memory>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "app/moewb/args.h"
#include "engine/expert_mask.h"
#include "engine/model.h"

namespace moewb {

// Flags every model-running command accepts.
std::set<std::string> model_value_flags();  // --model --threads --mask --mask-mode --backend

// --threads and --backend (cpu | cuda).
moe::LoadOptions load_options(const Args& args);
std::unique_ptr<moe::Model> open_model(const Args& args);
moe::ExpertMask mask_from_args(const Args& args, const moe::ModelConfig& config);

// Prints --help text for a command and returns 0.
int print_help(const char* text);

// Writes JSON on stdout followed by a newline; floats with enough digits to round-trip.
void print_json(const nlohmann::json& j);

}  // namespace moewb
