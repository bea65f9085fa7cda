// Shared pieces of the DeepSeek architectures; see deepseek_common.h.
#include "engine/models/deepseek_common.h"

#include <cmath>

#include "engine/cpu/arena.h"
#include "engine/cpu/ops.h"
#include "engine/error.h"
#include "engine/models/deepseek_names.h"

namespace moe::deepseek {

namespace names = deepseek_names;

const TensorView& WeightBinder::need(const std::string& name, const std::vector<int64_t>& shape) {
    const TensorView* t = t_.find(name);
    if (!t)
        throw_input_error(t_.describe(), "tensor '" + name + "' is missing (expected shape " + shape_to_string(shape) + ")");
    if (t->shape != shape)
        throw_input_error(t_.file_of(name), "tensor '" + name + "' has shape " + t->shape_str() + ", expected " +
                                                shape_to_string(shape) + " from " + c_.source);
    used_.insert(name);
    return *t;
}

cpu::WeightMatrix WeightBinder::matrix(const std::string& name, int64_t rows, int64_t cols) {
    const TensorView& t = need(name, {rows, cols});
    if (t.dtype != DType::f8_e4m3) return cpu::WeightMatrix::of(t);
    const std::string scale_name = name + "_scale_inv";
    constexpr int64_t B = cpu::WeightMatrix::kFp8Block;
    const std::vector<int64_t> blocks{(rows + B - 1) / B, (cols + B - 1) / B};
    const TensorView* s = t_.find(scale_name);
    if (!s)
        throw_input_error(t_.file_of(name), "FP8 tensor '" + name + "' has no block scales: tensor '" + scale_name +
                                                "' (F32 " + shape_to_string(blocks) + ") is missing");
    if (s->shape != blocks)
        throw_input_error(t_.file_of(scale_name), "tensor '" + scale_name + "' has shape " + s->shape_str() +
                                                      ", expected " + shape_to_string(blocks) + " (one scale per " +
                                                      "128x128 block of '" + name + "' " +
                                                      shape_to_string({rows, cols}) + ")");
    if (s->dtype != DType::f32)
        throw_input_error(t_.file_of(scale_name), "tensor '" + scale_name + "' is " + dtype_name(s->dtype) +
                                                      "; FP8 block scales must be F32");
    used_.insert(scale_name);
    return cpu::WeightMatrix::of_fp8(t, *s);
}

std::vector<float> WeightBinder::vector_f32(const std::string& name, int64_t n) {
    const TensorView& t = need(name, {n});
    if (t.dtype == DType::f8_e4m3)
        throw_input_error(t_.file_of(name), "tensor '" + name + "' is F8_E4M3; only linear weights are stored in FP8");
    std::vector<float> v(static_cast<size_t>(n));
    tensor_to_f32(t, 0, n, v.data());
    return v;
}

const TensorView& WeightBinder::embedding(const std::string& name, int64_t V, int64_t H) {
    const TensorView& t = need(name, {V, H});
    if (t.dtype == DType::f8_e4m3)
        throw_input_error(t_.file_of(name), "tensor '" + name + "' is F8_E4M3; embeddings are stored in BF16/F16/F32");
    return t;
}

cpu::FfnWeights WeightBinder::ffn(const std::function<std::string(const char*)>& name, int64_t width) {
    const int64_t H = c_.hidden_size;
    return {matrix(name("gate_proj"), width, H), matrix(name("up_proj"), width, H), matrix(name("down_proj"), H, width)};
}

void WeightBinder::check_all_used(const std::function<bool(const std::string&)>& ignorable) {
    for (const std::string& name : t_.names()) {
        if (used_.count(name) || names::is_ignorable(name) || ignorable(name)) continue;
        if (c_.tie_word_embeddings && name == names::lm_head)
            throw_input_error(t_.file_of(name), "tensor '" + name + "' present although " + c_.source +
                                                    " says tie_word_embeddings is true");
        throw_input_error(t_.file_of(name), "unexpected tensor '" + name + "' (not part of model_type " +
                                                c_.model_type + " with this config: is config.json for another model?)");
    }
}

FeedForward bind_feed_forward(WeightBinder& b, const ModelConfig& c, int64_t i) {
    FeedForward f;
    f.is_moe = c.is_moe_layer(i);
    if (!f.is_moe) {
        f.mlp = b.ffn([&](const char* p) { return names::mlp(i, p); }, c.intermediate_size);
        return f;
    }
    cpu::MoeWeights& m = f.moe;
    m.n_expert = c.n_routed_experts;
    m.k = c.num_experts_per_tok;
    m.norm_topk_prob = c.norm_topk_prob;
    m.scoring = c.scoring_func;
    m.method = c.topk_method;
    m.n_group = c.n_group;
    m.topk_group = c.topk_group;
    m.routed_scaling_factor = static_cast<float>(c.routed_scaling_factor);
    m.router = b.matrix(names::router(i), c.n_routed_experts, c.hidden_size);
    if (c.topk_method == TopkMethod::noaux_tc) m.bias = b.vector_f32(names::router_bias(i), c.n_routed_experts);
    for (int64_t e = 0; e < c.n_routed_experts; ++e)
        m.experts.push_back(b.ffn([&](const char* p) { return names::expert(i, e, p); }, c.moe_intermediate_size));
    m.has_shared = c.n_shared_experts > 0;
    if (m.has_shared) m.shared = b.ffn([&](const char* p) { return names::shared(i, p); }, c.shared_width());
    return f;
}

void feed_forward(const FeedForward& f, int64_t layer, int64_t pos0, const ForwardOptions& opt, const float* normed,
                  int64_t T, int64_t H, float* out, cpu::ThreadPool& pool, cpu::Arena& arena) {
    if (!f.is_moe) {
        cpu::run_ffn_units({{&f.mlp, normed, out, T}}, H, pool, arena);
        return;
    }
    cpu::MoeCall call;
    call.layer = layer;
    call.pos0 = pos0;
    call.source = opt.source;
    call.intervention = opt.mask ? opt.mask->layer(layer) : nullptr;
    call.mode = opt.mask ? opt.mask->mode() : MaskMode::reroute;
    call.observer = opt.observer;
    call.random_stream = opt.random_stream;
    cpu::moe_forward(f.moe, call, normed, T, H, out, pool, arena);
}

void decoder_forward(const ModelConfig& c, int64_t T, int64_t pos0, const ForwardOptions& opt, float* x,
                     const std::function<DecoderLayerRefs(int64_t)>& layer,
                     const std::function<void(int64_t, const float*, float*)>& attention,
                     const std::vector<float>& final_norm, const cpu::WeightMatrix& head, std::vector<float>& logits,
                     cpu::ThreadPool& pool, cpu::Arena& arena) {
    const int64_t H = c.hidden_size;
    const size_t TH = static_cast<size_t>(T * H);
    const float eps = static_cast<float>(c.rms_norm_eps);
    float* normed = arena.alloc<float>(TH);  // [T, H]
    float* branch = arena.alloc<float>(TH);  // [T, H]
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const DecoderLayerRefs L = layer(i);
        cpu::rms_norm(x, L.attn_norm->data(), T, H, eps, normed);
        attention(i, normed, branch);
        for (size_t j = 0; j < TH; ++j) x[j] += branch[j];
        cpu::rms_norm(x, L.ffn_norm->data(), T, H, eps, normed);
        feed_forward(*L.ff, i, pos0, opt, normed, T, H, branch, pool, arena);
        for (size_t j = 0; j < TH; ++j) x[j] += branch[j];
    }
    const int64_t first = opt.all_logits ? 0 : T - 1;
    lm_head(x + first * H, T - first, H, final_norm, eps, head, c.vocab_size, logits, normed, pool);
}

