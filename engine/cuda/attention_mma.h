// Causal prefill attention on the tensor cores (BF16 mma.sync, f32 accumulation), for the .cu
// files: queries q [T, nh, hd] at positions pos0.. over keys and values [pos0 + T, nkv, hd]
// (f32 or BF16, as the KV cache holds them: KvType) -> out [T, nh, hd]. split: every operand as two BF16 parts
// (hi + lo) and three products per product, about 2⁻¹⁶ of each term (the exact activations);
// else one BF16 part (the BF16 activations). Heads of 64 or 128 with 16-byte aligned rows;
// each returns false, launching nothing, for other shapes and where the kernel's shared memory
// exceeds the device's limit per block (heads of 128 with two parts on compute 8.6 and 8.9).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "engine/cuda/attention_kernels.h"

namespace moe::cuda::launch {

// Each block rounds the tiles it reads to BF16 parts as it stores them in shared memory.
bool attention_mma(const float* q, const void* k, const void* v, int64_t T, int64_t n_heads, int64_t n_kv_heads,
                   int64_t head_dim, int64_t pos0, float scale, float* out, bool split, KvType kv, cudaStream_t s);

// PrefillAttention::pipelined: the queries and (an f32 cache) the keys and values of positions
// 0 .. pos0+T-1 rounded once into `scratch` (pipelined_attention_scratch bytes; a BF16
// cache is read as it is, its keys' and values' lo parts being 0), then each block copies its
// tiles into shared memory with cp.async, the next key tile in flight while its warps work on
// this one. The same products in the same order as attention_mma (key tiles of 32 positions
// when keys and values have two parts). Returns false also without scratch. wide
// (PrefillAttention::pipelined_wide): each warp takes 32 query rows rather than 16, a block
// 128 queries, every fragment of keys and values read from shared memory going into two
// products; the same values (each row's sums in the same order).
size_t pipelined_attention_scratch(int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t pos0,
                                   bool split, KvType kv);
bool attention_pipelined(const float* q, const void* k, const void* v, int64_t T, int64_t n_heads, int64_t n_kv_heads,
                         int64_t head_dim, int64_t pos0, float scale, float* out, bool split, KvType kv, void* scratch,
                         cudaStream_t s, bool wide = false);

}  // namespace moe::cuda::launch
