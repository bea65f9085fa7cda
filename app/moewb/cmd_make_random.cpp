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
    "usage: moewb make-random --config config.json --out DIR [--dtype f32|bf16|f16|fp8] [--seed S] [--force]\n\n"
    "Writes DIR/config.json (a copy) and DIR/model.safetensors with random weights of the\n"
    "config's shapes. A DIR that already holds model.safetensors is refused, so a trained model\n"
    "is never overwritten by mistake (--force replaces it); one with other weight files (shards,\n"
    "model.safetensors.index.json) is always refused.\n";

}  // namespace

moe::DType parse_dtype_flag(const std::string& s) {
    if (s == "f32") return moe::DType::f32;
    if (s == "bf16") return moe::DType::bf16;
    if (s == "f16") return moe::DType::f16;
    if (s == "fp8") return moe::DType::f8_e4m3;
    moe::throw_input_error("--dtype", "'" + s + "' is not one of f32, bf16, f16, fp8");
}

int cmd_make_random(int argc, char** argv) {
    namespace fs = std::filesystem;
    Args args(argc, argv, {"--config", "--out", "--dtype", "--seed"}, {"--force"});
    if (args.help()) return print_help(kHelp);
    const std::string config_path = args.require("--config");
    const std::string out = args.require("--out");
    const moe::DType dtype = parse_dtype_flag(args.get_or("--dtype", "bf16"));
    const uint64_t seed = static_cast<uint64_t>(args.get_int("--seed", 1, 0, INT64_MAX));
    const moe::ModelConfig config = moe::load_model_config(config_path);

    std::error_code ec;
    if (fs::exists(out, ec) && !fs::is_directory(out, ec))
        moe::throw_input_error(out, "--out: exists and is not a directory");
    if (fs::is_directory(out, ec)) {
        // Weight files other than model.safetensors (shards, their index) would sit beside the new
        // weights and be loaded instead: refused even with --force.
        for (const fs::directory_entry& e : fs::directory_iterator(out, ec)) {
            const std::string name = e.path().filename().string();
            const bool weights = e.path().extension() == ".safetensors" || name == "model.safetensors.index.json";
            if (!weights) continue;
            if (name != "model.safetensors")
                moe::throw_input_error(out, "--out holds another checkpoint's weights (" + name +
                                                "); choose another directory");
            if (!args.has("--force"))
                moe::throw_input_error(out, "--out already holds a checkpoint's weights (" + name +
                                                "); choose another directory, or --force to replace them");
        }
    }
    // The weights first: refused for want of memory before anything is written.
    auto tensors = moe::make_random_tensors(config, dtype, seed);
    fs::create_directories(out, ec);
    if (ec) moe::throw_input_error(out, "--out: cannot create the directory: " + ec.message());
    moe::save_safetensors(*tensors, out + "/model.safetensors");
    const std::string config_out = out + "/config.json";
    if (!fs::exists(config_out, ec) || !fs::equivalent(config.source, config_out, ec)) {
        const std::string partial = config_out + ".partial";
        fs::copy_file(config.source, partial, fs::copy_options::overwrite_existing, ec);
        if (!ec) fs::rename(partial, config_out, ec);
        if (ec) {
            const std::string why = ec.message();
            fs::remove(partial, ec);
            moe::throw_failure(config_out, "cannot copy the config: " + why);
        }
    }
    std::fprintf(stderr, "wrote %s (%zu tensors, %.1f MB)\n", out.c_str(), tensors->names().size(),
                 tensors->weight_bytes() / 1e6);
    return 0;
}

}  // namespace moewb
