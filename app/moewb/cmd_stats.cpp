// moewb stats: statistics of traced runs from a routing store (analysis/expert_stats,
// token_stats, agreement): the per-expert CSV table and, as JSON on stdout, the run list,
// load balance, router entropy, domain specialisation, repetition, cross-layer and
// cross-run agreement, and vocabulary specialisation. Definitions: docs/metrics.md.
#include <cstdio>

#include "analysis/agreement.h"
#include "analysis/csv_exports.h"
#include "analysis/expert_stats.h"
#include "analysis/token_stats.h"
#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "engine/error.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb stats --db FILE [--run ID] [--layer L] --csv OUT\n"
    "       moewb stats --db FILE [--run ID] [--layer L] [--runs] [--load-balance] [--entropy]\n"
    "                   [--log-ratio] [--repetition] [--cross-layer] [--vocab] [--agreement RUN_B]\n"
    "                   [--ablations]\n\n"
    "--csv OUT writes one row per run x domain x layer x expert (every run without --run):\n"
    "  run_id,model,domain,layer,expert,tokens,count,share,ratio_to_uniform,gate_weight_sum,\n"
    "  mean_gate_weight,rank0_count   (RFC 4180; gate weight columns empty when the run has none)\n"
    "  --csv - writes it to stdout (then no JSON statistic in the same call).\n"
    "The other switches print one JSON object on stdout with a member per switch; all but\n"
    "--runs and --ablations (the ablations kept in the store by moewb ablate --db, with their\n"
    "scores) need --run. --vocab needs --layer (tokens ranked by P(token|expert)/P(token)):\n"
    "  --vocab-top N tokens per expert (default 20), each routed to the expert at least\n"
    "  --vocab-min-count N times (default 5).\n"
    "--agreement RUN_B compares the routing of two runs on the same tokens. Definitions of\n"
    "every statistic: docs/metrics.md.\n";

using nlohmann::json;
namespace an = moe::analysis;

json runs_json(an::RoutingStore& store) {
    json out = json::array();
    for (const an::RunInfo& r : store.runs()) out.push_back(run_json(r));
    return out;
}

}  // namespace

