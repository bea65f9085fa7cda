// moewb: the workbench's command-line face. Dispatches to one subcommand; every
// moe::Error of kind input (bad usage, bad file) exits 2, any other failure exits 1.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include "app/moewb/commands.h"
#include "engine/error.h"
#ifdef MOE_HAVE_CUDA
#include "engine/cuda/cuda_model.h"
#endif

namespace {

struct Command {
    const char* name;
    int (*run)(int, char**);
    const char* summary;
};

const Command kCommands[] = {
    {"info", moewb::cmd_info, "architecture, layer/expert counts, parameters, dtype, bytes"},
    {"logits", moewb::cmd_logits, "logits and routing of a token sequence as JSON"},
    {"generate", moewb::cmd_generate, "generate text (plain completion or chat), streamed"},
    {"eval", moewb::cmd_eval, "loss and perplexity of a text"},
    {"bench", moewb::cmd_bench, "prefill/decode speed of a model or a random model of a config"},
    {"make-random", moewb::cmd_make_random, "write a checkpoint with random weights for a config"},
    {"tokenize", moewb::cmd_tokenize, "text to token ids (JSON array)"},
    {"detokenize", moewb::cmd_detokenize, "token ids to text"},
    {"trace", moewb::cmd_trace, "trace a corpus's routing into a routing store (SQLite)"},
    {"stats", moewb::cmd_stats, "statistics of traced runs: per-expert CSV, load balance, entropy, ..."},
    {"export", moewb::cmd_export, "per-token routing, entropy or co-activation of a run as CSV"},
    {"ablate", moewb::cmd_ablate, "switch experts off (a mask or a sweep): loss, KL, top-1 agreement by domain"},
    {"capture", moewb::cmd_capture, "store the routing an SGLang or vLLM server returns for a corpus"},
    {"import", moewb::cmd_import, "store saved SGLang / vLLM responses (JSONL) as a run"},
    {"delete-run", moewb::cmd_delete_run, "delete runs from a routing store (all or none)"},
    {"delete-ablation", moewb::cmd_delete_ablation, "delete kept ablations from a routing store (all or none)"},
};

void print_usage(FILE* out) {
    std::fprintf(out, "usage: moewb <command> [options]   (moewb <command> --help for its options)\n\ncommands:\n");
    for (const auto& c : kCommands) std::fprintf(out, "  %-12s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
#ifdef MOE_HAVE_CUDA
    moe::cuda::register_backend();  // --backend cuda
#endif
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    std::string name = argv[1];
    if (name == "--help" || name == "-h" || name == "help") {
        print_usage(stdout);
        return 0;
    }
    for (const auto& c : kCommands) {
        if (name != c.name) continue;
        try {
            const int rc = c.run(argc - 2, argv + 2);
            // What went to standard output must have arrived (a full disk, /dev/full): a
            // truncated JSON or CSV is never an exit 0.
            errno = 0;
            std::cout.flush();
            if (std::fflush(stdout) != 0 || std::ferror(stdout) || !std::cout.good()) {
                std::fprintf(stderr, "moewb %s: error: writing to standard output failed%s%s\n", c.name,
                             errno ? ": " : "", errno ? std::strerror(errno) : "");
                return rc != 0 ? rc : 1;
            }
            return rc;
        } catch (const moe::Error& e) {
            std::fflush(stdout);
            std::fprintf(stderr, "moewb %s: error: %s\n", c.name, e.what());
            return e.kind() == moe::ErrorKind::input ? 2 : 1;
        } catch (const std::bad_alloc&) {
            std::fprintf(stderr, "moewb %s: error: out of memory\n", c.name);
            return 1;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "moewb %s: error: %s\n", c.name, e.what());
            return 1;
        }
    }
    std::fprintf(stderr, "moewb: unknown command '%s'\n", name.c_str());
    print_usage(stderr);
    return 2;
}
