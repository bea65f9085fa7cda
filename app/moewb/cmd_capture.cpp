// moewb capture: sends a corpus through a running SGLang or vLLM server and stores the
// routed expert ids it returns as a run of the routing store (analysis/capture.h,
// docs/capture.md). Progress with tokens/s and ETA on stderr; Ctrl-C stops after the
// requests in flight and leaves the run incomplete, resumed by the same command.
#include <cstdio>
#include <filesystem>

#include "analysis/capture.h"
#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "app/moewb/progress.h"
#include "engine/error.h"
#include "engine/tokenizer.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb capture --server URL --engine sglang|vllm --model DIR --corpus PATH --db FILE\n"
    "                     [--domain NAME] [--split test] [--max-tokens N] [--context N]\n"
    "                     [--gen-tokens N] [--concurrency 4] [--layer-axis auto|absolute|moe]\n"
    "                     [--served-model NAME] [--timeout 600] [--retries 5] [--new-run]\n"
    "                     [--quiet] [--json]\n\n"
    "Captures the routing of a model served by SGLang or vLLM (started with\n"
    "--enable-return-routed-experts): each document of the corpus is tokenized here with DIR's\n"
    "tokenizer, cut into windows of the server's context (--context, default the model's\n"
    "max_position_embeddings, less the generated tokens), sent as token ids (SGLang POST\n"
    "/generate, vLLM POST /v1/completions), and the returned expert ids are checked and stored\n"
    "in FILE as a run with source sglang|vllm and no gate weights. DIR needs config.json and\n"
    "tokenizer.json only (no weights). --gen-tokens N also stores the routing of N generated\n"
    "tokens per window (greedy; all but the last). --layer-axis says whether the payload's layer\n"
    "axis is the absolute layer or the MoE-layer ordinal (auto: detected, refused if ambiguous).\n"
    "Requests are retried with back-off on connection errors, time-outs and HTTP 5xx\n"
    "(--retries, --timeout in seconds per request). Running the same command again resumes the\n"
    "incomplete run. Ctrl-C stops after the requests in flight (exit code 130). See\n"
    "docs/capture.md.\n";

}  // namespace

int cmd_capture(int argc, char** argv) {
    Args args(argc, argv,
              {"--server", "--engine", "--model", "--corpus", "--db", "--domain", "--split", "--max-tokens", "--context",
               "--gen-tokens", "--concurrency", "--layer-axis", "--served-model", "--timeout", "--retries"},
              {"--new-run", "--quiet", "--json"});
    if (args.help()) return print_help(kHelp);
    moe::analysis::CaptureOptions opt;
    opt.server = args.require("--server");
    opt.engine = moe::analysis::parse_capture_engine(args.require("--engine"), "--engine");
    const std::string dir = args.require("--model");
    const std::string db_path = args.require("--db");
    opt.max_tokens = args.get_int("--max-tokens", 0, 0, INT64_MAX);
    opt.context = args.get_int("--context", 0, 2, 1 << 24);
    opt.gen_tokens = args.get_int("--gen-tokens", 0, 0, 1 << 20);
    opt.concurrency = static_cast<int>(args.get_int("--concurrency", 4, 1, 256));
    opt.layer_axis = moe::analysis::parse_layer_axis(args.get_or("--layer-axis", "auto"), "--layer-axis");
    opt.served_model = args.get_or("--served-model", "");
    opt.http.timeout_s = args.get_double("--timeout", 600, 0.1, 86400);
    opt.http.retries = static_cast<int>(args.get_int("--retries", 5, 0, 100));
    opt.new_run = args.has("--new-run");
    const moe::analysis::Corpus corpus =
        moe::analysis::open_corpus(args.require("--corpus"), args.get_or("--split", "test"), args.get("--domain"));
    if (!std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json"))
        moe::throw_input_error(dir, "has no tokenizer.json: capture tokenizes the corpus with the model's tokenizer");
    const moe::ModelConfig cfg = moe::load_model_config(dir);
    const moe::Tokenizer tokenizer = moe::Tokenizer::load_dir(dir);
    // Opened once the documents are read: a bad corpus leaves no new store file behind.
    moe::require_tokenizer_fits(tokenizer, cfg.vocab_size);
    auto documents = moe::analysis::tokenize_corpus(corpus, tokenizer, opt.max_tokens);
    opt.tokenized = &documents;
    moe::analysis::RoutingStore store = moe::analysis::RoutingStore::open(db_path);

    ProgressBar bar(args.has("--quiet"));
    moe::analysis::CaptureProgress last;
    auto draw = [&](const moe::analysis::CaptureProgress& p, bool final) {
        bar.update(p.seconds, p.tokens_done, p.tokens_total, "tok",
                   std::to_string(p.documents_done) + "/" + std::to_string(p.documents_total) + " docs  " +
                       std::to_string(p.retries) + " retries  " + p.domain,
                   final);
    };
    opt.progress = [&](const moe::analysis::CaptureProgress& p) {
        last = p;
        draw(p, false);
        return !InterruptGuard::interrupted();
    };
    const moe::analysis::CaptureResult r = run_interruptible(bar, [&] {
        return moe::analysis::run_capture(store, cfg, moe::analysis::describe_capture_model(cfg, tokenizer, dir),
                                          tokenizer, corpus, opt);
    });
    if (!r.already_complete) draw(last, true);
    bar.done();

    const char* status = r.complete ? "complete" : "incomplete";
    if (args.has("--json")) {
        print_json({{"run_id", r.run_id},
                    {"status", status},
                    {"source", moe::analysis::capture_engine_name(opt.engine)},
                    {"server_version", r.server_version},
                    {"layer_axis", r.layer_axis},
                    {"resumed", r.resumed},
                    {"already_complete", r.already_complete},
                    {"interrupted", r.stopped && !r.complete},
                    {"documents_skipped", r.documents_skipped},
                    {"documents_captured", r.documents_captured},
                    {"tokens_captured", r.tokens_captured},
                    {"requests", r.requests},
                    {"retries", r.retries},
                    {"seconds", r.seconds},
                    {"tokens_per_second", r.seconds > 0 ? static_cast<double>(r.tokens_captured) / r.seconds : 0.0}});
    } else if (r.already_complete) {
        print_already_complete(r.run_id, "capture", db_path);
    } else {
        std::printf("run %lld %s: %lld documents (%lld tokens) captured from %s%s in %.1f s%s, %lld finished before\n",
                    static_cast<long long>(r.run_id), status, static_cast<long long>(r.documents_captured),
                    static_cast<long long>(r.tokens_captured), moe::analysis::capture_engine_name(opt.engine),
                    r.server_version.empty() ? "" : (" " + r.server_version).c_str(), r.seconds,
                    r.resumed ? " (resumed)" : "", static_cast<long long>(r.documents_skipped));
    }
    return resumable_exit("capture", r.run_id, r.stopped, r.complete);
}

}  // namespace moewb
