// moewb ablate: what breaks when experts are switched off (analysis/ablation). One mask, or
// a sweep reproducing an experiment of the DeepSeekMoE paper with its control; per domain
// the baseline and ablated loss, perplexity ratio, KL(baseline ‖ ablated) and top-1
// agreement, as a table, JSON and CSV, and stored in a routing store with --db.
#include <cstdio>
#include <filesystem>

#include "analysis/ablation.h"
#include "analysis/csv_exports.h"
#include "analysis/csv_writer.h"
#include "analysis/fingerprint.h"
#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "app/moewb/progress.h"
#include "engine/error.h"
#include "engine/tokenizer.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb ablate --model DIR --corpus PATH (--mask SPEC | --mask-file FILE) [--mask-mode reroute|drop]\n"
    "                    [--db FILE] [--max-tokens N] [--json] [--csv OUT]\n"
    "       moewb ablate --model DIR --corpus PATH --sweep NAME [sweep options] [same options]\n"
    "  common: [--domain NAME] [--split test] [--context N] [--step-tokens N] [--threads N] [--backend cpu|cuda]\n"
    "          [--activations exact|bf16] [--quiet]\n\n"
    "Runs the corpus's documents (as moewb trace reads them; --max-tokens N per domain) through\n"
    "the model as published and with the mask, window by window (--context, default the\n"
    "model's max_position_embeddings; each window in forward steps of --step-tokens, default 256\n"
    "on the CPU and 2048 on a GPU), and reports per domain: predicted tokens, baseline and\n"
    "ablated loss (nats per predicted token), their difference, the perplexity ratio, the mean\n"
    "KL(baseline || ablated) of the next-token distributions and the top-1 agreement.\n"
    "With --json, stdout is {\"mask\", \"mode\", \"domains\": [{\"domain\", \"tokens\",\n"
    "\"baseline_loss\", \"ablated_loss\", \"delta_loss\", \"ppl_ratio\", \"kl\", \"top1_agreement\"}]}\n"
    "(plus \"all\", over every domain). Mask syntax: docs/masks.md.\n\n"
    "Sweeps (each with its control; the baseline is computed once for all conditions):\n"
    "  --sweep skip-top --ratios 0,0.0625,0.125,0.1875,0.25 [--control random|none] [--seed S]\n"
    "      per token, exclude round(ratio*E) most probable routed experts; control: as many\n"
    "      random ones per token\n"
    "  --sweep top-routed --fractions F,... --from-run ID [--control least-routed,random|none]\n"
    "      switch off, in every MoE layer, the round(F*E) experts most selected in trace run ID\n"
    "      (of --db); controls: the least selected, random ones (--seed)\n"
    "  --sweep shared      shared experts off; off with k+1 routed experts; control: k+1 alone\n"
    "  --sweep k --values 1,2,4..8   activated routed experts per token (E: dense routing)\n"
    "A sweep prints {\"sweep\", \"mode\", \"baseline\": [...], \"conditions\": [{\"value\",\n"
    "\"control\", \"mask\", \"mode\", \"domains\": [...], \"all\"}]} with --json.\n"
    "--csv OUT writes one row per condition x domain (and \"all\"); --csv - writes it to stdout\n"
    "(the table then to stderr; not with --json):\n"
    "  sweep,value,control,mask,mode,domain,tokens,baseline_loss,ablated_loss,delta_loss,\n"
    "  ppl_ratio,kl,top1_agreement\n"
    "--db FILE stores the baseline (once per model, corpus, budget, context and step) and every\n"
    "condition (docs/store.md). Ctrl-C stops without storing anything (exit code 130).\n" MOEWB_MASK_FILE_HELP;

using nlohmann::json;
namespace an = moe::analysis;

json condition_json(const an::AblationConditionResult& c) {
    json domains = json::array();
    for (const an::AblationScore& s : c.domains) domains.push_back(score_json(s));
    json j = {{"mask", c.condition.mask.spec()},
              {"mode", moe::mask_mode_name(c.condition.mask.mode())},
              {"domains", domains},
              {"all", score_json(c.all)}};
    if (!c.condition.sweep.empty()) {
        j["value"] = c.condition.value ? json(*c.condition.value) : json(nullptr);
        j["control"] = c.condition.control.empty() ? json(nullptr) : json(c.condition.control);
        if (c.condition.seed) j["seed"] = *c.condition.seed;
        if (c.condition.from_run) j["from_run"] = *c.condition.from_run;
    }
    if (c.ablation_id) j["ablation_id"] = c.ablation_id;
    return j;
}

