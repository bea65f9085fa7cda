// DeepSeekMoE architecture: weight binding and the forward pass; see deepseek_moe.h.
#include "engine/models/deepseek_moe.h"

#include <cmath>
#include <functional>
#include <set>

#include "engine/cpu/arena.h"
#include "engine/cpu/attention.h"
#include "engine/cpu/moe_block.h"
#include "engine/cpu/ops.h"
#include "engine/cpu/thread_pool.h"
#include "engine/error.h"
#include "engine/models/deepseek_names.h"

namespace moe {

namespace {

namespace names = deepseek_names;
using cpu::WeightMatrix;

struct Layer {
    std::vector<float> attn_norm, ffn_norm;  // [H]
    cpu::AttentionWeights attn;
    bool is_moe = false;
    cpu::FfnWeights mlp;  // dense layers
    cpu::MoeWeights moe;  // MoE layers
};

class DeepseekMoe : public Model {
public:
    DeepseekMoe(const ModelConfig& c, std::shared_ptr<TensorSource> t, const LoadOptions& o)
        : Model(c, std::move(t), o) {
        bind();
    }
    void forward(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
                 std::vector<float>& logits) const override;
    KvCache make_cache() const override {
        return KvCache(config_.num_hidden_layers, config_.num_key_value_heads * config_.head_dim);
    }

private:
    void bind();
    const TensorView& need(const std::string& name, std::vector<int64_t> shape);
    WeightMatrix matrix(const std::string& name, int64_t rows, int64_t cols) {
        return WeightMatrix::of(need(name, {rows, cols}));
    }
    std::vector<float> vector_f32(const std::string& name, int64_t n) {
        const TensorView& t = need(name, {n});
        std::vector<float> v(static_cast<size_t>(n));
        tensor_to_f32(t, 0, n, v.data());
        return v;
    }
    cpu::FfnWeights ffn(const std::function<std::string(const char*)>& name, int64_t width) {
        const int64_t H = config_.hidden_size;
        return {matrix(name("gate_proj"), width, H), matrix(name("up_proj"), width, H),
                matrix(name("down_proj"), H, width)};
    }

