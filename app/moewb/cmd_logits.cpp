// moewb logits: the logits and routing of a token sequence as one JSON object.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <string>

#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb logits --model DIR --ids 1,2,3 [--mask SPEC | --mask-file FILE] [--mask-mode reroute|drop]\n"
    "                    [--threads N] [--backend cpu|cuda] [--activations exact|bf16] [--no-gate-weights]\n\n"
    "Runs the token ids (no BOS is added) through the model in one prefill and prints\n"
    "{\"shape\":[T,V],\"logits\":[[...],...],\"routing\":{\"<layer>\":[[e0,e1,...],...]},\n"
    " \"gate_weights\":{\"<layer>\":[[w0,w1,...],...]},\"gate_weight_kind\":...}\n"
    "routing: per MoE layer (checkpoint layer index), per position, the selected routed\n"
    "experts in rank order. Mask SPEC: L<layer>:<e>,<e>,... | *:<e>,... | L<layer>:shared |\n"
    "*:shared | L<layer>:k=<n> | *:k=<n> | L<layer>:skip-top=<r> | *:skip-top=<r> |\n"
    "L<layer>:skip-random=<r>[@<seed>] | *:skip-random=<r>[@<seed>], joined with ';' (docs/masks.md).\n"
    "A value that is not a finite number (NaN or infinity: a damaged checkpoint) is written as "
    "null.\n" MOEWB_MASK_FILE_HELP;

// Shortest text that reads back as the same float; null for NaN and infinities, which JSON
// has no numbers for.
void append_float(std::string& out, float v) {
    if (!std::isfinite(v)) {
        out += "null";
        return;
    }
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

// ,"<layer>":[   (without the comma for the first key)
void append_key(std::string& out, int64_t layer, bool first) {
    if (!first) out += ',';
    out += '"';
    out += std::to_string(layer);
    out += "\":[";
}

}  // namespace

int cmd_logits(int argc, char** argv) {
    auto flags = model_value_flags();
    flags.insert("--ids");
    Args args(argc, argv, flags, {"--no-gate-weights"});
    if (args.help()) return print_help(kHelp);
    const std::vector<int32_t> ids = parse_id_list(args.require("--ids"), "--ids");
    auto model = open_model(args);
    const moe::ExpertMask mask = mask_from_args(args, model->config());

    moe::Session session(*model);
    moe::RoutingRecorder recorder;
    moe::ForwardOptions opt;
    opt.mask = &mask;
    opt.observer = &recorder;
    std::vector<float> logits;
    session.forward(ids, opt, logits);

    const int64_t T = static_cast<int64_t>(ids.size()), V = model->config().vocab_size;
    std::string out = "{\"shape\":[" + std::to_string(T) + "," + std::to_string(V) + "],\"logits\":[";
    for (int64_t t = 0; t < T; ++t) {
        out += t ? ",[" : "[";
        for (int64_t v = 0; v < V; ++v) {
            if (v) out += ',';
            append_float(out, logits[static_cast<size_t>(t * V + v)]);
        }
        out += ']';
    }
    out += "],\"routing\":{";
    bool first = true;
    for (const auto& [layer, tokens] : recorder.layers()) {
        append_key(out, layer, first);
        first = false;
        for (size_t t = 0; t < tokens.size(); ++t) {
            out += t ? ",[" : "[";
            for (size_t r = 0; r < tokens[t].experts.size(); ++r) {
                if (r) out += ',';
                out += std::to_string(tokens[t].experts[r]);
            }
            out += ']';
        }
        out += ']';
    }
    out += '}';
    if (!args.has("--no-gate-weights")) {
        out += ",\"gate_weights\":{";
        first = true;
        for (const auto& [layer, tokens] : recorder.layers()) {
            append_key(out, layer, first);
            first = false;
            for (size_t t = 0; t < tokens.size(); ++t) {
                out += t ? ",[" : "[";
                for (size_t r = 0; r < tokens[t].gate_weights.size(); ++r) {
                    if (r) out += ',';
                    append_float(out, tokens[t].gate_weights[r]);
                }
                out += ']';
            }
            out += ']';
        }
        out += "},\"gate_weight_kind\":\"";
        out += moe::gate_weight_kind_name(recorder.weight_kind());
        out += '"';
    }
    out += "}\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
}

}  // namespace moewb
