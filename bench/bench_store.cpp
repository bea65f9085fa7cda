// bench_store: the routing store on synthetic routing shaped like DeepSeekMoE 16B (27 MoE
// layers, 64 routed experts, top-6), printed as JSON:
//   write     routing decisions (token × layer × rank) per second through TraceWriter into
//             a fresh store, from the first submit to the last commit (target ≥ 20 M/s);
//   heatmap   one run, one domain, all layers × experts (RoutingStore::aggregates and the
//             zero-filled expert_shares), median and worst of --repeat queries (≤ 20 ms);
//   stats_csv the full per-expert stats CSV of the run (≤ 1 s).
// Usage: bench_store [--tokens 1000000] [--doc-tokens 1024] [--domains 5] [--layers 27]
//                    [--experts 64] [--k 6] [--repeat 20] [--db FILE] [--keep]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/csv_exports.h"
#include "analysis/expert_stats.h"
#include "analysis/routing_store.h"
#include "analysis/store/sqlite_db.h"
#include "analysis/trace_writer.h"
#include "engine/error.h"

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Args {
    int64_t tokens = 1'000'000, doc_tokens = 1024, domains = 5, layers = 27, experts = 64, k = 6, repeat = 20;
    std::string db;
    bool keep = false;
};

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        const std::string f = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw moe::Error(moe::ErrorKind::input, f + ": missing value");
            return argv[++i];
        };
        if (f == "--tokens")
            a.tokens = std::stoll(next());
        else if (f == "--doc-tokens")
            a.doc_tokens = std::stoll(next());
        else if (f == "--domains")
            a.domains = std::stoll(next());
        else if (f == "--layers")
            a.layers = std::stoll(next());
        else if (f == "--experts")
            a.experts = std::stoll(next());
        else if (f == "--k")
            a.k = std::stoll(next());
        else if (f == "--repeat")
            a.repeat = std::stoll(next());
        else if (f == "--db")
            a.db = next();
        else if (f == "--keep")
            a.keep = true;
        else
            throw moe::Error(moe::ErrorKind::input, "unknown option " + f);
    }
    if (a.tokens < 1 || a.doc_tokens < 1 || a.domains < 1 || a.layers < 1 || a.k < 1 || a.k > a.experts ||
        a.experts > 65536)
        throw moe::Error(moe::ErrorKind::input, "bad sizes");
    return a;
}

// A few documents' worth of routing with a skewed expert popularity (as trained routers
// have), reused round-robin so that generating them does not dominate the measurement.
std::vector<moe::analysis::DocumentRouting> make_pool(const Args& a, const moe::analysis::RunInfo& run) {
    std::mt19937_64 rng(42);
    std::vector<moe::analysis::DocumentRouting> pool(8);
    for (auto& d : pool) {
        const size_t T = static_cast<size_t>(a.doc_tokens), K = static_cast<size_t>(a.k);
        d.split = "test";
        d.token_ids.resize(T);
        for (auto& t : d.token_ids) t = static_cast<int32_t>(rng() % 100000);
        for (const auto& rl : run.layers) {
            moe::analysis::DocumentRouting::Layer l;
            l.layer = rl.layer;
            l.k = rl.k;
            l.experts.resize(T * K);
            l.gate_weights.resize(T * K);
            l.entropy.resize(T);
            for (size_t t = 0; t < T; ++t) {
                int32_t* e = l.experts.data() + t * K;
                for (size_t r = 0; r < K;) {
                    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
                    const auto x = static_cast<int32_t>(u * u * static_cast<double>(a.experts));  // skewed
                    if (std::find(e, e + r, x) == e + r) e[r++] = x;
                }
                float w = 0.4f;
                for (size_t r = 0; r < K; ++r, w *= 0.7f) l.gate_weights[t * K + r] = w;
                l.entropy[t] = 2.5f + static_cast<float>(t % 100) * 0.01f;
            }
            d.layers.push_back(std::move(l));
        }
    }
    return pool;
}

}  // namespace

