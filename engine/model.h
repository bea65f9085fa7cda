// Model: a loaded checkpoint ready to run on a backend (the CPU backend here), and the
// forward pass's contract. One Model is shared by any number of Sessions (sequences);
// it owns the weights' mapping and the thread pool. Architecture code lives in
// engine/models/; load_model() picks it from config.json's model_type.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/expert_mask.h"
#include "engine/kv_cache.h"
#include "engine/model_config.h"
#include "engine/routing.h"
#include "engine/scoring.h"

namespace moe {

namespace cpu {
class ThreadPool;
class Arena;
}

// Which form of Multi-head Latent Attention runs (V2/V3; docs/engine.md): automatic uses
// the expanded form for a fresh prefill and the absorbed one once positions are cached.
enum class MlaMode { automatic, expanded, absorbed };

// Where the forward pass runs. The CPU backend is always built; others are registered by the
// programs linked with them (the CUDA backend: moe::cuda::register_backend()).
enum class Backend { cpu, cuda };
Backend parse_backend(const std::string& text);  // "cpu" | "cuda", else an input error
const char* backend_name(Backend b);

struct LoadOptions {
    int threads = 0;  // 0: every core the process may use
    MlaMode mla = MlaMode::automatic;
    Backend backend = Backend::cpu;
    bool cuda_graphs = true;  // CUDA backend: replay decode steps from a captured graph
    // CUDA backend, BF16/F16 weights, steps of more than a few tokens: false (default) splits
    // each activation into two BF16 parts for the tensor cores (as exact as the CPU's f32
    // activations, twice the matrix work); true rounds it to one (the usual GPU practice,
    // faster prefill, logits and near-tie routing further from the CPU's).
    bool cuda_bf16_activations = false;
};

struct ForwardOptions {
    const ExpertMask* mask = nullptr;       // null or empty: as published
    RoutingObserver* observer = nullptr;    // null: nothing reported, no routing statistics computed
    TokenSource source = TokenSource::prompt;
    bool all_logits = true;                 // false: only the last position's logits
    // Distinguishes sequences for a mask's random exclusion (skip-random): the choice for a
    // token depends on the seed, layer, this stream and the token's position.
    uint64_t random_stream = 0;
};

class Model {
public:
    virtual ~Model();
    const ModelConfig& config() const { return config_; }
    const TensorSource& tensors() const { return *tensors_; }
    cpu::ThreadPool& pool() const { return *pool_; }
    int threads() const;
    std::string dtype_summary() const;  // "BF16", "F32", or "mixed (BF16, F32)"
    virtual Backend backend() const { return Backend::cpu; }
    // What computed the numbers, as the routing store records it (a run's or a baseline's
    // source): "cpu", "cuda", or "cuda-bf16" (the CUDA backend with BF16 activations).
    virtual std::string backend_label() const { return backend_name(backend()); }
    // The device and its memory in use for weights, KV caches (those alive) and workspace;
    // empty on the CPU backend.
    struct DeviceMemory {
        std::string device;
        size_t weights = 0, kv_cache = 0, workspace = 0;
    };
    virtual DeviceMemory device_memory() const { return {}; }
    // Whether decode steps are replayed from CUDA graphs (false where they are not or could
    // not be captured).
    virtual bool uses_cuda_graphs() const { return false; }
    // Tokens a forward step takes when a long text runs through the model in steps (a trace's,
    // an ablation's or an evaluation's window): 256 on the CPU; a GPU's products fill with the
    // rows of longer steps, and its per-step costs spread over more tokens (2,048).
    virtual int64_t step_tokens() const { return 256; }

    // Runs tokens `ids` at positions [cache.length(), cache.length()+T), appends their
    // keys/values to `cache`, and writes logits [T, V] (or [1, V]) into `logits`.
    // A model runs one forward step at a time (its threads and scratch memory are
    // shared); concurrent callers are serialised.
    virtual void forward(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
                         std::vector<float>& logits) const = 0;
    virtual KvCache make_cache() const = 0;

    // Runs ids as forward does and scores the step's rows where the backend made them
    // (engine/scoring.h) rather than handing them back: scores[i] for rows [0,
    // req.targets.size()). By default the rows are made on the host as forward's logits and
    // scored there; the CUDA backend scores them on the device.
    virtual void forward_scored(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
                                const ScoreRequest& req, std::vector<RowScore>& scores) const;
    // Room for `rows` rows of log-probabilities where this backend scores (ScoreRequest::keep);
    // an error naming the sizes where the memory is short.
    virtual std::unique_ptr<ScoreBank> make_score_bank(int64_t rows) const;

protected:
    Model(ModelConfig config, std::shared_ptr<TensorSource> tensors, const LoadOptions& opt);
    ModelConfig config_;
    std::shared_ptr<TensorSource> tensors_;
    std::unique_ptr<cpu::ThreadPool> pool_;
    std::unique_ptr<cpu::Arena> arena_;  // scratch of the running forward step
    mutable std::mutex forward_mutex_;
    cpu::Arena& arena() const { return *arena_; }

private:
    mutable std::mutex score_mutex_;           // the default forward_scored's rows (its forward
    mutable std::vector<float> score_logits_;  //   step's logits, kept for the next step)
};

// Opens a Hugging Face model directory (config.json + safetensors).
std::unique_ptr<Model> load_model(const std::string& dir, const LoadOptions& opt = {});
// Builds a model from a config and tensors already at hand (random weights, tests).
std::unique_ptr<Model> make_model(const ModelConfig& config, std::shared_ptr<TensorSource> tensors,
                                  const LoadOptions& opt = {});

// A backend's model builder; register_backend makes make_model/load_model use it for `b`.
using BackendFactory = std::unique_ptr<Model> (*)(const ModelConfig& config, std::shared_ptr<TensorSource> tensors,
                                                  const LoadOptions& opt);
void register_backend(Backend b, BackendFactory factory);
bool backend_available(Backend b);  // the CPU always; another once registered

// One sequence: a KV cache and its position.
class Session {
public:
    explicit Session(const Model& model) : model_(model), cache_(model.make_cache()) {}
    // Runs ids after what the session already holds; logits as in Model::forward.
    void forward(std::span<const int32_t> ids, const ForwardOptions& opt, std::vector<float>& logits);
    // Runs ids after what the session holds, its rows scored as in Model::forward_scored.
    void forward_scored(std::span<const int32_t> ids, const ForwardOptions& opt, const ScoreRequest& req,
                        std::vector<RowScore>& scores);
    int64_t position() const { return cache_.length(); }
    void reset() { cache_.clear(); }
    const Model& model() const { return model_; }
    const KvCache& cache() const { return cache_; }

private:
    const Model& model_;
    KvCache cache_;
};

}  // namespace moe