    std::set<std::string> used_;
    const TensorView* embed_ = nullptr;  // [V, H]
    std::vector<float> final_norm_;      // [H]
    WeightMatrix lm_head_;               // [V, H]
    std::vector<Layer> layers_;
};

const TensorView& DeepseekMoe::need(const std::string& name, std::vector<int64_t> shape) {
    const TensorView* t = tensors_->find(name);
    if (!t) throw_input_error(tensors_->describe(), "tensor '" + name + "' is missing (expected shape " +
                                                       shape_to_string(shape) + ")");
    if (t->shape != shape)
        throw_input_error(tensors_->file_of(name), "tensor '" + name + "' has shape " + t->shape_str() +
                                                       ", expected " + shape_to_string(shape) + " from " +
                                                       config_.source);
    used_.insert(name);
    return *t;
}

void DeepseekMoe::bind() {
    const ModelConfig& c = config_;
    const int64_t H = c.hidden_size, V = c.vocab_size, hd = c.head_dim;
    embed_ = &need(names::embed, {V, H});
    final_norm_ = vector_f32(names::final_norm, H);
    if (c.tie_word_embeddings) lm_head_ = WeightMatrix::of(*embed_);
    else lm_head_ = matrix(names::lm_head, V, H);
    layers_.resize(static_cast<size_t>(c.num_hidden_layers));
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        Layer& L = layers_[static_cast<size_t>(i)];
        L.attn_norm = vector_f32(names::attn_norm(i), H);
        L.ffn_norm = vector_f32(names::ffn_norm(i), H);
        L.attn.n_heads = c.num_attention_heads;
        L.attn.n_kv_heads = c.num_key_value_heads;
        L.attn.head_dim = hd;
        L.attn.q = matrix(names::attn(i, "q_proj"), c.num_attention_heads * hd, H);
        L.attn.k = matrix(names::attn(i, "k_proj"), c.num_key_value_heads * hd, H);
        L.attn.v = matrix(names::attn(i, "v_proj"), c.num_key_value_heads * hd, H);
        L.attn.o = matrix(names::attn(i, "o_proj"), H, c.num_attention_heads * hd);
        L.is_moe = c.is_moe_layer(i);
        if (!L.is_moe) {
            L.mlp = ffn([&](const char* p) { return names::mlp(i, p); }, c.intermediate_size);
            continue;
        }
        cpu::MoeWeights& m = L.moe;
        m.n_expert = c.n_routed_experts;
        m.k = c.num_experts_per_tok;
        m.norm_topk_prob = c.norm_topk_prob;
        m.router = matrix(names::router(i), c.n_routed_experts, H);
        for (int64_t e = 0; e < c.n_routed_experts; ++e)
            m.experts.push_back(
                ffn([&](const char* p) { return names::expert(i, e, p); }, c.moe_intermediate_size));
        m.has_shared = c.n_shared_experts > 0;
        if (m.has_shared) m.shared = ffn([&](const char* p) { return names::shared(i, p); }, c.shared_width());
    }
    for (const std::string& name : tensors_->names()) {
        if (used_.count(name) || names::is_ignorable(name)) continue;
        if (c.tie_word_embeddings && name == names::lm_head)
            throw_input_error(tensors_->file_of(name), "tensor '" + name + "' present although " + c.source +
                                                           " says tie_word_embeddings is true");
        throw_input_error(tensors_->file_of(name), "unexpected tensor '" + name + "' (not part of model_type deepseek "
                                                   "with this config: is config.json for another model?)");
    }
}

void DeepseekMoe::forward(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
                          std::vector<float>& logits) const {
    const ModelConfig& c = config_;
    const int64_t T = static_cast<int64_t>(ids.size()), H = c.hidden_size, V = c.vocab_size;
    const int64_t pos0 = cache.length();
    std::lock_guard<std::mutex> lock(forward_mutex_);
    cpu::ThreadPool& pool = *pool_;
    cpu::Arena& arena = this->arena();
    arena.reset();
    const size_t TH = static_cast<size_t>(T * H);

    float* x = arena.alloc<float>(TH);  // [T, H] residual stream
    for (int64_t t = 0; t < T; ++t) tensor_to_f32(*embed_, ids[t] * H, H, x + t * H);

    double base = c.rope_theta, divisor = 1.0;
    if (c.rope_scaling == RopeScaling::linear) divisor = c.rope_scaling_factor;
    if (c.rope_scaling == RopeScaling::dynamic_ntk && pos0 + T > c.max_position_embeddings) {
        // Dynamic NTK as published: θ grows with the sequence length once it exceeds
        // max_position_embeddings (for all positions of the step; cached keys keep theirs).
        const double f = c.rope_scaling_factor, hd = static_cast<double>(c.head_dim);
        const double len = static_cast<double>(pos0 + T);
        base = c.rope_theta * std::pow(f * len / static_cast<double>(c.max_position_embeddings) - (f - 1), hd / (hd - 2));
    }
    const cpu::RopeTables rope = cpu::make_rope_tables(pos0, T, c.head_dim, base, divisor);

    float* normed = arena.alloc<float>(TH);  // [T, H]
    float* branch = arena.alloc<float>(TH);  // [T, H]
    const MaskMode mode = opt.mask ? opt.mask->mode() : MaskMode::reroute;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const Layer& L = layers_[static_cast<size_t>(i)];
        cpu::rms_norm(x, L.attn_norm.data(), T, H, static_cast<float>(c.rms_norm_eps), normed);
        cpu::attention_forward(L.attn, normed, T, H, cache, i, rope, branch, pool, arena);
        for (size_t j = 0; j < TH; ++j) x[j] += branch[j];
        cpu::rms_norm(x, L.ffn_norm.data(), T, H, static_cast<float>(c.rms_norm_eps), normed);
        if (L.is_moe) {
            cpu::MoeCall call;
            call.layer = i;
            call.pos0 = pos0;
            call.source = opt.source;
            call.intervention = opt.mask ? opt.mask->layer(i) : nullptr;
            call.mode = mode;
            call.observer = opt.observer;
            call.random_stream = opt.random_stream;
            cpu::moe_forward(L.moe, call, normed, T, H, branch, pool, arena);
        } else {
            cpu::run_ffn_units({{&L.mlp, normed, branch, T}}, H, pool, arena);
        }
        for (size_t j = 0; j < TH; ++j) x[j] += branch[j];
    }
    cache.set_length(pos0 + T);

    const int64_t first = opt.all_logits ? 0 : T - 1;
    const int64_t n_out = T - first;
    cpu::rms_norm(x + first * H, final_norm_.data(), n_out, H, static_cast<float>(c.rms_norm_eps),
                  normed);
    logits.resize(static_cast<size_t>(n_out * V));
    cpu::matmul(normed, n_out, H, lm_head_, logits.data(), V, pool);
}

}  // namespace

std::unique_ptr<Model> make_deepseek_moe(const ModelConfig& config, std::shared_ptr<TensorSource> tensors,
                                         const LoadOptions& opt) {
    return std::make_unique<DeepseekMoe>(config, std::move(tensors), opt);
}

}  // namespace moe
