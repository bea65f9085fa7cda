// moewb make-random: writes a Hugging Face model directory with random weights of the
// shapes a config.json gives (for demos and tests; no training involved).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "engine/error.h"
#include "engine/random_weights.h"
#include "engine/checkpoint.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb make-random --config config.json --out DIR [--dtype f32|bf16|f16|fp8] [--seed S]\n\n"
    "Writes DIR/config.json (a copy) and DIR/model.safetensors with random weights of the\n"
    "config's shapes.\n";

}  // namespace

moe::DType parse_dtype_flag(const std::string& s) {
    if (s == "f32") return moe::DType::f32;
    if (s == "bf16") return moe::DType::bf16;
    if (s == "f16") return moe::DType::f16;
    if (s == "fp8") return moe::DType::f8_e4m3;
    moe::throw_input_error("--dtype", "'" + s + "' is not one of f32, bf16, f16, fp8");
}

int cmd_make_random(int argc, char** argv) {
    Args args(argc, argv, {"--config", "--out", "--dtype", "--seed"}, {});
    if (args.help()) return print_help(kHelp);
    const std::string config_path = args.require("--config");
    const std::string out = args.require("--out");
    const moe::DType dtype = parse_dtype_flag(args.get_or("--dtype", "bf16"));
    const uint64_t seed = static_cast<uint64_t>(args.get_int("--seed", 1, 0, INT64_MAX));
    const moe::ModelConfig config = moe::load_model_config(config_path);
    auto tensors = moe::make_random_tensors(config, dtype, seed);

    std::filesystem::create_directories(out);
    moe::save_safetensors(*tensors, out + "/model.safetensors");
    std::filesystem::copy_file(config.source, out + "/config.json",
                               std::filesystem::copy_options::overwrite_existing);
    std::fprintf(stderr, "wrote %s (%zu tensors, %.1f MB)\n", out.c_str(), tensors->names().size(),
                 tensors->weight_bytes() / 1e6);
    return 0;
}

}  // namespace moewb
