// KV cache of one sequence: per layer, keys [positions, k_dim] and values
// [positions, v_dim], f32. Multi-head attention stores keys after RoPE and values
// (k_dim = v_dim = nkv·hd); MLA stores one row per position holding the normalised latent
// and the RoPE key (k_dim = kv_lora_rank + qk_rope_head_dim, v_dim = 0). Grows in chunks.
// A backend that keeps the cache elsewhere (the CUDA backend: device memory) hangs its own
// state on it; the length is kept here for every backend.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace moe {

class KvCache {
public:
    KvCache() = default;
    KvCache(int64_t n_layers, int64_t kv_dim) : KvCache(n_layers, kv_dim, kv_dim) {}
    KvCache(int64_t n_layers, int64_t k_dim, int64_t v_dim) : k_dim_(k_dim), v_dim_(v_dim), k_(n_layers), v_(n_layers) {}

    int64_t length() const { return length_; }  // positions stored
    int64_t kv_dim() const { return k_dim_; }
    int64_t v_dim() const { return v_dim_; }
    void reserve(int64_t positions);            // capacity for at least `positions`
    void set_length(int64_t n) { length_ = n; }  // after a forward step wrote rows up to n
    void clear() { length_ = 0; }
    float* keys(int64_t layer) { return k_[layer].data(); }      // [capacity, k_dim]
    float* values(int64_t layer) { return v_[layer].data(); }    // [capacity, v_dim]; null when v_dim is 0
    size_t bytes() const;  // host and backend memory held
    size_t bytes_per_position() const { return static_cast<size_t>(k_dim_ + v_dim_) * k_.size() * sizeof(float); }

    struct BackendState {
        virtual ~BackendState() = default;
        virtual size_t bytes() const = 0;
    };
    BackendState* backend_state() const { return backend_.get(); }
    void set_backend_state(std::unique_ptr<BackendState> s) { backend_ = std::move(s); }

private:
    int64_t k_dim_ = 0, v_dim_ = 0;
    int64_t length_ = 0;
    int64_t capacity_ = 0;
    std::vector<std::vector<float>> k_, v_;
    std::unique_ptr<BackendState> backend_;
};

}  // namespace moe
