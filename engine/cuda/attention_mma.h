// Causal prefill attention on the tensor cores (BF16 mma.sync, f32 accumulation), for the .cu
// files: queries q [T, nh, hd] at positions pos0.. over keys and values [pos0 + T, nkv, hd]
// (f32 or BF16, as the KV cache holds them: KvType) -> out [T, nh, hd]. split: every operand as two BF16 parts
// (hi + lo) and three products per product, about 2⁻¹⁶ of each term (the exact activations);
// else one BF16 part (the BF16 activations). Heads of 64 or 128 with 16-byte aligned rows;
// returns false, launching nothing, for other shapes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda/attention_kernels.h"

namespace moe::cuda::launch {

bool attention_mma(const float* q, const void* k, const void* v, int64_t T, int64_t n_heads, int64_t n_kv_heads,
                   int64_t head_dim, int64_t pos0, float scale, float* out, bool split, KvType kv, cudaStream_t s);

}  // namespace moe::cuda::launch
