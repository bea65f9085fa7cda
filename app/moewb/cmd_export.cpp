// moewb export: the per-token tables of a run as CSV (RFC 4180, streamed one document at a
// time): routing in long format, router entropy, or expert co-activation. Columns:
// docs/store.md.
#include <cstdio>

#include "analysis/csv_exports.h"
#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "engine/error.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb export --db FILE --run ID (--tokens | --entropy | --coactivation) --csv OUT [--layer L]\n"
    "       moewb export --db FILE --ablations --csv OUT\n\n"
    "--tokens        one row per token x layer x rank:\n"
    "                run_id,doc_id,domain,token_pos,token_id,token_text,layer,rank,expert,gate_weight\n"
    "--entropy       one row per token x layer:\n"
    "                run_id,doc_id,domain,token_pos,token_id,token_text,layer,entropy\n"
    "--coactivation  one row per co-selected expert pair per domain (and \"*\" = all) x layer:\n"
    "                run_id,domain,layer,kind,expert_a,expert_b,count,count_a,count_b,tokens,lift\n"
    "                kind \"pair\": a and b both in a token's top-k (a < b); \"adjacent\": a at rank r,\n"
    "                b at rank r+1. OUT \"-\" writes to stdout. --layer L exports one layer.\n"
    "--ablations     every ablation kept in the store (moewb ablate --db), a row per domain and \"all\":\n"
    "                ablation_id,model,corpus,split,max_tokens,context,created,from_run,seed,sweep,value,\n"
    "                control,mask,mode,domain,tokens,baseline_loss,ablated_loss,delta_loss,ppl_ratio,kl,\n"
    "                top1_agreement\n";

}  // namespace

int cmd_export(int argc, char** argv) {
    Args args(argc, argv, {"--db", "--run", "--csv", "--layer"}, {"--tokens", "--entropy", "--coactivation", "--ablations"});
    if (args.help()) return print_help(kHelp);
    const int kinds = static_cast<int>(args.has("--tokens")) + static_cast<int>(args.has("--entropy")) +
                      static_cast<int>(args.has("--coactivation")) + static_cast<int>(args.has("--ablations"));
    if (kinds != 1) moe::throw_input_error("export", "give exactly one of --tokens, --entropy, --coactivation, --ablations");
    moe::analysis::StoreOptions so;
    so.read_only = true;
    moe::analysis::RoutingStore store = moe::analysis::RoutingStore::open(args.require("--db"), so);
    if (args.has("--ablations")) {
        for (const char* f : {"--run", "--layer"})
            if (args.has(f)) moe::throw_input_error(f, "does not apply to --ablations (every stored ablation is written)");
        const std::string out = args.require("--csv");
        const int64_t rows = moe::analysis::write_stored_ablations_csv(store, out);
        if (out != "-") std::fprintf(stderr, "wrote %s (%lld rows)\n", out.c_str(), static_cast<long long>(rows));
        return 0;
    }
    if (!args.has("--run")) moe::throw_input_error("--run", "is required (see --help)");
    const int64_t run = args.get_int("--run", 0, 1, INT64_MAX);
    std::optional<int64_t> layer;
    if (args.has("--layer")) layer = args.get_int("--layer", 0, 0, 1 << 20);
    const std::string out = args.require("--csv");
    int64_t rows = 0;
    if (args.has("--tokens"))
        rows = moe::analysis::write_tokens_csv(store, run, layer, out);
    else if (args.has("--entropy"))
        rows = moe::analysis::write_entropy_csv(store, run, layer, out);
    else
        rows = moe::analysis::write_coactivation_csv(store, run, layer, out);
    if (out != "-") std::fprintf(stderr, "wrote %s (%lld rows)\n", out.c_str(), static_cast<long long>(rows));
    return 0;
}

}  // namespace moewb
