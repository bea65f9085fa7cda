// moewb trace: runs a corpus through a model with the routing observer attached and writes
// every routing decision into a routing store (analysis/trace_runner). A progress bar with
// tokens/s and ETA goes to stderr; Ctrl-C finishes the current document and leaves the run
// incomplete, to be resumed by running the same command again.
#include <cstdio>
#include <filesystem>

#include "analysis/fingerprint.h"
#include "analysis/trace_runner.h"
#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "app/moewb/progress.h"
#include "engine/error.h"
#include "engine/tokenizer.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb trace --model DIR --corpus PATH --db FILE [--domain NAME] [--split test]\n"
    "                   [--max-tokens N] [--context N] [--step-tokens N] [--mask SPEC | --mask-file FILE]\n"
    "                   [--mask-mode reroute|drop]\n"
    "                   [--threads N] [--backend cpu|cuda] [--activations exact|bf16] [--new-run] [--quiet] "
    "[--json]\n\n"
    "Traces the documents of a corpus through the model and stores, for every MoE layer and\n"
    "token, the selected experts, their gate weights and the router entropy in the routing\n"
    "store FILE (created when absent; see docs/store.md). PATH is a directory of domains\n"
    "(PATH/<domain>/<split>.jsonl, as datasets/), a directory holding <split>.jsonl (one\n"
    "domain), a .jsonl file of {\"id\", \"text\"} (or {\"question\", \"answer\"}) lines, or a\n"
    "plain-text file (one document). Text must be UTF-8: a file that is not is an error naming\n"
    "it and the byte offset, and nothing is written. --domain names a single-domain corpus's\n"
    "domain (default: the file or directory name) or picks one domain of a directory of domains.\n"
    "--max-tokens N caps the tokens traced per domain; --context N is the window length\n"
    "(default: the model's max_position_embeddings); --step-tokens N the tokens of a window\n"
    "run in one forward step (default: 256 on the CPU, 2048 on a GPU). Running the same trace\n"
    "again resumes its incomplete run, skipping finished documents (--new-run starts another run).\n"
    "Ctrl-C stops after the current document (exit code 130; the run stays incomplete).\n" MOEWB_MASK_FILE_HELP;

}  // namespace

int cmd_trace(int argc, char** argv) {
    auto flags = model_value_flags();
    flags.insert({"--corpus", "--db", "--domain", "--split", "--max-tokens", "--context", "--step-tokens"});
    Args args(argc, argv, flags, {"--new-run", "--quiet", "--json"});
    if (args.help()) return print_help(kHelp);
    const std::string dir = args.require("--model");
    const std::string db_path = args.require("--db");
    const moe::analysis::Corpus corpus =
        moe::analysis::open_corpus(args.require("--corpus"), args.get_or("--split", "test"), args.get("--domain"));
    if (!std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json"))
        moe::throw_input_error(dir, "has no tokenizer.json: tracing text needs the model's tokenizer");
    const moe::Tokenizer tokenizer = moe::Tokenizer::load_dir(dir);
    auto model = open_model(args);
    const moe::ExpertMask mask = mask_from_args(args, model->config());
    moe::analysis::TraceOptions opt;
    opt.max_tokens = args.get_int("--max-tokens", 0, 0, INT64_MAX);
    opt.context = args.get_int("--context", 0, 1, 1 << 24);
    opt.step_tokens = args.get_int("--step-tokens", 0, 1, 1 << 20);
    // Opened once every argument and document is known good: bad input leaves no new store file.
    moe::require_tokenizer_fits(tokenizer, model->config().vocab_size);
    auto documents = moe::analysis::tokenize_corpus(corpus, tokenizer, opt.max_tokens);
    opt.tokenized = &documents;
    moe::analysis::RoutingStore store = moe::analysis::RoutingStore::open(db_path);
    opt.mask = mask.empty() ? nullptr : &mask;
    opt.new_run = args.has("--new-run");
    ProgressBar bar(args.has("--quiet"));
    moe::analysis::TraceProgress last;
    auto draw = [&](const moe::analysis::TraceProgress& p, bool final) {
        bar.update(p.seconds, p.tokens_done, p.tokens_total, "tok",
                   std::to_string(p.documents_done) + "/" + std::to_string(p.documents_total) + " docs  " + p.domain,
                   final);
    };
    opt.progress = [&](const moe::analysis::TraceProgress& p) {
        last = p;
        draw(p, false);
        return !InterruptGuard::interrupted();
    };

    // First Ctrl-C: finish the current document and stop; a second ends the process at once
    // (the store stays consistent: every transaction is whole).
    const moe::analysis::TraceResult r = run_interruptible(bar, [&] {
        return moe::analysis::run_trace(store, *model, moe::analysis::describe_model(*model, &tokenizer, dir),
                                        tokenizer, corpus, opt);
    });
    if (!r.already_complete) draw(last, true);
    bar.done();

    const char* status = r.complete ? "complete" : "incomplete";
    if (args.has("--json")) {
        print_json({{"run_id", r.run_id},
                    {"status", status},
                    {"resumed", r.resumed},
                    {"already_complete", r.already_complete},
                    {"interrupted", r.stopped && !r.complete},
                    {"documents_skipped", r.documents_skipped},
                    {"documents_traced", r.documents_traced},
                    {"tokens_traced", r.tokens_traced},
                    {"seconds", r.seconds},
                    {"tokens_per_second", r.seconds > 0 ? static_cast<double>(r.tokens_traced) / r.seconds : 0.0},
                    {"writer",
                     {{"transactions", r.writer.transactions},
                      {"decisions", r.writer.decisions},
                      {"producer_wait_s", r.writer.producer_wait_s},
                      {"write_s", r.writer.write_s}}}});
    } else if (r.already_complete) {
        print_already_complete(r.run_id, "trace", db_path);
    } else {
        std::printf("run %lld %s: %lld documents (%lld tokens) traced in %.1f s%s, %lld finished before\n",
                    static_cast<long long>(r.run_id), status, static_cast<long long>(r.documents_traced),
                    static_cast<long long>(r.tokens_traced), r.seconds, r.resumed ? " (resumed)" : "",
                    static_cast<long long>(r.documents_skipped));
    }
    return resumable_exit("trace", r.run_id, r.stopped, r.complete);
}

}  // namespace moewb
