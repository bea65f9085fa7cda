// Model base, loading entry points and Session; see model.h.
#include "engine/model.h"

#include <map>
#include <mutex>
#include <set>

#include "engine/cpu/arena.h"
#include "engine/cpu/thread_pool.h"
#include "engine/error.h"
#include "engine/host_memory.h"
#include "engine/models/deepseek_moe.h"
#include "engine/models/deepseek_v2.h"

namespace moe {

Model::Model(ModelConfig config, std::shared_ptr<TensorSource> tensors, const LoadOptions& opt)
    : config_(std::move(config)),
      tensors_(std::move(tensors)),
      pool_(std::make_unique<cpu::ThreadPool>(opt.threads > 0 ? opt.threads : cpu::default_thread_count())),
      arena_(std::make_unique<cpu::Arena>()) {}

Model::~Model() = default;

int Model::threads() const { return pool_->size(); }

std::string Model::dtype_summary() const {
    std::set<std::string> seen;
    for (const auto& name : tensors_->names()) seen.insert(dtype_name(tensors_->info(name)->dtype));
    if (seen.size() == 1) return *seen.begin();
    std::string s = "mixed (";
    for (auto it = seen.begin(); it != seen.end(); ++it) s += (it == seen.begin() ? "" : ", ") + *it;
    return s + ")";
}

Backend parse_backend(const std::string& text) {
    if (text == "cpu") return Backend::cpu;
    if (text == "cuda") return Backend::cuda;
    throw_input_error("--backend", "'" + text + "' is not a backend (cpu, cuda)");
}

const char* backend_name(Backend b) { return b == Backend::cuda ? "cuda" : "cpu"; }

namespace {
std::mutex g_backends_mutex;
std::map<Backend, BackendFactory>& backends() {
    static std::map<Backend, BackendFactory> m;
    return m;
}
}  // namespace

void register_backend(Backend b, BackendFactory factory) {
    std::lock_guard lock(g_backends_mutex);
    backends()[b] = factory;
}

bool backend_available(Backend b) {
    if (b == Backend::cpu) return true;
    std::lock_guard lock(g_backends_mutex);
    return backends().count(b) > 0;
}

std::unique_ptr<Model> make_model(const ModelConfig& config, std::shared_ptr<TensorSource> tensors,
                                  const LoadOptions& opt) {
    if (opt.backend != Backend::cpu) {
        BackendFactory f = nullptr;
        {
            std::lock_guard lock(g_backends_mutex);
            if (auto it = backends().find(opt.backend); it != backends().end()) f = it->second;
        }
        if (!f)
            throw_input_error(std::string("backend ") + backend_name(opt.backend),
                              "this build has no CUDA backend (the CUDA toolkit was not found when it was built)");
        return f(config, std::move(tensors), opt);
    }
    // Weights the CPU model would make on the host as it reads them (random weights): refused
    // here with the numbers, rather than by the kernel's out-of-memory killer halfway through.
    if (const size_t bytes = tensors->bytes_to_make())
        require_host_memory(bytes, tensors->describe(), "the weights the CPU model makes in memory");
    switch (config.arch) {
        case Architecture::deepseek_moe: return make_deepseek_moe(config, std::move(tensors), opt);
        case Architecture::deepseek_v2:
        case Architecture::deepseek_v3: return make_deepseek_v2(config, std::move(tensors), opt);
    }
    throw_input_error(config.source, "unsupported architecture");
}

std::unique_ptr<Model> load_model(const std::string& dir, const LoadOptions& opt) {
    ModelConfig config = load_model_config(dir);
    std::shared_ptr<TensorSource> ckpt;
    try {
        ckpt = std::make_shared<Checkpoint>(dir);
    } catch (const Error& e) {
        rethrow_with_context(e, "loading weights");
    }
    try {
        return make_model(config, std::move(ckpt), opt);
    } catch (const Error& e) {
        rethrow_with_context(e, "opening the model");
    }
}

namespace {

void check_ids(std::span<const int32_t> ids, int64_t V) {
    for (size_t i = 0; i < ids.size(); ++i)
        if (ids[i] < 0 || ids[i] >= V)
            throw_input_error("token ids", "id " + std::to_string(ids[i]) + " at index " + std::to_string(i) +
                                               " is out of range (vocabulary of " + std::to_string(V) + ")");
    if (ids.empty()) throw_input_error("token ids", "empty sequence");
}

}  // namespace

void Model::forward_scored(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
                           const ScoreRequest& req, std::vector<RowScore>& scores) const {
    check_score_request(req, static_cast<int64_t>(ids.size()), config_.vocab_size);
    std::lock_guard lock(score_mutex_);
    ForwardOptions all = opt;
    all.all_logits = true;
    forward(ids, cache, all, score_logits_);
    score_rows_on_host(*pool_, score_logits_, config_.vocab_size, req, scores);
}

std::unique_ptr<ScoreBank> Model::make_score_bank(int64_t rows) const {
    require_host_memory(static_cast<uint64_t>(rows * config_.vocab_size) * sizeof(float), "backend cpu",
                        "the log-probabilities of " + std::to_string(rows) + " positions");
    return std::make_unique<HostScoreBank>(rows, config_.vocab_size);
}

void Session::forward(std::span<const int32_t> ids, const ForwardOptions& opt, std::vector<float>& logits) {
    check_ids(ids, model_.config().vocab_size);
    model_.forward(ids, cache_, opt, logits);
}

void Session::forward_scored(std::span<const int32_t> ids, const ForwardOptions& opt, const ScoreRequest& req,
                             std::vector<RowScore>& scores) {
    check_ids(ids, model_.config().vocab_size);
    model_.forward_scored(ids, cache_, opt, req, scores);
}

}  // namespace moe
