// bench_trace: what the routing store costs a trace. The same documents of a corpus go
// through the model twice, alternately, --repeat times each:
//   plain   the forward passes alone (windows of the model's context, steps of its
//           step_tokens(), last-position logits only), no observer, no store;
//   traced  `run_trace` into a fresh store: the forward passes with the DocumentCollector
//           on the observer and the TraceWriter thread writing every decision.
// Prints JSON with both rates (best of the repeats) and their ratio (target >= 0.95).
// Usage: bench_trace --model DIR [--corpus datasets] [--max-tokens 4096] [--repeat 3]
//                    [--threads N] [--db FILE]
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "analysis/corpus_tokens.h"
#include "analysis/fingerprint.h"
#include "analysis/trace_runner.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

namespace an = moe::analysis;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
    std::string model_dir, corpus_path = "datasets", db = "/tmp/bench_trace.db";
    int64_t max_tokens = 4096, repeat = 3;
    int threads = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string f = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::runtime_error(f + " needs a value");
            return argv[++i];
        };
        if (f == "--model") model_dir = next();
        else if (f == "--corpus") corpus_path = next();
        else if (f == "--max-tokens") max_tokens = std::stoll(next());
        else if (f == "--repeat") repeat = std::stoll(next());
        else if (f == "--threads") threads = std::stoi(next());
        else if (f == "--db") db = next();
        else {
            std::fprintf(stderr, "bench_trace: unknown option %s\n", f.c_str());
            return 2;
        }
    }
    if (model_dir.empty()) {
        std::fprintf(stderr, "usage: bench_trace --model DIR [--corpus PATH] [--max-tokens N] [--repeat N]\n");
        return 2;
    }
    try {
        moe::LoadOptions lo;
        lo.threads = threads;
        auto model = moe::load_model(model_dir, lo);
        const moe::Tokenizer tok = moe::Tokenizer::load_dir(model_dir);
        const an::Corpus corpus = an::open_corpus(corpus_path, "test", std::nullopt);
        const an::ModelRecord record = an::describe_model(*model, &tok, model_dir);
        const int64_t context = model->config().max_position_embeddings;

        std::vector<std::vector<int32_t>> docs;
        int64_t total = 0;
        for (const auto& d : corpus.domains)
            for (auto& td : an::tokenize_domain(d, tok, max_tokens)) {
                total += static_cast<int64_t>(td.ids.size());
                docs.push_back(std::move(td.ids));
            }

        auto plain = [&] {
            const auto t0 = Clock::now();
            std::vector<float> logits;
            moe::ForwardOptions fo;
            fo.all_logits = false;
            for (const auto& ids : docs)
                for (size_t w0 = 0; w0 < ids.size(); w0 += static_cast<size_t>(context)) {
                    const size_t wn = std::min(ids.size() - w0, static_cast<size_t>(context));
                    moe::Session s(*model);
                    const auto step = static_cast<size_t>(model->step_tokens());  // run_trace's
                    for (size_t c0 = 0; c0 < wn; c0 += step)
                        s.forward(std::span<const int32_t>(ids).subspan(w0 + c0, std::min(step, wn - c0)), fo, logits);
                }
            return std::chrono::duration<double>(Clock::now() - t0).count();
        };
        auto traced = [&] {
            for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(db + ext);
            an::RoutingStore store = an::RoutingStore::open(db);
            an::TraceOptions opt;
            opt.max_tokens = max_tokens;
            const auto t0 = Clock::now();
            const an::TraceResult r = an::run_trace(store, *model, record, tok, corpus, opt);
            const double s = std::chrono::duration<double>(Clock::now() - t0).count();
            if (r.tokens_traced != total) throw std::runtime_error("traced a different number of tokens");
            return std::make_pair(s, r.writer);
        };
        double best_plain = 1e300, best_traced = 1e300;
        an::TraceWriterStats writer;
        for (int64_t r = 0; r < repeat; ++r) {
            best_plain = std::min(best_plain, plain());
            auto [s, w] = traced();
            if (s < best_traced) best_traced = s, writer = w;
        }
        for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(db + ext);
        const nlohmann::json j = {{"model", model_dir},
                                  {"threads", model->threads()},
                                  {"documents", docs.size()},
                                  {"tokens", total},
                                  {"repeat", repeat},
                                  {"plain_tok_s", static_cast<double>(total) / best_plain},
                                  {"traced_tok_s", static_cast<double>(total) / best_traced},
                                  {"ratio", best_plain / best_traced},
                                  {"writer_producer_wait_s", writer.producer_wait_s},
                                  {"writer_busy_s", writer.write_s}};
        std::printf("%s\n", j.dump(1).c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_trace: %s\n", e.what());
        return 1;
    }
    return 0;
}
