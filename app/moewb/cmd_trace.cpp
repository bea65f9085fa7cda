// moewb trace: runs a corpus through a model with the routing observer attached and writes
// every routing decision into a routing store (analysis/trace_runner). A progress bar with
// tokens/s and ETA goes to stderr; Ctrl-C finishes the current document and leaves the run
// incomplete, to be resumed by running the same command again.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>

#include "analysis/fingerprint.h"
#include "analysis/trace_runner.h"
#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "engine/error.h"
#include "engine/tokenizer.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb trace --model DIR --corpus PATH --db FILE [--domain NAME] [--split test]\n"
    "                   [--max-tokens N] [--context N] [--mask SPEC] [--mask-mode reroute|drop]\n"
    "                   [--threads N] [--new-run] [--quiet] [--json]\n\n"
    "Traces the documents of a corpus through the model and stores, for every MoE layer and\n"
    "token, the selected experts, their gate weights and the router entropy in the routing\n"
    "store FILE (created when absent; see docs/store.md). PATH is a directory of domains\n"
    "(PATH/<domain>/<split>.jsonl, as datasets/), a directory holding <split>.jsonl (one\n"
    "domain), a .jsonl file of {\"id\", \"text\"} (or {\"question\", \"answer\"}) lines, or a\n"
    "plain-text file (one document). --domain names a single-domain corpus's domain (default:\n"
    "the file or directory name) or picks one domain of a directory of domains.\n"
    "--max-tokens N caps the tokens traced per domain; --context N is the window length\n"
    "(default: the model's max_position_embeddings). Running the same trace again resumes\n"
    "its incomplete run, skipping finished documents (--new-run starts another run).\n"
    "Ctrl-C stops after the current document (exit code 130; the run stays incomplete).\n";

volatile std::sig_atomic_t g_interrupted = 0;

void on_sigint(int) {
    g_interrupted = 1;
}

std::string clock_text(double seconds) {
    if (!(seconds >= 0) || seconds > 360000) return "--:--";
    const auto s = static_cast<long long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600)
        std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    else
        std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
    return buf;
}

// The progress line on stderr: redrawn in place on a terminal, a line every 10 s otherwise.
class ProgressBar {
public:
    explicit ProgressBar(bool quiet) : quiet_(quiet), tty_(isatty(STDERR_FILENO) == 1) {}
    void update(const moe::analysis::TraceProgress& p, bool final = false) {
        if (quiet_) return;
        const double interval = tty_ ? 0.2 : 10.0;
        if (!final && p.seconds - last_ < interval && p.tokens_done != 0) return;
        last_ = p.seconds;
        const double frac =
            p.tokens_total ? static_cast<double>(p.tokens_done) / static_cast<double>(p.tokens_total) : 1.0;
        const double rate = p.seconds > 0 ? static_cast<double>(p.tokens_done) / p.seconds : 0.0;
        const double eta = rate > 0 ? static_cast<double>(p.tokens_total - p.tokens_done) / rate : -1.0;
        constexpr int kWidth = 24;
        const int filled = static_cast<int>(frac * kWidth);
        std::string bar(static_cast<size_t>(filled), '=');
        if (filled < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
        std::fprintf(stderr, "%s[%s] %3.0f%%  %lld/%lld tok  %lld/%lld docs  %.0f tok/s  ETA %s  %s%s",
                     tty_ ? "\r" : "", bar.c_str(), frac * 100.0, static_cast<long long>(p.tokens_done),
                     static_cast<long long>(p.tokens_total), static_cast<long long>(p.documents_done),
                     static_cast<long long>(p.documents_total), rate, clock_text(eta).c_str(), p.domain.c_str(),
                     tty_ ? "\x1b[K" : "\n");
        std::fflush(stderr);
        drawn_ = true;
    }
    void done() {
        if (drawn_ && tty_) std::fputc('\n', stderr);
    }

private:
    bool quiet_, tty_;
    bool drawn_ = false;
    double last_ = -1e9;
};

}  // namespace

int cmd_trace(int argc, char** argv) {
    auto flags = model_value_flags();
    flags.insert({"--corpus", "--db", "--domain", "--split", "--max-tokens", "--context"});
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
    moe::analysis::RoutingStore store = moe::analysis::RoutingStore::open(db_path);

    moe::analysis::TraceOptions opt;
    opt.max_tokens = args.get_int("--max-tokens", 0, 0, INT64_MAX);
    opt.context = args.get_int("--context", 0, 1, 1 << 24);
    opt.mask = mask.empty() ? nullptr : &mask;
    opt.new_run = args.has("--new-run");
    ProgressBar bar(args.has("--quiet"));
    moe::analysis::TraceProgress last;
    opt.progress = [&](const moe::analysis::TraceProgress& p) {
        last = p;
        bar.update(p);
        return g_interrupted == 0;
    };

    // First Ctrl-C: finish the current document and stop. The handler then reverts to the
    // default, so a second Ctrl-C ends the process at once (the store stays consistent:
    // every transaction is whole).
    struct sigaction sa = {};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    struct sigaction old = {};
    sigaction(SIGINT, &sa, &old);
    moe::analysis::TraceResult r;
    try {
        r = moe::analysis::run_trace(store, *model, moe::analysis::describe_model(*model, &tokenizer, dir), tokenizer,
                                     corpus, opt);
    } catch (...) {
        sigaction(SIGINT, &old, nullptr);
        bar.done();
        throw;
    }
    sigaction(SIGINT, &old, nullptr);
    if (!r.already_complete) bar.update(last, true);
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
        std::printf("run %lld: this trace is already complete in %s (use --new-run for another run)\n",
                    static_cast<long long>(r.run_id), db_path.c_str());
    } else {
        std::printf("run %lld %s: %lld documents (%lld tokens) traced in %.1f s%s, %lld finished before\n",
                    static_cast<long long>(r.run_id), status, static_cast<long long>(r.documents_traced),
                    static_cast<long long>(r.tokens_traced), r.seconds, r.resumed ? " (resumed)" : "",
                    static_cast<long long>(r.documents_skipped));
    }
    if (r.stopped && !r.complete) {
        std::fprintf(stderr,
                     "moewb trace: interrupted; run %lld is incomplete. Run the same command again to resume.\n",
                     static_cast<long long>(r.run_id));
        return 130;
    }
    return 0;
}

}  // namespace moewb
