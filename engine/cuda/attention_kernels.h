// Causal attention on the device, f32: softmax(q·kᵀ/√hd) v for queries at positions
// pos0 .. pos0+T-1 over the cached keys and values of positions 0 .. pos0+T-1, grouped KV heads
// (head h reads KV head h / (nh / nkv)). One thread block per (query, head): the scores of
// the visible positions in shared memory, their maximum and sum reduced in the block, then
// each output dimension summed over positions — exact (no running rescale), for prefill
// (T > 1) and decode (T = 1) alike. This host interface copies in and out; the forward pass
// will call the kernel on device buffers.
#pragma once

#include <cstdint>
#include <vector>

namespace moe::cuda {

// q [T, nh, hd]; k, v [P, nkv, hd] with P ≥ pos0 + T; returns [T, nh, hd].
std::vector<float> causal_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, int64_t T, int64_t P, int64_t n_heads,
                                    int64_t n_kv_heads, int64_t head_dim, int64_t pos0);

}  // namespace moe::cuda