void print_table(const an::AblationResult& r, std::FILE* out) {
    for (const an::AblationConditionResult& c : r.conditions) {
        std::string title = c.condition.mask.spec();
        if (!c.condition.sweep.empty()) {
            char value[32] = "";
            if (c.condition.value) std::snprintf(value, sizeof value, " %g", *c.condition.value);
            title = c.condition.sweep + value + (c.condition.control.empty() ? "" : " [control: " + c.condition.control + "]") +
                    "   " + title;
        }
        std::fprintf(out, "%s  (%s)\n", title.c_str(), moe::mask_mode_name(c.condition.mask.mode()));
        std::fprintf(out, "  %-12s %8s %10s %10s %9s %9s %9s %7s\n", "domain", "tokens", "baseline", "ablated", "delta",
                    "ppl ratio", "KL", "top-1");
        auto line = [&](const an::AblationScore& s) {
            if (s.tokens == 0) {  // nothing predicted: no scores
                std::fprintf(out, "  %-12s %8d %10s %10s %9s %9s %9s %7s\n", s.domain.c_str(), 0, "-", "-", "-", "-",
                             "-", "-");
                return;
            }
            std::fprintf(out, "  %-12s %8lld %10.4f %10.4f %+9.4f %9.4f %9.5f %6.1f%%\n", s.domain.c_str(),
                        static_cast<long long>(s.tokens), s.baseline_loss(), s.ablated_loss(), s.delta_loss(),
                        s.ppl_ratio(), s.mean_kl(), 100.0 * s.top1_agreement());
        };
        for (const an::AblationScore& s : c.domains) line(s);
        if (c.domains.size() > 1) line(c.all);
    }
}

std::vector<std::string> controls_from_args(const Args& args, const std::string& fallback) {
    const std::string text = args.get_or("--control", fallback);
    if (text == "none") return {};
    return split_list(text, "--control");
}

}  // namespace