int cmd_stats(int argc, char** argv) {
    Args args(argc, argv, {"--db", "--run", "--layer", "--csv", "--agreement", "--vocab-top", "--vocab-min-count"},
              {"--runs", "--load-balance", "--entropy", "--log-ratio", "--repetition", "--cross-layer", "--vocab", "--ablations"});
    if (args.help()) return print_help(kHelp);
    for (const char* f : {"--vocab-top", "--vocab-min-count"})
        if (args.has(f) && !args.has("--vocab")) moe::throw_input_error(f, "only applies with --vocab");
    an::StoreOptions so;
    so.read_only = true;
    an::RoutingStore store = an::RoutingStore::open(args.require("--db"), so);
    std::optional<int64_t> run, layer;
    if (args.has("--run")) run = args.get_int("--run", 0, 1, INT64_MAX);
    if (args.has("--layer")) layer = args.get_int("--layer", 0, 0, 1 << 20);
    const bool any_json = args.has("--runs") || args.has("--ablations") || args.has("--load-balance") || args.has("--entropy") ||
                          args.has("--log-ratio") || args.has("--repetition") || args.has("--cross-layer") ||
                          args.has("--vocab") || args.has("--agreement");
    if (!args.has("--csv") && !any_json)
        moe::throw_input_error("stats", "nothing asked: give --csv OUT or a statistic (see --help)");
    if (any_json && args.has("--csv") && args.require("--csv") == "-")
        moe::throw_input_error("--csv -", "the CSV and the JSON statistics would both go to standard output: give --csv a file");
    if (args.has("--csv")) {
        const std::string out = args.require("--csv");
        const int64_t rows = an::write_stats_csv(store, run, layer, out);
        if (out != "-") std::fprintf(stderr, "wrote %s (%lld rows)\n", out.c_str(), static_cast<long long>(rows));
    }
    if (!any_json) return 0;
    auto need_run = [&](const char* what) {
        if (!run) moe::throw_input_error(what, "needs --run ID");
        return *run;
    };
    json j = json::object();
    if (args.has("--runs")) j["runs"] = runs_json(store);
    if (args.has("--ablations")) {
        json a = json::array();
        for (const an::StoredAblation& x : an::read_ablations(store)) a.push_back(stored_ablation_json(x));
        j["ablations"] = a;
    }
    if (args.has("--load-balance")) {
        json a = json::array();
        for (const an::LoadBalance& b : an::load_balance(store, need_run("--load-balance"), layer))
            a.push_back({{"domain", b.domain},
                         {"layer", b.layer},
                         {"tokens", b.tokens},
                         {"n_expert", b.n_expert},
                         {"max_over_mean", b.max_over_mean},
                         {"cv", b.cv},
                         {"max_vio", b.max_vio},
                         {"dead_experts", b.dead_experts},
                         {"dead", b.dead}});
        j["load_balance"] = a;
    }
    if (args.has("--entropy")) {
        json a = json::array();
        for (const an::EntropyHistogram& h : an::entropy_histograms(store, need_run("--entropy"), 20, layer))
            a.push_back({{"domain", h.domain},
                         {"layer", h.layer},
                         {"tokens", h.tokens},
                         {"mean", h.mean},
                         {"max_entropy", h.max_entropy},
                         {"histogram", h.bins}});
        j["entropy"] = a;
    }
    if (args.has("--log-ratio")) {
        json a = json::array();
        for (const an::DomainLogRatio& r : an::domain_log_ratios(store, need_run("--log-ratio"), 0.5, layer))
            a.push_back({{"domain", r.domain},
                         {"layer", r.layer},
                         {"expert", r.expert},
                         {"share", r.share},
                         {"rest_share", r.rest_share},
                         {"log_ratio", r.log_ratio}});
        j["log_ratio"] = a;
    }
    if (args.has("--repetition")) {
        json a = json::array();
        for (const an::Repetition& r : an::repetition(store, need_run("--repetition"), layer))
            a.push_back({{"domain", r.domain},
                         {"layer", r.layer},
                         {"pairs", r.pairs},
                         {"rank0_repeat", r.rank0_repeat},
                         {"rank0_baseline", r.rank0_baseline},
                         {"rank0_uniform", r.rank0_uniform},
                         {"any_overlap", r.any_overlap},
                         {"any_overlap_baseline", r.any_overlap_baseline},
                         {"any_overlap_uniform", r.any_overlap_uniform},
                         {"mean_overlap", r.mean_overlap},
                         {"mean_overlap_baseline", r.mean_overlap_baseline}});
        j["repetition"] = a;
    }
    if (args.has("--cross-layer")) {
        json a = json::array();
        for (const an::CrossLayerAgreement& c : an::cross_layer_agreement(store, need_run("--cross-layer")))
            a.push_back({{"layer_a", c.layer_a},
                         {"layer_b", c.layer_b},
                         {"tokens", c.tokens},
                         {"mutual_information", c.mutual_information},
                         {"nmi", c.nmi},
                         {"best_map_agreement", c.best_map_agreement}});
        j["cross_layer"] = a;
    }
    if (args.has("--vocab")) {
        if (!layer) moe::throw_input_error("--vocab", "needs --layer L");
        const int64_t top_n = args.get_int("--vocab-top", static_cast<int64_t>(an::kVocabTop), 1, 1 << 20);
        const int64_t min_count = args.get_int("--vocab-min-count", an::kVocabMinCount, 1, INT64_MAX);
        json a = json::array();
        for (const an::ExpertVocabulary& v :
             an::vocabulary_specialisation(store, need_run("--vocab"), *layer, std::nullopt, static_cast<size_t>(top_n), min_count)) {
            json top = json::array();
            for (const an::TokenEnrichment& t : v.top)
                top.push_back({{"token_id", t.token_id},
                               {"text", t.text},
                               {"with_expert", t.with_expert},
                               {"occurrences", t.occurrences},
                               {"p_token_given_expert", t.p_token_given_expert},
                               {"p_token", t.p_token},
                               {"enrichment", t.enrichment}});
            a.push_back({{"layer", v.layer}, {"expert", v.expert}, {"selections", v.selections}, {"min_count", min_count},
                         {"top", top}});
        }
        j["vocab"] = a;
    }
    if (args.has("--agreement")) {
        const int64_t b = args.get_int("--agreement", 0, 1, INT64_MAX);
        const an::RunAgreement r = an::routing_agreement(store, need_run("--agreement"), b);
        json a = json::array();
        for (const an::RunAgreementLayer& l : r.layers)
            a.push_back({{"layer", l.layer},
                         {"tokens", l.tokens},
                         {"top1", l.top1},
                         {"overlap", l.overlap},
                         {"jaccard", l.jaccard},
                         {"exact_set", l.exact_set}});
        j["agreement"] = {{"run_a", *run},
                          {"run_b", b},
                          {"documents_matched", r.documents_matched},
                          {"documents_unmatched", r.documents_unmatched},
                          {"layers", a}};
    }
    print_json(j);
    return 0;
}

}  // namespace moewb
