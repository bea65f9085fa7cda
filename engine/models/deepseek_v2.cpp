// DeepSeek-V2 / V3 architecture: weight binding and the forward pass; see deepseek_v2.h.
#include "engine/models/deepseek_v2.h"

#include <cmath>

#include "engine/cpu/arena.h"
#include "engine/cpu/mla_attention.h"
#include "engine/cpu/ops.h"
#include "engine/cpu/thread_pool.h"
#include "engine/error.h"
#include "engine/models/deepseek_common.h"
#include "engine/models/deepseek_names.h"

namespace moe {

namespace {

namespace names = deepseek_names;

struct Layer {
    std::vector<float> attn_norm, ffn_norm;  // [H]
    cpu::MlaWeights attn;
    deepseek::FeedForward ff;
};

class DeepseekV2 : public Model {
public:
    DeepseekV2(const ModelConfig& c, std::shared_ptr<TensorSource> t, const LoadOptions& o)
        : Model(c, std::move(t), o), mla_(o.mla) {
        bind();
        rope_inv_freq_ = c.rope_scaling == RopeScaling::yarn
                             ? cpu::yarn_inv_freq(c.qk_rope_head_dim, c.rope_theta, c.rope_scaling_factor,
                                                  c.rope_original_max_position, c.yarn_beta_fast, c.yarn_beta_slow)
                             : plain_inv_freq(c.qk_rope_head_dim, c.rope_theta);
        if (c.rope_scaling == RopeScaling::yarn)
            rope_magnitude_ = static_cast<float>(yarn_mscale(c.rope_scaling_factor, c.yarn_mscale) /
                                                 yarn_mscale(c.rope_scaling_factor, c.yarn_mscale_all_dim));
    }
    void forward(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
                 std::vector<float>& logits) const override;
    KvCache make_cache() const override {
        return KvCache(config_.num_hidden_layers, config_.kv_lora_rank + config_.qk_rope_head_dim, 0);
    }

private:
    static std::vector<float> plain_inv_freq(int64_t dim, double base) {
        std::vector<float> f(static_cast<size_t>(dim / 2));
        for (int64_t j = 0; j < dim / 2; ++j)
            f[static_cast<size_t>(j)] =
                1.0f / std::pow(static_cast<float>(base), static_cast<float>(2 * j) / static_cast<float>(dim));
        return f;
    }
    void bind();

    MlaMode mla_;
    const TensorView* embed_ = nullptr;  // [V, H]
    std::vector<float> final_norm_;      // [H]
    cpu::WeightMatrix lm_head_;          // [V, H]
    std::vector<Layer> layers_;
    std::vector<float> rope_inv_freq_;   // [qk_rope_head_dim / 2]
    float rope_magnitude_ = 1.0f;
};

void DeepseekV2::bind() {
    const ModelConfig& c = config_;
    deepseek::WeightBinder b(*tensors_, c);
    const int64_t H = c.hidden_size, V = c.vocab_size, nh = c.num_attention_heads;
    const int64_t dq = c.qk_head_dim(), c_kv = c.kv_lora_rank, dr = c.qk_rope_head_dim;
    embed_ = &b.embedding(names::embed, V, H);
    final_norm_ = b.vector_f32(names::final_norm, H);
    lm_head_ = c.tie_word_embeddings ? cpu::WeightMatrix::of(*embed_) : b.matrix(names::lm_head, V, H);
    layers_.resize(static_cast<size_t>(c.num_hidden_layers));
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        Layer& L = layers_[static_cast<size_t>(i)];
        L.attn_norm = b.vector_f32(names::attn_norm(i), H);
        L.ffn_norm = b.vector_f32(names::ffn_norm(i), H);
        cpu::MlaWeights& a = L.attn;
        a.n_heads = nh;
        a.nope_dim = c.qk_nope_head_dim;
        a.rope_dim = dr;
        a.v_dim = c.v_head_dim;
        a.latent_dim = c_kv;
        a.q_lora_rank = c.q_lora_rank;
        a.softmax_scale = static_cast<float>(c.softmax_scale());
        if (c.q_lora_rank == 0) {
            a.q = b.matrix(names::attn(i, "q_proj"), nh * dq, H);
        } else {
            a.q_a = b.matrix(names::attn(i, "q_a_proj"), c.q_lora_rank, H);
            a.q_a_norm = b.vector_f32(names::attn(i, "q_a_layernorm"), c.q_lora_rank);
            a.q_b = b.matrix(names::attn(i, "q_b_proj"), nh * dq, c.q_lora_rank);
        }
        a.kv_a = b.matrix(names::attn(i, "kv_a_proj_with_mqa"), c_kv + dr, H);
        a.kv_a_norm = b.vector_f32(names::attn(i, "kv_a_layernorm"), c_kv);
        a.kv_b = b.matrix(names::attn(i, "kv_b_proj"), nh * (c.qk_nope_head_dim + c.v_head_dim), c_kv);
        a.o = b.matrix(names::attn(i, "o_proj"), H, nh * c.v_head_dim);
        L.ff = deepseek::bind_feed_forward(b, c, i);
    }
    // V3's multi-token-prediction layers follow the last layer; inference does not run them.
    const int64_t L0 = c.num_hidden_layers, L1 = L0 + c.num_nextn_predict_layers;
    b.check_all_used([L0, L1](const std::string& name) {
        const int64_t l = names::layer_index(name);
        return l >= L0 && l < L1;
    });
}

void DeepseekV2::forward(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
                         std::vector<float>& logits) const {
    const ModelConfig& c = config_;
    const int64_t T = static_cast<int64_t>(ids.size()), H = c.hidden_size;
    const int64_t pos0 = cache.length();
    std::lock_guard<std::mutex> lock(forward_mutex_);
    cpu::ThreadPool& pool = *pool_;
    cpu::Arena& arena = this->arena();
    arena.reset();
    const size_t TH = static_cast<size_t>(T * H);

    float* x = arena.alloc<float>(TH);  // [T, H] residual stream
    deepseek::embed(*embed_, ids, H, x);
    const double divisor = c.rope_scaling == RopeScaling::linear ? c.rope_scaling_factor : 1.0;
    const cpu::RopeTables rope = cpu::make_rope_tables(pos0, T, rope_inv_freq_, divisor, rope_magnitude_);
    const cpu::MlaForm form = mla_ == MlaMode::expanded   ? cpu::MlaForm::expanded
                              : mla_ == MlaMode::absorbed ? cpu::MlaForm::absorbed
                                                          : cpu::MlaForm::automatic;

    deepseek::decoder_forward(
        c, T, pos0, opt, x,
        [this](int64_t i) {
            const Layer& L = layers_[static_cast<size_t>(i)];
            return deepseek::DecoderLayerRefs{&L.attn_norm, &L.ffn_norm, &L.ff};
        },
        [&](int64_t i, const float* normed, float* out) {
            cpu::mla_forward(layers_[static_cast<size_t>(i)].attn, normed, T, H, cache, i, rope, form, out, pool, arena);
        },
        final_norm_, lm_head_, logits, pool, arena);
    cache.set_length(pos0 + T);
}

}  // namespace

std::unique_ptr<Model> make_deepseek_v2(const ModelConfig& config, std::shared_ptr<TensorSource> tensors,
                                        const LoadOptions& opt) {
    return std::make_unique<DeepseekV2>(config, std::move(tensors), opt);
}

}  // namespace moe
