// moewb bench: prefill and decode speed of the engine (CPU or CUDA backend) on a model directory or on
// random weights of a config's true shapes, as JSON. Several configs and dtypes can be
// measured side by side in one run (comma-separated lists).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <random>

#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "engine/cpu/matmul.h"
#include "engine/error.h"
#include "engine/random_weights.h"
#include "engine/sampler.h"
#include "engine/scoring.h"
#ifdef MOE_HAVE_CUDA
#include "engine/cuda/device.h"
#endif

namespace moewb {

moe::DType parse_dtype_flag(const std::string& s);  // cmd_make_random.cpp

namespace {

const char* kHelp =
    "usage: moewb bench (--model DIR | --random-config config.json[,config2.json...])\n"
    "                   [--prompt-tokens 512] [--gen-tokens 128] [--threads N] [--backend cpu|cuda]\n"
    "                   [--dtype f32|bf16|f16|fp8[,...]] [--layers N] [--repeat N] [--seed S] [--observer]\n"
    "                   [--no-cuda-graphs] [--activations exact|bf16] [--score]\n\n"
    "Prefill: one forward pass over a prompt of random token ids. Decode: greedy generation\n"
    "of --gen-tokens tokens after it, one token per step with the KV cache. Prints JSON with\n"
    "prefill_tok_s, decode_tok_s (null with --gen-tokens 0), peak_rss_bytes and weight_bytes\n"
    "(best of --repeat runs).\n"
    "With several configs or dtypes, prints {\"runs\": [...]}. --observer repeats the runs\n"
    "with a routing observer attached and reports the speed ratio (1.0 = no cost; prefill's\n"
    "from prefills with and without it in turn, at least 2 of each).\n"
    "--dtype and --layers apply to --random-config (a model directory runs as it is).\n"
    "--layers N keeps the first N layers of each random config (a depth-limited model of the\n"
    "published shapes, for models too big for this machine). fp8 stores linear weights as\n"
    "FP8 e4m3 with 128x128 block scales, as DeepSeek-V3 is published. --backend cuda runs on\n"
    "GPU 0 (random weights made there, never on the host; decode steps replayed from CUDA\n"
    "graphs unless --no-cuda-graphs) and adds device, cuda_graphs, cuda_switches (the\n"
    "backend's choices the MOEWB_CUDA_* environment made, docs/engine.md), cuda_launch_counts\n"
    "(the layers the one-launch decode kernels and the routing experts' launch took, the\n"
    "experts' products on the Hopper kernel),\n"
    "device_weight_bytes, device_workspace_bytes, and the ratios to the\n"
    "hardware: decode_bandwidth_ratio (tokens/s x weight bytes a token reads / memory\n"
    "bandwidth) and prefill_peak_ratio (tokens/s x 2 x activated parameters / BF16 peak).\n"
    "--activations bf16 rounds activations to BF16 for the tensor cores (one product per\n"
    "linear layer) instead of splitting them in two (exact, the default; see docs/engine.md).\n"
    "--score times the prompt as an ablation condition runs it: in steps of 256 tokens, each\n"
    "row's NLL, top-1 and KL from a kept baseline row made where the backend makes the logits\n"
    "(scored_prefill_tok_s), against the same steps with every row of logits copied to the\n"
    "host and scored there (host_scored_prefill_tok_s); their ratio scored_prefill_speedup,\n"
    "from runs of each in turn (at least 2 of each).\n";

// Copies every routing record into buffers it keeps from run to run (cleared, not freed, before
// each timed run: the first run sizes them), as a store writer would.
class CopyingObserver : public moe::RoutingObserver {
public:
    void on_routing(const moe::RoutingBatch& b) override {
        const size_t n = static_cast<size_t>(b.n_tokens * b.k);
        experts_.insert(experts_.end(), b.experts, b.experts + n);
        weights_.insert(weights_.end(), b.gate_weights, b.gate_weights + n);
        stats_.insert(stats_.end(), b.entropy, b.entropy + b.n_tokens);
    }
    void clear() {
        experts_.clear();
        weights_.clear();
        stats_.clear();
    }

private:
    std::vector<int32_t> experts_;
    std::vector<float> weights_, stats_;
};

int64_t peak_rss_bytes() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<int64_t>(ru.ru_maxrss) * 1024;
}

// Bytes per weight of a dtype summary ("BF16", "F32", ...; mixed: the widest).
[[maybe_unused]] double dtype_bytes(const std::string& summary) {
    if (summary.find("F32") != std::string::npos) return 4;
    if (summary.find("F8") != std::string::npos && summary.find("16") == std::string::npos) return 1;
    return 2;
}

struct Timing {
    double prefill = 1e300, decode = 1e300;
};

// Seconds of the prefill of `prompt` in the fresh session `s`; the last position's logits into
// `logits`.
double time_prefill(moe::Session& s, const std::vector<int32_t>& prompt, CopyingObserver* observer,
                    std::vector<float>& logits) {
    if (observer) observer->clear();
    moe::ForwardOptions opt;
    opt.all_logits = false;
    opt.observer = observer;
    const auto t0 = std::chrono::steady_clock::now();
    s.forward(prompt, opt, logits);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double time_prefill(const moe::Model& model, const std::vector<int32_t>& prompt, CopyingObserver* observer) {
    moe::Session s(model);
    std::vector<float> logits;
    return time_prefill(s, prompt, observer, logits);
}

Timing time_runs(const moe::Model& model, const std::vector<int32_t>& prompt, int64_t n_gen, int repeat,
                 CopyingObserver* observer) {
    using clock = std::chrono::steady_clock;
    Timing best;
    std::vector<float> logits;
    for (int r = 0; r < repeat; ++r) {
        moe::Session s(model);
        best.prefill = std::min(best.prefill, time_prefill(s, prompt, observer, logits));
        moe::ForwardOptions opt;
        opt.all_logits = false;
        opt.observer = observer;
        opt.source = moe::TokenSource::generated;
        auto t1 = clock::now();
        for (int64_t g = 0; g < n_gen; ++g) {
            const int32_t one[1] = {moe::argmax(logits)};
            s.forward(one, opt, logits);
        }
        best.decode = std::min(best.decode, std::chrono::duration<double>(clock::now() - t1).count());
    }
    return best;
}

// The prompt as an ablation condition runs it: steps of kScoreChunk tokens (the ablation
// evaluator's), each row scored against the baseline's kept row — on the backend
// (forward_scored) or from logits copied to the host. Seconds of the best of `repeat` each,
// run in turn.
constexpr size_t kScoreChunk = 256;

struct ScoreTiming {
    double on_backend = 1e300, on_host = 1e300;
};

ScoreTiming time_scored(const moe::Model& model, const std::vector<int32_t>& prompt, int repeat) {
    using clock = std::chrono::steady_clock;
    const int64_t V = model.config().vocab_size;
    const auto n = static_cast<int64_t>(prompt.size());
    const std::span<const int32_t> ids(prompt);
    // Each step's rows up to the prompt's last (which predicts nothing).
    auto targets_of = [&](size_t c0, size_t cn) { return ids.subspan(c0 + 1, std::min(cn, prompt.size() - 1 - c0)); };
    // The baselines' rows, once: on the backend, and on the host.
    const auto bank = model.make_score_bank(n);
    moe::HostScoreBank host_bank(n, V);
    std::vector<moe::RowScore> rows;
    std::vector<float> logits;
    {
        moe::Session a(model), b(model);
        for (size_t c0 = 0; c0 < prompt.size(); c0 += kScoreChunk) {
            const size_t cn = std::min(kScoreChunk, prompt.size() - c0);
            moe::ScoreRequest req;
            req.targets = targets_of(c0, cn);
            req.keep = bank.get();
            req.keep_row = static_cast<int64_t>(c0);
            a.forward_scored(ids.subspan(c0, cn), {}, req, rows);
            b.forward(ids.subspan(c0, cn), {}, logits);
            req.keep = &host_bank;
            moe::score_rows_on_host(model.pool(), logits, V, req, rows);
        }
    }
    ScoreTiming best;
    for (int r = 0; r < std::max(repeat, 2); ++r)
        for (const bool on_backend : {true, false}) {
            moe::Session s(model);
            const auto t0 = clock::now();
            for (size_t c0 = 0; c0 < prompt.size(); c0 += kScoreChunk) {
                const size_t cn = std::min(kScoreChunk, prompt.size() - c0);
                moe::ScoreRequest req;
                req.targets = targets_of(c0, cn);
                req.reference_row = static_cast<int64_t>(c0);
                if (on_backend) {
                    req.reference = bank.get();
                    s.forward_scored(ids.subspan(c0, cn), {}, req, rows);
                } else {
                    req.reference = &host_bank;
                    s.forward(ids.subspan(c0, cn), {}, logits);
                    moe::score_rows_on_host(model.pool(), logits, V, req, rows);
                }
            }
            double& t = on_backend ? best.on_backend : best.on_host;
            t = std::min(t, std::chrono::duration<double>(clock::now() - t0).count());
        }
    return best;
}

nlohmann::json measure(const moe::Model& model, int64_t n_prompt, int64_t n_gen, int repeat, uint64_t seed,
                       bool with_observer, bool with_score) {
    const int64_t V = model.config().vocab_size;
    std::mt19937_64 rng(seed);
    std::vector<int32_t> prompt(static_cast<size_t>(n_prompt));
    for (auto& id : prompt) id = static_cast<int32_t>(rng() % static_cast<uint64_t>(V));
#ifdef MOE_HAVE_CUDA
    // The decode layers the one-launch kernels and the routed experts' launch took in these runs
    // (a layer captured into a CUDA graph counts once): whether a switch asking for them was used.
    const int64_t layer0 = moe::cuda::decode_layer_launches(), stream0 = moe::cuda::decode_stream_launches(),
                  routed0 = moe::cuda::routed_gate_up_launches(), wgmma0 = moe::cuda::expert_wgmma_launches(),
                  kernel0 = moe::cuda::stream_kernel_launches(), merged0 = moe::cuda::merged_attention_launches();
#endif
    const Timing t = time_runs(model, prompt, n_gen, repeat, nullptr);
    const double best_prefill = t.prefill, best_decode = t.decode;
    const auto& c = model.config();
    nlohmann::json j = {
        {"architecture", moe::architecture_name(c.arch)},
        {"dtype", model.dtype_summary()},
        {"backend", moe::backend_name(model.backend())},
        {"threads", model.threads()},
        {"kernel", model.backend() == moe::Backend::cpu ? moe::cpu::matmul_kernel_name() : "cuBLAS + own kernels"},
        {"prompt_tokens", n_prompt},
        {"gen_tokens", n_gen},
        {"prefill_seconds", best_prefill},
        {"decode_seconds", best_decode},
        {"prefill_tok_s", static_cast<double>(n_prompt) / best_prefill},
        {"decode_tok_s", n_gen > 0 ? nlohmann::json(static_cast<double>(n_gen) / best_decode) : nlohmann::json()},
        {"weight_bytes", model.tensors().weight_bytes()},
        {"layers", c.num_hidden_layers},
        {"kv_cache_bytes_per_token", c.num_hidden_layers * c.kv_cache_values_per_layer() * 4},
        {"total_params", c.total_params()},
        {"activated_params", c.activated_params()},
        {"peak_rss_bytes", peak_rss_bytes()},
    };
    if (model.backend() != moe::Backend::cpu) {
        // Device memory after the runs: weights, the KV caches still alive (none: the
        // sessions are gone) and the workspace of the largest step.
        const moe::Model::DeviceMemory m = model.device_memory();
        j["device"] = m.device;
        j["cuda_graphs"] = model.uses_cuda_graphs();
        j["device_weight_bytes"] = m.weights;
        j["device_workspace_bytes"] = m.workspace;
#ifdef MOE_HAVE_CUDA
        // What the MOEWB_CUDA_* environment chose (docs/engine.md), the KV cache's type with it.
        nlohmann::json switches = nlohmann::json::object();
        for (const auto& [name, value] : moe::cuda::backend_switches()) switches[name] = value;
        j["cuda_switches"] = switches;
        j["cuda_launch_counts"] = {{"decode_layer", moe::cuda::decode_layer_launches() - layer0},
                                   {"decode_stream", moe::cuda::decode_stream_launches() - stream0},
                                   {"stream_kernel", moe::cuda::stream_kernel_launches() - kernel0},
                                   {"routed_gate_up", moe::cuda::routed_gate_up_launches() - routed0},
                                   {"expert_wgmma", moe::cuda::expert_wgmma_launches() - wgmma0},
                                   {"merged_attention", moe::cuda::merged_attention_launches() - merged0}};
        const int64_t kv_element = switches.value("kv_cache", "f32") == "bf16" ? 2 : 4;
        j["device_kv_cache_bytes_per_token"] = c.num_hidden_layers * c.num_key_value_heads * c.head_dim * 2 * kv_element;
        // How close to the hardware: decode against the time to read the weights a token uses
        // once from device memory, prefill against the BF16 tensor-core peak (2 FLOPs per
        // activated weight per token; attention's own products not counted).
        if (const auto dev = moe::cuda::first_device()) {
            const double bytes_per_token = static_cast<double>(c.activated_params()) * dtype_bytes(model.dtype_summary());
            j["decode_weight_bytes_per_token"] = bytes_per_token;
            j["device_memory_bandwidth"] = dev->memory_bandwidth;
            if (dev->memory_bandwidth > 0 && n_gen > 0) {
                j["decode_bandwidth_limit_tok_s"] = dev->memory_bandwidth / bytes_per_token;
                j["decode_bandwidth_ratio"] = (static_cast<double>(n_gen) / best_decode) * bytes_per_token / dev->memory_bandwidth;
            }
            const double flops_per_token = 2.0 * static_cast<double>(c.activated_params());
            j["prefill_flops_per_token"] = flops_per_token;
            j["device_bf16_peak_flops"] = dev->bf16_peak_flops;
            if (dev->bf16_peak_flops > 0)
                j["prefill_peak_ratio"] = (static_cast<double>(n_prompt) / best_prefill) * flops_per_token / dev->bf16_peak_flops;
        }
#endif
    }
    if (with_observer) {
        // The same runs with a routing observer copying every record: the cost of watching.
        CopyingObserver obs;
        const Timing o = time_runs(model, prompt, n_gen, repeat, &obs);
        // Prefill again, without and with the observer in turn (no CUDA graph depends on the
        // observer there): the ratio of the best of each is not moved by a drift of the machine's
        // speed between two blocks of runs.
        double plain = 1e300, observed = 1e300;
        for (int r = 0; r < std::max(repeat, 2); ++r) {
            plain = std::min(plain, time_prefill(model, prompt, nullptr));
            observed = std::min(observed, time_prefill(model, prompt, &obs));
        }
        j["observed_prefill_tok_s"] = static_cast<double>(n_prompt) / observed;
        j["observed_decode_tok_s"] =
            n_gen > 0 ? nlohmann::json(static_cast<double>(n_gen) / o.decode) : nlohmann::json();
        j["observer_prefill_ratio"] = plain / observed;
        j["observer_decode_ratio"] = n_gen > 0 ? nlohmann::json(t.decode / o.decode) : nlohmann::json();
    }
    if (with_score) {
        const ScoreTiming st = time_scored(model, prompt, repeat);
        j["scored_prefill_tok_s"] = static_cast<double>(n_prompt) / st.on_backend;
        j["host_scored_prefill_tok_s"] = static_cast<double>(n_prompt) / st.on_host;
        j["scored_prefill_speedup"] = st.on_host / st.on_backend;
    }
    return j;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
    Args args(argc, argv,
              {"--model", "--random-config", "--prompt-tokens", "--gen-tokens", "--threads", "--dtype", "--repeat",
               "--seed", "--layers", "--backend", "--activations"},
              {"--observer", "--no-cuda-graphs", "--score"});
    if (args.help()) return print_help(kHelp);
    const int64_t n_prompt = args.get_int("--prompt-tokens", 512, 1, 1 << 20);
    const int64_t n_gen = args.get_int("--gen-tokens", 128, 0, 1 << 20);
    const int repeat = static_cast<int>(args.get_int("--repeat", 1, 1, 100));
    const uint64_t seed = static_cast<uint64_t>(args.get_int("--seed", 1, 0, INT64_MAX));
    moe::LoadOptions lo = load_options(args);
    lo.cuda_graphs = !args.has("--no-cuda-graphs");
    if (args.has("--model") == args.has("--random-config"))
        moe::throw_input_error("bench", "give exactly one of --model DIR or --random-config config.json");
    if (args.has("--score") && n_prompt < 2)
        moe::throw_input_error("--score", "needs a prompt of at least 2 tokens (--prompt-tokens), one to predict");

    if (args.has("--model"))
        for (const char* flag : {"--dtype", "--layers"})
            if (args.has(flag))
                moe::throw_input_error(flag,
                                       "applies to --random-config: a model directory runs with its checkpoint's "
                                       "weights and layers as they are");
    nlohmann::json runs = nlohmann::json::array();
    if (args.has("--model")) {
        auto model = moe::load_model(args.require("--model"), lo);
        auto j = measure(*model, n_prompt, n_gen, repeat, seed, args.has("--observer"), args.has("--score"));
        if (lo.backend != moe::Backend::cpu) j["activations"] = lo.cuda_bf16_activations ? "bf16" : "exact";
        j["model"] = args.require("--model");
        runs.push_back(j);
    } else {
        const auto configs = split_list(args.require("--random-config"), "--random-config");
        const auto dtypes = split_list(args.get_or("--dtype", "bf16"), "--dtype");
        for (const auto& d : dtypes) (void)parse_dtype_flag(d);
        const int64_t max_layers = args.get_int("--layers", 0, 1, 4096);
        for (const auto& path : configs) {
            moe::ModelConfig config = moe::load_model_config(path);
            // Depth-limited: the first N layers of the published shape (so the dense and MoE
            // layer pattern is kept), for models whose full weights do not fit in memory.
            if (max_layers > 0 && max_layers < config.num_hidden_layers) {
                config.num_hidden_layers = max_layers;
                config.num_nextn_predict_layers = 0;
            }
            for (const auto& d : dtypes) {
                auto model = moe::make_model(config, std::make_shared<moe::RandomTensors>(config, parse_dtype_flag(d), seed), lo);
                auto j = measure(*model, n_prompt, n_gen, repeat, seed, args.has("--observer"), args.has("--score"));
                if (lo.backend != moe::Backend::cpu) j["activations"] = lo.cuda_bf16_activations ? "bf16" : "exact";
                j["random_config"] = path;
                runs.push_back(j);
                std::fprintf(stderr, "%s %s: prefill %.1f tok/s, decode %.1f tok/s\n", path.c_str(), d.c_str(),
                             j["prefill_tok_s"].get<double>(),
                             j["decode_tok_s"].is_null() ? 0.0 : j["decode_tok_s"].get<double>());
            }
        }
    }
    print_json(runs.size() == 1 ? runs[0] : nlohmann::json{{"runs", runs}});
    return 0;
}

}  // namespace moewb
