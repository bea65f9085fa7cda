// moewb delete-run and delete-ablation: runs (analysis/routing_store.h, delete_runs) or kept
// ablations (analysis/ablation.h, delete_ablations) taken out of a routing store, all or none,
// with everything stored for them.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "analysis/ablation.h"
#include "analysis/routing_store.h"
#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "engine/error.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb delete-run --db FILE --run ID[,ID...] [--force]\n\n"
    "Deletes the runs (IDs or A..B ranges) from the store with their routing, aggregates and\n"
    "totals, in one transaction: every ID must name a run, or nothing is deleted. Ablations\n"
    "that took their mask from a deleted run keep it (their from_run becomes null).\n"
    "An incomplete run may be one a trace is writing now; it is deleted only with --force\n"
    "(that trace then fails). The freed space is reused by later runs; `sqlite3 FILE VACUUM`\n"
    "gives it back to the file system. Prints {\"deleted\": [...]} on stdout, each run as\n"
    "`moewb stats --runs` lists it.\n";

const char* kAblationHelp =
    "usage: moewb delete-ablation --db FILE --ablation ID[,ID...]\n\n"
    "Deletes ablations kept by `moewb ablate --db` or the workbench's \"Keep in the store\" (IDs or\n"
    "A..B ranges, as `moewb stats --ablations` lists them) with their scores per domain, in one\n"
    "transaction: every ID must name an ablation, or nothing is deleted. Their baselines stay\n"
    "(a later ablation of the same model, corpus and budget reuses them); ids are never given\n"
    "again. Prints {\"deleted\": [...]} on stdout, each ablation as `moewb stats --ablations`\n"
    "lists it.\n";

// The ids of `flag` (IDs and A..B ranges), each at least 1, sorted, once each.
std::vector<int64_t> id_list(const Args& args, const char* flag, const char* what) {
    std::vector<int64_t> ids = parse_int_list(args.require(flag), flag);
    for (int64_t id : ids)
        if (id < 1) moe::throw_input_error(flag, std::to_string(id) + " is not " + what + " id (ids start at 1)");
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

}  // namespace

int cmd_delete_run(int argc, char** argv) {
    Args args(argc, argv, {"--db", "--run"}, {"--force"});
    if (args.help()) return print_help(kHelp);
    const std::string path = args.require("--db");
    const std::vector<int64_t> ids = id_list(args, "--run", "a run");
    moe::analysis::RoutingStore store = moe::analysis::RoutingStore::open(path, moe::analysis::StoreOptions::existing());
    if (!args.has("--force"))
        for (int64_t id : ids)
            if (const moe::analysis::RunInfo r = store.run(id); r.status != "complete")
                moe::throw_input_error(path, "run " + std::to_string(id) + " is " + r.status +
                                                 ": a trace may be writing it now; give --force to delete it anyway");
    nlohmann::json deleted = nlohmann::json::array();
    for (const moe::analysis::RunInfo& r : store.delete_runs(ids)) {
        deleted.push_back(run_json(r));
        std::fprintf(stderr, "deleted run %lld (%s, %lld tokens)\n", static_cast<long long>(r.run_id),
                     r.model_name.c_str(), static_cast<long long>(r.n_tokens));
    }
    std::printf("%s\n", nlohmann::json{{"deleted", deleted}}.dump().c_str());
    return 0;
}

int cmd_delete_ablation(int argc, char** argv) {
    Args args(argc, argv, {"--db", "--ablation"}, {});
    if (args.help()) return print_help(kAblationHelp);
    const std::string path = args.require("--db");
    const std::vector<int64_t> ids = id_list(args, "--ablation", "an ablation");
    moe::analysis::RoutingStore store = moe::analysis::RoutingStore::open(path, moe::analysis::StoreOptions::existing());
    nlohmann::json deleted = nlohmann::json::array();
    for (const moe::analysis::StoredAblation& a : moe::analysis::delete_ablations(store, ids)) {
        deleted.push_back(stored_ablation_json(a));
        std::fprintf(stderr, "deleted ablation %lld (%s on %s, mask %s)\n", static_cast<long long>(a.ablation_id),
                     a.model_name.c_str(), a.corpus_name.c_str(), a.mask_spec.c_str());
    }
    std::printf("%s\n", nlohmann::json{{"deleted", deleted}}.dump().c_str());
    return 0;
}

}  // namespace moewb
