// moewb import: stores saved SGLang / vLLM responses (JSONL, one request per line, with the
// prompt token ids and the engine's routing field) as a run of the routing store, for
// clusters that cannot reach the researcher's machine (analysis/capture.h, docs/capture.md).
#include <cstdio>
#include <filesystem>
#include <optional>

#include "analysis/capture.h"
#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "app/moewb/progress.h"
#include "engine/error.h"
#include "engine/tokenizer.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb import --db FILE --model DIR --responses FILE.jsonl [--engine sglang|vllm]\n"
    "                    [--domain NAME] [--layer-axis auto|absolute|moe] [--new-run] [--quiet] [--json]\n\n"
    "Imports saved responses of an SGLang or vLLM server started with\n"
    "--enable-return-routed-experts into the routing store FILE, one document per line. A line is\n"
    "{\"id\", \"domain\", \"prompt_ids\": [...], \"response\": {the server's JSON response}} (or the\n"
    "response itself with \"prompt_ids\" beside its fields); the engine is detected from the\n"
    "response (SGLang meta_info.routed_experts, vLLM choices[0].routed_experts) unless --engine\n"
    "says. DIR needs config.json and tokenizer.json only. The same checks as moewb capture;\n"
    "importing the same file again resumes its incomplete run. See docs/capture.md.\n";

}  // namespace

int cmd_import(int argc, char** argv) {
    Args args(argc, argv, {"--db", "--model", "--responses", "--engine", "--domain", "--layer-axis"},
              {"--new-run", "--quiet", "--json"});
    if (args.help()) return print_help(kHelp);
    const std::string dir = args.require("--model");
    const std::string db_path = args.require("--db");
    const std::string responses = args.require("--responses");
    moe::analysis::ImportOptions opt;
    if (auto e = args.get("--engine")) opt.engine = moe::analysis::parse_capture_engine(*e, "--engine");
    opt.layer_axis = moe::analysis::parse_layer_axis(args.get_or("--layer-axis", "auto"), "--layer-axis");
    opt.domain = args.get_or("--domain", "");
    opt.new_run = args.has("--new-run");
    if (!std::filesystem::exists(responses)) moe::throw_input_error(responses, "no such responses file");
    if (!std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json"))
        moe::throw_input_error(dir, "has no tokenizer.json: the store keeps the model's token texts");
    const moe::ModelConfig cfg = moe::load_model_config(dir);
    const moe::Tokenizer tokenizer = moe::Tokenizer::load_dir(dir);
    std::optional<moe::analysis::RoutingStore> store;  // opened once every line has been checked

    ProgressBar bar(args.has("--quiet"));
    opt.progress = [&](const moe::analysis::CaptureProgress& p) {
        bar.update(p.seconds, p.tokens_done, 0, "tok", std::to_string(p.documents_done) + " docs  " + p.domain);
        return !InterruptGuard::interrupted();
    };
    const moe::analysis::ImportResult r = run_interruptible(bar, [&] {
        auto open_store = [&]() -> moe::analysis::RoutingStore& {
            return store.emplace(moe::analysis::RoutingStore::open(db_path));
        };
        return moe::analysis::run_import(open_store, cfg, moe::analysis::describe_capture_model(cfg, tokenizer, dir),
                                         responses, opt);
    });
    bar.done();
    const char* status = r.complete ? "complete" : "incomplete";
    if (args.has("--json")) {
        print_json({{"run_id", r.run_id},
                    {"status", status},
                    {"source", r.engine},
                    {"layer_axis", r.layer_axis},
                    {"resumed", r.resumed},
                    {"already_complete", r.already_complete},
                    {"interrupted", r.stopped && !r.complete},
                    {"documents_skipped", r.documents_skipped},
                    {"documents_imported", r.documents_imported},
                    {"tokens_imported", r.tokens_imported},
                    {"seconds", r.seconds}});
    } else if (r.already_complete) {
        print_already_complete(r.run_id, "import", db_path);
    } else if (r.run_id != 0) {  // 0: stopped while the file was being checked
        std::printf("run %lld %s: %lld %s responses (%lld tokens) imported in %.1f s%s, %lld finished before\n",
                    static_cast<long long>(r.run_id), status, static_cast<long long>(r.documents_imported),
                    r.engine.c_str(), static_cast<long long>(r.tokens_imported), r.seconds,
                    r.resumed ? " (resumed)" : "", static_cast<long long>(r.documents_skipped));
    }
    return resumable_exit("import", r.run_id, r.stopped, r.complete);
}

}  // namespace moewb
