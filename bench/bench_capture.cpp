// bench_capture: what capture costs on our side per server response, printed as JSON. One
// SGLang-shaped response of --tokens tokens × 61 layers × top-8 (V3: 3 dense layers, 256
// experts; base64 raw int32, or --dtype uint16/uint8) is decoded, validated and converted
// into a DocumentRouting and submitted to a TraceWriter (decode_ms, target < 10 ms: the
// producer's time, which bounds capture throughput); the writer's commit of it into a fresh
// store is reported apart (commit_ms, on the writer thread, overlapping the next request).
// Usage: bench_capture [--tokens 4096] [--dtype int32] [--repeat 20] [--db FILE]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/capture_decode.h"
#include "analysis/routing_store.h"
#include "analysis/trace_writer.h"
#include "engine/error.h"
#include "engine/model_config.h"

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

const char* kV3Routing = R"({"model_type": "deepseek_v3", "vocab_size": 129280, "hidden_size": 7168,
  "intermediate_size": 18432, "moe_intermediate_size": 2048, "num_hidden_layers": 61,
  "num_attention_heads": 128, "num_key_value_heads": 128, "q_lora_rank": 1536, "kv_lora_rank": 512,
  "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128, "n_routed_experts": 256,
  "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3, "moe_layer_freq": 1,
  "norm_topk_prob": true, "scoring_func": "sigmoid", "topk_method": "noaux_tc", "n_group": 8,
  "topk_group": 4, "routed_scaling_factor": 2.5, "max_position_embeddings": 163840,
  "rms_norm_eps": 1e-06, "rope_theta": 10000})";

}  // namespace

