// moewb delete-run: runs taken out of a routing store, all or none, with everything stored
// for them (analysis/routing_store.h, delete_runs).
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

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

}  // namespace

int cmd_delete_run(int argc, char** argv) {
    Args args(argc, argv, {"--db", "--run"}, {"--force"});
    if (args.help()) return print_help(kHelp);
    const std::string path = args.require("--db");
    std::vector<int64_t> ids = parse_int_list(args.require("--run"), "--run");
    for (int64_t id : ids)
        if (id < 1) moe::throw_input_error("--run", std::to_string(id) + " is not a run id (ids start at 1)");
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    moe::analysis::StoreOptions so;
    so.create = false;
    moe::analysis::RoutingStore store = moe::analysis::RoutingStore::open(path, so);
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

}  // namespace moewb
