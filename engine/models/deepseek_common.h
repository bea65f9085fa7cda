// What the DeepSeek architectures share: binding checkpoint tensors to the CPU backend's
// weight structs with name, shape and dtype checks (FP8 weights with their block scales),
// the decoder layer's feed-forward half (dense MLP or MoE with shared experts), and the
// final norm and LM head. deepseek_moe.cpp (DeepSeekMoE) and deepseek_v2.cpp (V2, V3) add
// their attention.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/cpu/ffn.h"
#include "engine/cpu/matmul.h"
#include "engine/cpu/moe_block.h"
#include "engine/cpu/ops.h"
#include "engine/model.h"
#include "engine/model_config.h"

namespace moe::deepseek {

class WeightBinder {
public:
    WeightBinder(const TensorSource& tensors, const ModelConfig& config) : t_(tensors), c_(config) {}

    // The tensor, checked against `shape`; input errors name the file and tensor.
    const TensorView& need(const std::string& name, const std::vector<int64_t>& shape);
    // A linear weight [rows, cols]: F32/F16/BF16, or FP8 e4m3 with NAME_scale_inv (F32,
    // [ceil(rows/128), ceil(cols/128)]).
    cpu::WeightMatrix matrix(const std::string& name, int64_t rows, int64_t cols);
    std::vector<float> vector_f32(const std::string& name, int64_t n);  // norms, biases: never FP8
    const TensorView& embedding(const std::string& name, int64_t V, int64_t H);  // [V, H], never FP8
    cpu::FfnWeights ffn(const std::function<std::string(const char*)>& name, int64_t width);
    // Every tensor was bound or is `ignorable`; else an input error naming the first stray.
    void check_all_used(const std::function<bool(const std::string&)>& ignorable);

private:
    const TensorSource& t_;
    const ModelConfig& c_;
    std::set<std::string> used_;
};

// The feed-forward half of decoder layer i: a dense MLP or the MoE block.
struct FeedForward {
    bool is_moe = false;
    cpu::FfnWeights mlp;
    cpu::MoeWeights moe;
};
FeedForward bind_feed_forward(WeightBinder& b, const ModelConfig& c, int64_t layer);
// normed [T, H] -> out [T, H], reporting routing and honouring the mask of `opt`.
void feed_forward(const FeedForward& f, int64_t layer, int64_t pos0, const ForwardOptions& opt, const float* normed,
                  int64_t T, int64_t H, float* out, cpu::ThreadPool& pool, cpu::Arena& arena);

// The decoder stack and LM head over the embedded tokens x [T, H] (overwritten): per layer
// x += attention(RMSNorm(x)), x += feed_forward(RMSNorm(x)); then the final norm and head.
// `attention(layer, normed, out)` is the architecture's attention (it appends the KV cache).
struct DecoderLayerRefs {
    const std::vector<float>* attn_norm;
    const std::vector<float>* ffn_norm;
    const FeedForward* ff;
};
void decoder_forward(const ModelConfig& c, int64_t T, int64_t pos0, const ForwardOptions& opt, float* x,
                     const std::function<DecoderLayerRefs(int64_t)>& layer,
                     const std::function<void(int64_t, const float*, float*)>& attention,
                     const std::vector<float>& final_norm, const cpu::WeightMatrix& head, std::vector<float>& logits,
                     cpu::ThreadPool& pool, cpu::Arena& arena);

// The rotary tables of multi-head attention (DeepSeekMoE) for positions pos0 .. pos0+T-1:
// rope_theta, with linear scaling or dynamic NTK as configured.
cpu::RopeTables mha_rope_tables(const ModelConfig& c, int64_t pos0, int64_t T);

// Embedding rows of `ids` into x [T, H].
void embed(const TensorView& table, std::span<const int32_t> ids, int64_t H, float* x);
// Final RMSNorm and LM head over the last n_out rows of x [T, H] -> logits [n_out, V].
void lm_head(const float* x_rows, int64_t n_out, int64_t H, const std::vector<float>& norm, float eps,
             const cpu::WeightMatrix& head, int64_t V, std::vector<float>& logits, float* scratch,
             cpu::ThreadPool& pool);

}  // namespace moe::deepseek