int main(int argc, char** argv) {
    namespace an = moe::analysis;
    try {
        const Args a = parse(argc, argv);
        const std::string path =
            a.db.empty()
                ? (std::filesystem::temp_directory_path() / ("bench_store_" + std::to_string(::getpid()) + ".db"))
                      .string()
                : a.db;
        for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(path + ext);
        an::RoutingStore store = an::RoutingStore::open(path);

        an::ModelRecord m;
        m.name = "synthetic-16b-shape";
        m.path = "/synthetic";
        m.architecture = "deepseek";
        m.config_json = "{}";
        m.content_hash = "fp1:bench";
        m.n_layers = a.layers + 1;
        m.n_routed_experts = a.experts;
        m.num_experts_per_tok = a.k;
        an::RunSpec spec;
        spec.model_id = store.add_model(m);
        const int64_t corpus = store.add_corpus({"synthetic", "/synthetic/corpus", "", ""});
        std::vector<int64_t> domains;
        for (int64_t d = 0; d < a.domains; ++d)
            domains.push_back(store.add_domain(corpus, {"domain" + std::to_string(d), "", ""}));
        spec.corpus_id = corpus;
        spec.gate_weight_kind = moe::GateWeightKind::router_prob;
        for (int64_t l = 1; l <= a.layers; ++l) spec.layers.push_back({l, a.experts, a.k});  // layer 0 is dense
        const int64_t run_id = store.create_run(spec);
        const an::RunInfo run = store.run(run_id);
        const auto pool = make_pool(a, run);

        // --- write ---
        const int64_t n_docs = (a.tokens + a.doc_tokens - 1) / a.doc_tokens;
        int64_t tokens = 0;
        double copy_s = 0;
        const auto t0 = Clock::now();
        an::TraceWriterStats ws;
        {
            an::TraceWriter w(store, run_id);
            for (int64_t i = 0; i < n_docs; ++i) {
                const auto c0 = Clock::now();
                auto d = std::make_unique<an::DocumentRouting>(pool[static_cast<size_t>(i) % pool.size()]);
                const int64_t T = std::min(a.doc_tokens, a.tokens - tokens);
                if (T < a.doc_tokens) {
                    d->token_ids.resize(static_cast<size_t>(T));
                    for (auto& l : d->layers) {
                        l.experts.resize(static_cast<size_t>(T * a.k));
                        l.gate_weights.resize(static_cast<size_t>(T * a.k));
                        l.entropy.resize(static_cast<size_t>(T));
                    }
                }
                d->domain_id = domains[static_cast<size_t>(i % a.domains)];
                d->name = "doc" + std::to_string(i);
                d->text_hash = d->name;
                tokens += T;
                copy_s += since(c0);
                w.submit(std::move(d));
            }
            w.finish();
            ws = w.stats();
        }
        const double write_s = since(t0);
        store.finish_run(run_id, true);
        const double decisions = static_cast<double>(tokens) * static_cast<double>(a.layers) * static_cast<double>(a.k);
        // Fold the WAL into the main file (outside the timing) so the size is the store's own.
        store.connection().exec("PRAGMA wal_checkpoint(TRUNCATE)", "checkpointing");
        const auto file_bytes = [&] {
            uintmax_t n = 0;
            for (const char* ext : {"", "-wal"}) {
                std::error_code ec;
                const auto s = std::filesystem::file_size(path + ext, ec);
                if (!ec) n += s;
            }
            return n;
        }();

        // --- heatmap: one domain, all layers × experts ---
        std::vector<double> agg_ms, grid_ms;
        for (int64_t r = 0; r < a.repeat; ++r) {
            const int64_t dom = domains[static_cast<size_t>(r % a.domains)];
            auto q0 = Clock::now();
            const auto rows = store.aggregates(run_id, dom);
            agg_ms.push_back(since(q0) * 1e3);
            if (rows.empty()) throw moe::Error(moe::ErrorKind::failure, "no aggregates");
            q0 = Clock::now();
            const auto grid = an::expert_shares(store, run_id, std::nullopt, dom);
            grid_ms.push_back(since(q0) * 1e3);
            if (grid.size() != static_cast<size_t>(a.layers * a.experts))
                throw moe::Error(moe::ErrorKind::failure, "grid size");
        }
        std::sort(agg_ms.begin(), agg_ms.end());
        std::sort(grid_ms.begin(), grid_ms.end());

        // --- full stats CSV ---
        const std::string csv = path + ".stats.csv";
        const auto c0 = Clock::now();
        const int64_t rows = an::write_stats_csv(store, run_id, std::nullopt, csv);
        const double csv_s = since(c0);
        std::filesystem::remove(csv);

        nlohmann::json j = {{"shape",
                             {{"layers", a.layers},
                              {"experts", a.experts},
                              {"k", a.k},
                              {"domains", a.domains},
                              {"doc_tokens", a.doc_tokens}}},
                            {"tokens", tokens},
                            {"decisions", decisions},
                            {"write",
                             {{"seconds", write_s},
                              {"decisions_per_s", decisions / write_s},
                              {"tokens_per_s", static_cast<double>(tokens) / write_s},
                              {"transactions", ws.transactions},
                              {"writer_busy_s", ws.write_s},
                              {"producer_wait_s", ws.producer_wait_s},
                              {"producer_copy_s", copy_s},
                              {"store_bytes", file_bytes},
                              {"bytes_per_token", static_cast<double>(file_bytes) / static_cast<double>(tokens)}}},
                            {"heatmap_query_ms",
                             {{"aggregates_median", agg_ms[agg_ms.size() / 2]},
                              {"aggregates_max", agg_ms.back()},
                              {"expert_shares_median", grid_ms[grid_ms.size() / 2]},
                              {"expert_shares_max", grid_ms.back()},
                              {"cells", a.layers * a.experts}}},
                            {"stats_csv", {{"seconds", csv_s}, {"rows", rows}}},
                            {"db", a.keep ? path : std::string()}};
        std::cout << j.dump(2) << std::endl;
        if (!a.keep)
            for (const char* ext : {"", "-wal", "-shm"}) std::filesystem::remove(path + ext);
        return 0;
    } catch (const moe::Error& e) {
        std::fprintf(stderr, "bench_store: %s\n", e.what());
        return e.kind() == moe::ErrorKind::input ? 2 : 1;
    }
}