int main(int argc, char** argv) {
    using namespace moe::analysis;
    int64_t tokens = 4096, repeat = 20;
    std::string dtype = "int32", db;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string f = argv[i];
        if (f == "--tokens") tokens = std::stoll(argv[i + 1]);
        else if (f == "--repeat") repeat = std::stoll(argv[i + 1]);
        else if (f == "--dtype") dtype = argv[i + 1];
        else if (f == "--db") db = argv[i + 1];
        else {
            std::fprintf(stderr, "bench_capture: unknown flag %s\n", f.c_str());
            return 2;
        }
    }
    try {
        const moe::ModelConfig cfg = moe::parse_model_config(kV3Routing, "V3 routing shape");
        const int64_t L = cfg.num_hidden_layers, K = cfg.num_experts_per_tok, E = cfg.n_routed_experts;
        // The response: a prompt of `tokens` tokens and one generated token → `tokens` rows.
        std::mt19937_64 rng(1);
        std::vector<int32_t> ids(static_cast<size_t>(tokens * L * K), 0);  // [tokens, L, K]
        std::vector<int32_t> perm(static_cast<size_t>(E));
        for (int64_t t = 0; t < tokens; ++t)
            for (int64_t l = 0; l < L; ++l) {
                if (!cfg.is_moe_layer(l)) continue;
                for (int64_t j = 0; j < K; ++j) {  // K distinct experts
                    int32_t e;
                    bool dup;
                    do {
                        e = static_cast<int32_t>(rng() % static_cast<uint64_t>(E));
                        dup = false;
                        for (int64_t q = 0; q < j; ++q) dup |= ids[static_cast<size_t>((t * L + l) * K + q)] == e;
                    } while (dup);
                    ids[static_cast<size_t>((t * L + l) * K + j)] = e;
                }
            }
        std::string raw;
        if (dtype == "int32") {
            raw.assign(reinterpret_cast<const char*>(ids.data()), ids.size() * 4);
        } else if (dtype == "uint16") {
            for (int32_t v : ids) raw += static_cast<char>(v & 0xFF), raw += static_cast<char>(v >> 8);
        } else if (dtype == "uint8") {
            for (int32_t v : ids) raw += static_cast<char>(v);
        } else {
            std::fprintf(stderr, "bench_capture: --dtype int32|uint16|uint8\n");
            return 2;
        }
        nlohmann::json meta = {{"prompt_tokens", tokens}, {"completion_tokens", 1}, {"cached_tokens", 0},
                               {"routed_experts", base64_encode(raw.data(), raw.size())}};
        if (dtype != "int32") meta["routed_experts_dtype"] = dtype;
        std::vector<int32_t> prompt(static_cast<size_t>(tokens));
        for (int64_t t = 0; t < tokens; ++t) prompt[static_cast<size_t>(t)] = static_cast<int32_t>(t % 1000);
        const std::string body = nlohmann::json{{"text", "x"}, {"output_ids", {7}}, {"meta_info", meta}}.dump();

        namespace fs = std::filesystem;
        const std::string path = db.empty() ? (fs::temp_directory_path() / "bench_capture.db").string() : db;
        for (const char* ext : {"", "-wal", "-shm"}) fs::remove(path + ext);
        RoutingStore store = RoutingStore::open(path);
        ModelRecord m;
        m.name = "v3-shape";
        m.path = "/nowhere/v3";
        m.architecture = "deepseek_v3";
        m.config_json = kV3Routing;
        m.content_hash = "cfg1:bench";
        m.n_layers = L;
        m.n_routed_experts = E;
        m.num_experts_per_tok = K;
        RunSpec spec;
        spec.model_id = store.add_model(m);
        const int64_t corpus = store.add_corpus({"bench", "/nowhere/bench", "", ""});
        const int64_t domain = store.add_domain(corpus, {"bench", "", ""});
        spec.corpus_id = corpus;
        spec.source = "sglang";
        spec.has_entropy = false;
        for (int64_t l = 0; l < L; ++l)
            if (cfg.is_moe_layer(l)) spec.layers.push_back({l, E, K});
        spec.trace_key = "bench";
        const int64_t run = store.create_run(spec);
        TraceWriter writer(store, run);

        std::vector<double> decode_ms, commit_ms;
        // As the capture job: the first response's layout is detected, later ones are checked
        // against it (append_routing's checks) without the detection scan.
        LayerAxis pinned = LayerAxis::auto_detect;
        for (int64_t r = 0; r < repeat; ++r) {
            const auto t0 = Clock::now();
            ParsedResponse pr = parse_engine_response(CaptureEngine::sglang, body, tokens, cfg, "bench");
            const LayerAxis axis = resolve_layer_axis(pr.routing, cfg, pinned, "bench");
            pinned = axis;
            auto doc = std::make_unique<DocumentRouting>();
            doc->domain_id = domain;
            doc->split = "test";
            doc->name = "doc-" + std::to_string(r);
            doc->text_hash = doc->name;
            for (const RunLayer& rl : spec.layers) {
                DocumentRouting::Layer l;
                l.layer = rl.layer;
                l.k = rl.k;
                doc->layers.push_back(std::move(l));
            }
            append_routing(pr.routing, cfg, axis, doc->layers, "bench");
            doc->token_ids = prompt;
            writer.submit(std::move(doc));
            decode_ms.push_back(ms_since(t0));
            const auto t1 = Clock::now();
            writer.finish();
            commit_ms.push_back(ms_since(t1));
        }
        auto median = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v[v.size() / 2];
        };
        const double dec = median(decode_ms);
        nlohmann::json out = {{"tokens", tokens},
                              {"layers", L},
                              {"top_k", K},
                              {"dtype", dtype},
                              {"response_bytes", body.size()},
                              {"decisions", tokens * static_cast<int64_t>(spec.layers.size()) * K},
                              {"decode_ms_median", dec},
                              {"decode_ms_best", *std::min_element(decode_ms.begin(), decode_ms.end())},
                              {"decode_target_ms", 10},
                              {"decode_within_target", dec < 10},
                              {"commit_ms_median", median(commit_ms)},
                              {"repeat", repeat}};
        std::cout << out.dump(1) << "\n";
        for (const char* ext : {"", "-wal", "-shm"})
            if (db.empty()) fs::remove(path + ext);
    } catch (const moe::Error& e) {
        std::fprintf(stderr, "bench_capture: %s\n", e.what());
        return 1;
    }
    return 0;
}
