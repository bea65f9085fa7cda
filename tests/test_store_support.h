// Helpers of the routing-store suites: synthetic runs and documents with known routing, an
// independent recomputation of the aggregates from the per-token rows (plain SQL + NumPy-
// free decoding), and a check that an expression throws a moe::Error of a given kind whose
// message holds given words.
#pragma once

#include <sqlite3.h>

#include <QString>
#include <QStringList>
#include <QtTest>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <tuple>

#include <QDir>
#include <QFile>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "analysis/routing_store.h"
#include "engine/error.h"
#include "engine/model.h"
#include "engine/model_config.h"
#include "engine/random_weights.h"
#include "engine/safetensors.h"
#include "engine/tensor.h"

namespace store_test {

using namespace moe::analysis;

// "" when `fn` throws moe::Error of `kind` holding every needle; otherwise what happened.
inline QString error_problem(const std::function<void()>& fn, moe::ErrorKind kind, const QStringList& needles) {
    try {
        fn();
    } catch (const moe::Error& e) {
        const QString msg = QString::fromUtf8(e.what());
        if (e.kind() != kind) return "wrong error kind: " + msg;
        for (const QString& n : needles)
            if (!msg.contains(n)) return "message lacks '" + n + "': " + msg;
        return {};
    }
    return "no error thrown";
}

#define CHECK_ERROR(kind, statement, ...)                                                                      \
    do {                                                                                                       \
        const QString problem_ = store_test::error_problem([&] { statement; }, kind, QStringList __VA_ARGS__); \
        QVERIFY2(problem_.isEmpty(), qPrintable(problem_));                                                    \
    } while (0)

// The first column of the first row of `sql`, read with the plain SQLite API ("" when none).
inline std::string raw_text(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    sqlite3_open(path.c_str(), &db);
    sqlite3_stmt* s = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

inline ModelRecord synthetic_model(const std::vector<std::string>& vocab = {}) {
    ModelRecord m;
    m.name = "synthetic";
    m.path = "/nowhere/synthetic";
    m.architecture = "deepseek";
    m.config_json = "{}";
    m.content_hash = "fp1:test";
    m.n_layers = 4;
    m.n_routed_experts = 8;
    m.n_shared_experts = 1;
    m.num_experts_per_tok = 2;
    m.vocab_size = static_cast<int64_t>(vocab.size());
    m.vocab = vocab;
    return m;
}

struct SyntheticRun {
    int64_t run_id = 0;
    std::vector<int64_t> domain_ids;
};

// A model, a corpus with `n_domains` domains and a run over `layers` (E, k per layer).
inline SyntheticRun make_run(RoutingStore& store, const std::vector<RunLayer>& layers, int n_domains = 2,
                             bool gate_weights = true, bool entropy = true, const std::vector<std::string>& vocab = {},
                             const std::string& source = "cpu") {
    SyntheticRun r;
    RunSpec spec;
    spec.model_id = store.add_model(synthetic_model(vocab));
    const int64_t corpus = store.add_corpus({"synthetic", "/nowhere/corpus", "made up", "CC0"});
    for (int d = 0; d < n_domains; ++d)
        r.domain_ids.push_back(store.add_domain(corpus, {"domain" + std::to_string(d), "", ""}));
    spec.corpus_id = corpus;
    spec.source = source;
    if (gate_weights) spec.gate_weight_kind = moe::GateWeightKind::renormalized;
    spec.has_entropy = entropy;
    spec.layers = layers;
    spec.trace_key = "synthetic";
    r.run_id = store.create_run(spec);
    return r;
}

// Routing with known structure: token t of layer l prefers expert (t*3 + l) % E, then
// random distinct experts; weights descend; entropy depends on the token.
inline std::unique_ptr<DocumentRouting> synthetic_document(const RunInfo& run, int64_t domain_id,
                                                           const std::string& name, size_t T, uint64_t seed,
                                                           int32_t vocab_size = 50) {
    std::mt19937_64 rng(seed);
    auto doc = std::make_unique<DocumentRouting>();
    doc->domain_id = domain_id;
    doc->split = "test";
    doc->name = name;
    doc->text_hash = "hash-" + name;
    doc->n_bytes = static_cast<int64_t>(T * 4);
    for (size_t t = 0; t < T; ++t)
        doc->token_ids.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(vocab_size)));
    for (const RunLayer& rl : run.layers) {
        DocumentRouting::Layer l;
        l.layer = rl.layer;
        l.k = rl.k;
        const size_t K = static_cast<size_t>(rl.k);
        for (size_t t = 0; t < T; ++t) {
            std::vector<int32_t> chosen{
                static_cast<int32_t>((t * 3 + static_cast<size_t>(rl.layer)) % static_cast<size_t>(rl.n_expert))};
            while (chosen.size() < K) {
                const auto e = static_cast<int32_t>(rng() % static_cast<uint64_t>(rl.n_expert));
                if (std::find(chosen.begin(), chosen.end(), e) == chosen.end()) chosen.push_back(e);
            }
            float w = 0.6f + 0.3f * static_cast<float>(rng() % 1000) / 1000.0f;
            for (size_t r = 0; r < K; ++r) {
                l.experts.push_back(chosen[r]);
                if (run.has_gate_weights()) l.gate_weights.push_back(w);
                w *= 0.5f;
            }
            if (run.has_entropy) l.entropy.push_back(0.1f + static_cast<float>(t % 17) * 0.11f);
        }
        doc->layers.push_back(std::move(l));
    }
    return doc;
}

