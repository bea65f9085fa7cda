// Causal attention on the device, f32: softmax(q·kᵀ/√hd) v for queries at positions
// pos0 .. pos0+T-1 over the cached keys and values of positions 0 .. pos0+T-1, grouped KV heads
// (head h reads KV head h / (nh / nkv)). Prefill (T > 1): tiled, flash-style — a block per
// 64 queries and head, key and value tiles of 32 positions through shared memory, a running
// maximum and sum per query, nothing of size T² kept. Decode (T = 1): the visible positions
// split over 64 blocks per head (each its maximum, sum and partial output), then merged —
// the same launch at every position, as a CUDA graph replays it. Heads wider than 128 take
// one block per query and head with every score in shared memory. This host interface
// copies in and out; the forward pass calls launch::attention on device buffers.
#pragma once

#include <cstdint>
#include <vector>

namespace moe::cuda {

// The arithmetic of prefill attention (several queries): f32 on the CUDA cores (the tiled
// kernel above), or on the tensor cores (engine/cuda/attention_mma.h, heads of 64 or 128)
// with every operand split into two BF16 parts (split_bf16: the exact activations, about 2⁻¹⁶
// of each term) or rounded to one (bf16: the BF16 activations). Decode is f32 in every case.
enum class AttentionMath { f32, split_bf16, bf16 };

// The decode split's kernel (both f32, the same splits and merge): scalar — a warp per
// position, one float per lane per load; vector — 16-byte loads, a position's head read by
// hd / 4 lanes, eight positions per lane group in flight, the launches started while the
// kernel before runs (heads of 4 to 128 that are powers of two; others take scalar); warp —
// a warp per split (decode_attn::split_item_warp, the stream kernel's: scalar's values bit for
// bit, sixteen positions' loads in flight a warp), for an f32 cache, heads of at most 128 and
// at most 4,096 positions (others take scalar); merged — scalar's split, each head's splits
// merged by the last of its blocks to finish (its values bit for bit, no merge launch).
enum class DecodeAttention { scalar, vector, warp, merged };

// The tensor-core prefill's kernel (AttentionMath split_bf16 and bf16): tiles — each block
// rounds the query, key and value tiles it reads as it stores them (MOEWB_CUDA_ATTENTION=tensor-cores,
// to compare); pipelined (the default) — the queries, keys and values rounded once before the
// launch into scratch, each block's tiles copied asynchronously, the next key tile in flight
// while the warps work on this one (engine/cuda/attention_mma.h); pipelined_wide
// (MOEWB_CUDA_ATTENTION=wide) — the same with 32 query rows a warp, each fragment of keys and
// values read from shared memory going into two products (the same values).
enum class PrefillAttention { tiles, pipelined, pipelined_wide };

// What the KV cache holds: f32 (as the CPU's), or BF16 (MOEWB_CUDA_KV_CACHE=bf16: half the
// memory and half the bytes a decode step's attention reads; keys after RoPE rounded once to
// nearest). Every attention kernel reads either.
enum class KvType { f32, bf16 };

// The most dynamic shared memory one block may ask for on the current device (its opt-in
// limit): 227 KB on compute 9.0, 163 KB on 8.0, 99 KB on 8.6 and 8.9.
int max_shared_optin();

// q [T, nh, hd]; k, v [P, nkv, hd] with P ≥ pos0 + T; returns [T, nh, hd]. device_pos:
// pos0 read on the device with room for P positions (the decode graph's launch). kv: the keys
// and values go to the device as f32, or rounded to BF16 (what such a cache holds).
std::vector<float> causal_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, int64_t T, int64_t P, int64_t n_heads,
                                    int64_t n_kv_heads, int64_t head_dim, int64_t pos0, bool device_pos = false,
                                    AttentionMath math = AttentionMath::f32,
                                    DecodeAttention decode = DecodeAttention::scalar, KvType kv = KvType::f32,
                                    PrefillAttention prefill = PrefillAttention::tiles);

}  // namespace moe::cuda