cpu::RopeTables mha_rope_tables(const ModelConfig& c, int64_t pos0, int64_t T) {
    double base = c.rope_theta, divisor = 1.0;
    if (c.rope_scaling == RopeScaling::linear) divisor = c.rope_scaling_factor;
    if (c.rope_scaling == RopeScaling::dynamic_ntk && pos0 + T > c.max_position_embeddings) {
        // Dynamic NTK as published: θ grows with the sequence length once it exceeds
        // max_position_embeddings (for all positions of the step; cached keys keep theirs).
        const double f = c.rope_scaling_factor, hd = static_cast<double>(c.head_dim);
        const double len = static_cast<double>(pos0 + T);
        base = c.rope_theta * std::pow(f * len / static_cast<double>(c.max_position_embeddings) - (f - 1), hd / (hd - 2));
    }
    return cpu::make_rope_tables(pos0, T, c.head_dim, base, divisor);
}

void embed(const TensorView& table, std::span<const int32_t> ids, int64_t H, float* x) {
    for (size_t t = 0; t < ids.size(); ++t) tensor_to_f32(table, ids[t] * H, H, x + static_cast<int64_t>(t) * H);
}

void lm_head(const float* x_rows, int64_t n_out, int64_t H, const std::vector<float>& norm, float eps,
             const cpu::WeightMatrix& head, int64_t V, std::vector<float>& logits, float* scratch,
             cpu::ThreadPool& pool) {
    cpu::rms_norm(x_rows, norm.data(), n_out, H, eps, scratch);
    logits.resize(static_cast<size_t>(n_out * V));
    cpu::matmul(scratch, n_out, H, head, logits.data(), V, pool);
}

}  // namespace moe::deepseek