// The aggregates recomputed from the per-token rows with plain SQL and this file's own
// decoding of the packed arrays (independent of analysis/store/packing).
struct Recomputed {
    std::map<std::tuple<int64_t, int64_t, int64_t>, std::tuple<int64_t, int64_t, double>>
        cells;  // (domain, layer, expert) -> count, rank0, wsum
    std::map<std::pair<int64_t, int64_t>, std::pair<int64_t, double>> totals;  // (domain, layer) -> tokens, entropy sum
};

inline float half_to_float(uint16_t h) {
    return moe::f16_to_f32(h);
}

inline Recomputed recompute(const std::string& path, int64_t run_id) {
    Recomputed out;
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return out;
    // The run's array formats (docs/store.md): expert ids uint8 or uint16, entropy binary16 or float32.
    sqlite3_stmt* f = nullptr;
    sqlite3_prepare_v2(db, "SELECT experts_format, coalesce(entropy_format, '') FROM runs WHERE run_id = ?1", -1, &f,
                       nullptr);
    sqlite3_bind_int64(f, 1, run_id);
    std::string experts_format = "u16", entropy_format = "f32";
    if (sqlite3_step(f) == SQLITE_ROW) {
        experts_format = reinterpret_cast<const char*>(sqlite3_column_text(f, 0));
        entropy_format = reinterpret_cast<const char*>(sqlite3_column_text(f, 1));
    }
    sqlite3_finalize(f);
    const size_t id_bytes = experts_format == "u8" ? 1 : 2;
    sqlite3_stmt* s = nullptr;
    sqlite3_prepare_v2(db,
                       "SELECT d.domain_id, r.layer, r.k, r.experts, r.gate_weights, r.entropy FROM routing r "
                       "JOIN documents d ON d.doc_id = r.doc_id WHERE r.run_id = ?1",
                       -1, &s, nullptr);
    sqlite3_bind_int64(s, 1, run_id);
    while (sqlite3_step(s) == SQLITE_ROW) {
        const int64_t dom = sqlite3_column_int64(s, 0), layer = sqlite3_column_int64(s, 1),
                      k = sqlite3_column_int64(s, 2);
        const auto* ex = static_cast<const uint8_t*>(sqlite3_column_blob(s, 3));
        const size_t n = static_cast<size_t>(sqlite3_column_bytes(s, 3)) / id_bytes;
        const auto* gw = static_cast<const uint8_t*>(sqlite3_column_blob(s, 4));
        const auto* en = static_cast<const uint8_t*>(sqlite3_column_blob(s, 5));
        const size_t T = n / static_cast<size_t>(k);
        for (size_t i = 0; i < n; ++i) {
            const int64_t e = id_bytes == 1 ? ex[i] : (ex[2 * i] | (ex[2 * i + 1] << 8));
            auto& [count, rank0, wsum] = out.cells[{dom, layer, e}];
            count += 1;
            rank0 += i % static_cast<size_t>(k) == 0;
            if (gw) wsum += half_to_float(static_cast<uint16_t>(gw[2 * i] | (gw[2 * i + 1] << 8)));
        }
        auto& [tokens, esum] = out.totals[{dom, layer}];
        tokens += static_cast<int64_t>(T);
        for (size_t t = 0; en && t < T; ++t) {
            if (entropy_format == "f16") {
                esum += half_to_float(static_cast<uint16_t>(en[2 * t] | (en[2 * t + 1] << 8)));
            } else {
                float v;
                std::memcpy(&v, en + 4 * t, 4);
                esum += v;
            }
        }
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    return out;
}

// Compares the store's aggregates and totals with the recomputation; "" when equal.
inline QString aggregates_mismatch(RoutingStore& store, int64_t run_id) {
    const Recomputed rc = recompute(store.path(), run_id);
    const RunInfo run = store.run(run_id);
    size_t seen = 0;
    for (const AggregateRow& a : store.aggregates(run_id)) {
        auto it = rc.cells.find({a.domain_id, a.layer, a.expert});
        if (it == rc.cells.end())
            return QString("aggregate (%1,%2,%3) has no per-token rows").arg(a.domain_id).arg(a.layer).arg(a.expert);
        const auto& [count, rank0, wsum] = it->second;
        if (a.count != count || a.rank0_count != rank0)
            return QString("aggregate (%1,%2,%3): count %4/%5, rows say %6/%7")
                .arg(a.domain_id)
                .arg(a.layer)
                .arg(a.expert)
                .arg(a.count)
                .arg(a.rank0_count)
                .arg(count)
                .arg(rank0);
        if (run.has_gate_weights() != a.gate_weight_sum.has_value())
            return "gate_weight_sum presence differs from the run's";
        if (a.gate_weight_sum && std::abs(*a.gate_weight_sum - wsum) > 1e-9 * std::max(1.0, std::abs(wsum)))
            return QString("gate weight sum %1 vs %2").arg(*a.gate_weight_sum, 0, 'g', 17).arg(wsum, 0, 'g', 17);
        ++seen;
    }
    if (seen != rc.cells.size()) return QString("%1 aggregate rows, %2 from the rows").arg(seen).arg(rc.cells.size());
    size_t totals = 0;
    for (const DomainTotal& t : store.domain_totals(run_id)) {
        auto it = rc.totals.find({t.domain_id, t.layer});
        if (it == rc.totals.end()) {
            if (t.tokens == 0) continue;
            return "domain total without rows";
        }
        if (t.tokens != it->second.first) return QString("tokens %1 vs %2").arg(t.tokens).arg(it->second.first);
        if (run.has_entropy && std::abs(*t.entropy_sum - it->second.second) > 1e-9 * std::max(1.0, it->second.second))
            return "entropy sum differs";
        ++totals;
    }
    if (totals != rc.totals.size()) return "domain totals missing";
    // For every layer: Σ counts = tokens × k.
    for (const RunLayer& rl : run.layers) {
        int64_t sum = 0, tokens = 0;
        for (const auto& [key, v] : rc.cells)
            if (std::get<1>(key) == rl.layer) sum += std::get<0>(v);
        for (const DomainTotal& t : store.domain_totals(run_id))
            if (t.layer == rl.layer) tokens += t.tokens;
        if (sum != tokens * rl.k)
            return QString("layer %1: counts sum to %2, tokens x k = %3").arg(rl.layer).arg(sum).arg(tokens * rl.k);
    }
    return {};
}

// ---- Small models and corpora for tracing ----

// tests/fixtures/tokenizers/tiny-llm: a byte-level BPE of 958 ids (with BOS/EOS added tokens).
inline std::string tokenizer_dir() {
    return std::string(MOE_SOURCE_DIR) + "/tests/fixtures/tokenizers/tiny-llm";
}

// A DeepSeekMoE config (the f32_single fixture's) with the tokenizer's vocab size and
// `overrides` applied.
inline std::string tiny_config(const nlohmann::json& overrides = {}) {
    std::ifstream in(std::string(MOE_SOURCE_DIR) + "/tests/fixtures/f32_single/config.json");
    nlohmann::json c = nlohmann::json::parse(in);
    c["vocab_size"] = 958;
    for (const auto& [k, v] : overrides.items()) c[k] = v;
    return c.dump(1);
}

inline std::unique_ptr<moe::Model> random_model(const std::string& config_json, uint64_t seed) {
    const moe::ModelConfig cfg = moe::parse_model_config(config_json, "test config");
    moe::LoadOptions lo;
    lo.threads = 1;
    return moe::make_model(cfg, moe::make_random_tensors(cfg, moe::DType::f32, seed), lo);
}

// DIR/config.json, DIR/model.safetensors (random f32 weights) and the tiny-llm tokenizer.
inline bool write_model_dir(const QString& dir, const std::string& config_json, uint64_t seed) {
    QDir().mkpath(dir);
    const std::string d = dir.toStdString();
    { std::ofstream(d + "/config.json") << config_json; }
    const moe::ModelConfig cfg = moe::parse_model_config(config_json, "test config");
    auto tensors = moe::make_random_tensors(cfg, moe::DType::f32, seed);
    moe::save_safetensors(*tensors, d + "/model.safetensors");
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
        if (!QFile::copy(QString::fromStdString(tokenizer_dir() + "/" + f), dir + "/" + f)) return false;
    return true;
}

// Words from a fixed list, so texts tokenize into many tokens of the tiny vocabulary.
inline std::string sample_text(uint64_t seed, int words) {
    static const char* kWords[] = {"the", "quick",      "brown",  "fox",       "jumps", "over", "lazy",   "dog",
                                   "1",   "+",          "2",      "=",         "3",     "def",  "return", "(",
                                   ")",   "\"quoted\"", "comma,", "new\nline", "and",   "of",   "to",     "in",
                                   "is",  "x",          "y",      "sum",       "for",   "while"};
    std::mt19937_64 rng(seed);
    std::string s;
    for (int i = 0; i < words; ++i) {
        if (i) s += ' ';
        s += kWords[rng() % (sizeof kWords / sizeof kWords[0])];
    }
    return s;
}

// DIR/<domain>/test.jsonl for each domain with `docs` documents of `words` words each.
inline void write_corpus(const QString& dir, const std::vector<std::string>& domains, int docs, int words,
                         uint64_t seed = 1) {
    for (size_t d = 0; d < domains.size(); ++d) {
        const std::string sub = dir.toStdString() + "/" + domains[d];
        std::filesystem::create_directories(sub);
        std::ofstream out(sub + "/test.jsonl");
        for (int i = 0; i < docs; ++i) {
            nlohmann::json j = {
                {"id", domains[d] + "-" + std::to_string(i)},
                {"text", sample_text(seed * 1000 + d * 100 + static_cast<uint64_t>(i), words + (i * 7) % 13)}};
            out << j.dump() << "\n";
        }
    }
}

}  // namespace store_test