int cmd_ablate(int argc, char** argv) {
    auto flags = model_value_flags();
    flags.insert({"--corpus", "--db", "--domain", "--split", "--max-tokens", "--context", "--step-tokens", "--csv",
                  "--sweep", "--ratios", "--fractions", "--from-run", "--values", "--control", "--seed"});
    Args args(argc, argv, flags, {"--json", "--quiet"});
    if (args.help()) return print_help(kHelp);
    const std::string dir = args.require("--model");
    if ((args.has("--mask") || args.has("--mask-file")) == args.has("--sweep"))
        moe::throw_input_error("ablate", "give exactly one of --mask SPEC (or --mask-file FILE) or --sweep NAME");
    const std::string sweep = args.get_or("--sweep", "");
    for (const char* f : {"--ratios", "--fractions", "--from-run", "--values", "--control", "--seed"})
        if (args.has(f) && sweep.empty()) moe::throw_input_error(f, "only applies with --sweep");
    // "--csv -": standard output is the CSV's alone (the table goes to stderr).
    const bool csv_to_stdout = args.has("--csv") && args.require("--csv") == "-";
    if (csv_to_stdout && args.has("--json"))
        moe::throw_input_error("--csv -", "the CSV and --json would both go to standard output: give --csv a file");
    const an::Corpus corpus = an::open_corpus(args.require("--corpus"), args.get_or("--split", "test"), args.get("--domain"));
    if (!std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json"))
        moe::throw_input_error(dir, "has no tokenizer.json: evaluating text needs the model's tokenizer");
    const moe::Tokenizer tokenizer = moe::Tokenizer::load_dir(dir);
    auto model = open_model(args);
    const moe::ModelConfig& cfg = model->config();
    const moe::MaskMode mode = moe::parse_mask_mode(args.get_or("--mask-mode", "reroute"));
    const uint64_t seed = static_cast<uint64_t>(args.get_int("--seed", 1, 0, INT64_MAX));
    // The store is opened once the arguments are known good (a bad one leaves no new store file
    // behind), except for the top-routed sweep, which reads its trace run from it.
    std::optional<an::RoutingStore> store;
    auto open_store = [&] {
        if (args.has("--db") && !store) store.emplace(an::RoutingStore::open(args.require("--db")));
    };
    if (sweep == "top-routed") open_store();
    // The model's record (its fingerprint reads a sample of every tensor), made once if asked for.
    std::optional<an::ModelRecord> record;
    auto model_record = [&]() -> const an::ModelRecord& {
        if (!record) record = an::describe_model(*model, &tokenizer, dir);
        return *record;
    };

    std::vector<an::AblationCondition> conditions;
    if (sweep.empty()) {
        an::AblationCondition c;
        c.mask = mask_from_args(args, cfg);
        conditions.push_back(std::move(c));
    } else if (sweep == "skip-top") {
        const auto controls = controls_from_args(args, "random");
        if (!(controls.empty() || (controls.size() == 1 && controls[0] == "random")))
            moe::throw_input_error("--control", "skip-top's control is 'random' (or 'none')");
        conditions = an::skip_top_sweep(cfg, parse_number_list(args.require("--ratios"), "--ratios"),
                                        !controls.empty(), seed, mode);
    } else if (sweep == "top-routed") {
        if (!store) moe::throw_input_error("--from-run", "needs --db FILE, the store holding the trace run");
        const int64_t run = args.get_int("--from-run", 0, 1, INT64_MAX);
        if (!args.has("--from-run")) moe::throw_input_error("--sweep top-routed", "needs --from-run ID (a trace run)");
        const auto selections = an::expert_selections(*store, run, cfg);
        // A run of the same shape from another checkpoint (a base model's routing to pick a
        // fine-tune's experts) is allowed, and said.
        if (const an::RunInfo info = store->run(run); info.model_content_hash != model_record().content_hash)
            std::fprintf(stderr,
                         "note: run %lld was traced with another checkpoint (%s, whose weights, config or tokenizer "
                         "differ from this model's): its most-routed experts are switched off here as asked\n",
                         static_cast<long long>(run), info.model_name.c_str());
        conditions = an::routed_sweep(cfg, selections, run, parse_number_list(args.require("--fractions"), "--fractions"),
                                      controls_from_args(args, "least-routed,random"), seed, mode);
    } else if (sweep == "shared") {
        if (args.has("--control")) moe::throw_input_error("--control", "the shared sweep has a fixed control (k+1)");
        conditions = an::shared_sweep(cfg, mode);
    } else if (sweep == "k") {
        if (args.has("--control")) moe::throw_input_error("--control", "the k sweep's control is the published k");
        conditions = an::k_sweep(cfg, parse_int_list(args.require("--values"), "--values"), mode);
    } else {
        moe::throw_input_error("--sweep", "'" + sweep + "' is not one of skip-top, top-routed, shared, k");
    }

    an::AblationOptions opt;
    opt.max_tokens = args.get_int("--max-tokens", 0, 0, INT64_MAX);
    opt.context = args.get_int("--context", 0, 2, 1 << 24);
    opt.step_tokens = args.get_int("--step-tokens", 0, 1, 1 << 20);
    // The CSV file opened before the evaluation, so a path that cannot be written is refused
    // before the work, not after it.
    std::optional<an::CsvWriter> csv;
    if (args.has("--csv")) csv.emplace(args.require("--csv"));
    // The documents read before a new store file is made: a bad corpus leaves none behind.
    moe::require_tokenizer_fits(tokenizer, cfg.vocab_size);
    auto documents = an::tokenize_corpus(corpus, tokenizer, opt.max_tokens);
    opt.tokenized = &documents;
    open_store();
    ProgressBar bar(args.has("--quiet"));
    an::AblationProgress last;
    opt.progress = [&](const an::AblationProgress& p) {
        last = p;
        bar.update(p.seconds, p.tokens_done, p.tokens_total, "tok", p.domain);
        return !InterruptGuard::interrupted();
    };
    an::AblationResult r =
        run_interruptible(bar, [&] { return an::run_ablation(*model, tokenizer, corpus, conditions, opt); });
    bar.update(last.seconds, last.tokens_done, last.tokens_total, "tok", last.domain, true);
    bar.done();
    if (r.stopped) {
        std::fprintf(stderr, "moewb ablate: interrupted; nothing was stored or written.\n");
        return 130;
    }
    if (store) store_ablation(*store, model_record(), corpus, model->backend_label(), model->dtype_summary(), opt, r);
    if (csv) an::write_ablation_csv(*csv, r);

    if (args.has("--json")) {
        if (sweep.empty()) {
            json j = condition_json(r.conditions[0]);
            j["context"] = r.context;
            j["step_tokens"] = r.step_tokens;
            j["seconds"] = r.seconds;
            if (r.baseline_id) j["baseline_id"] = r.baseline_id;
            print_json(j);
        } else {
            json baseline = json::array();
            for (const an::AblationScore& s : r.baseline)
                baseline.push_back({{"domain", s.domain}, {"tokens", s.tokens}, {"loss", s.baseline_loss()}});
            json conds = json::array();
            for (const an::AblationConditionResult& c : r.conditions) conds.push_back(condition_json(c));
            json j = {{"sweep", sweep},       {"mode", moe::mask_mode_name(mode)},
                      {"context", r.context}, {"step_tokens", r.step_tokens},
                      {"seconds", r.seconds}, {"baseline", baseline},
                      {"conditions", conds}};
            if (r.baseline_id) j["baseline_id"] = r.baseline_id;
            print_json(j);
        }
    } else {
        std::FILE* out = csv_to_stdout ? stderr : stdout;
        print_table(r, out);
        if (store)
            std::fprintf(out, "stored in %s (baseline %lld)\n", store->path().c_str(), static_cast<long long>(r.baseline_id));
    }
    return 0;
}

}  // namespace moewb
