// KV cache of one sequence for multi-head attention: per layer, keys and values after
// RoPE, f32, [positions, nkv·hd] each. Grows in chunks as the sequence grows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace moe {

class KvCache {
public:
    KvCache() = default;
    KvCache(int64_t n_layers, int64_t kv_dim) : kv_dim_(kv_dim), k_(n_layers), v_(n_layers) {}

    int64_t length() const { return length_; }  // positions stored
    int64_t kv_dim() const { return kv_dim_; }
    void reserve(int64_t positions);            // capacity for at least `positions`
    void set_length(int64_t n) { length_ = n; }  // after a forward step wrote rows up to n
    void clear() { length_ = 0; }
    float* keys(int64_t layer) { return k_[layer].data(); }      // [capacity, kv_dim]
    float* values(int64_t layer) { return v_[layer].data(); }    // [capacity, kv_dim]
    size_t bytes() const;

private:
    int64_t kv_dim_ = 0;
    int64_t length_ = 0;
    int64_t capacity_ = 0;
    std::vector<std::vector<float>> k_, v_;
};

}  // namespace moe
