// DeepSeekMoE architecture: weight binding and the forward pass; see deepseek_moe.h.
#include "engine/models/deepseek_moe.h"

#include <cmath>

#include "engine/cpu/arena.h"
#include "engine/cpu/attention.h"
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
    cpu::AttentionWeights attn;
    deepseek::FeedForward ff;
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

    const TensorView* embed_ = nullptr;  // [V, H]
    std::vector<float> final_norm_;      // [H]
    cpu::WeightMatrix lm_head_;          // [V, H]
    std::vector<Layer> layers_;
};

void DeepseekMoe::bind() {
    const ModelConfig& c = config_;
    deepseek::WeightBinder b(*tensors_, c);
    const int64_t H = c.hidden_size, V = c.vocab_size, hd = c.head_dim;
    embed_ = &b.embedding(names::embed, V, H);
    final_norm_ = b.vector_f32(names::final_norm, H);
    lm_head_ = c.tie_word_embeddings ? cpu::WeightMatrix::of(*embed_) : b.matrix(names::lm_head, V, H);
    layers_.resize(static_cast<size_t>(c.num_hidden_layers));
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        Layer& L = layers_[static_cast<size_t>(i)];
        L.attn_norm = b.vector_f32(names::attn_norm(i), H);
        L.ffn_norm = b.vector_f32(names::ffn_norm(i), H);
        L.attn.n_heads = c.num_attention_heads;
        L.attn.n_kv_heads = c.num_key_value_heads;
        L.attn.head_dim = hd;
        L.attn.q = b.matrix(names::attn(i, "q_proj"), c.num_attention_heads * hd, H);
        L.attn.k = b.matrix(names::attn(i, "k_proj"), c.num_key_value_heads * hd, H);
        L.attn.v = b.matrix(names::attn(i, "v_proj"), c.num_key_value_heads * hd, H);
        L.attn.o = b.matrix(names::attn(i, "o_proj"), H, c.num_attention_heads * hd);
        L.ff = deepseek::bind_feed_forward(b, c, i);
    }
    b.check_all_used([](const std::string&) { return false; });
}

void DeepseekMoe::forward(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
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

    const cpu::RopeTables rope = deepseek::mha_rope_tables(c, pos0, T);

    deepseek::decoder_forward(
        c, T, pos0, opt, x,
        [this](int64_t i) {
            const Layer& L = layers_[static_cast<size_t>(i)];
            return deepseek::DecoderLayerRefs{&L.attn_norm, &L.ffn_norm, &L.ff};
        },
        [&](int64_t i, const float* normed, float* out) {
            cpu::attention_forward(layers_[static_cast<size_t>(i)].attn, normed, T, H, cache, i, rope, out, pool, arena);
        },
        final_norm_, lm_head_, logits, pool, arena);
    cache.set_length(pos0 + T);
}

}  // namespace

std::unique_ptr<Model> make_deepseek_moe(const ModelConfig& config, std::shared_ptr<TensorSource> tensors,
                                         const LoadOptions& opt) {
    return std::make_unique<DeepseekMoe>(config, std::move(tensors), opt);
}

}  // namespace moe
