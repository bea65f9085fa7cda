// KvCache growth; see kv_cache.h.
#include "engine/kv_cache.h"

#include <algorithm>

namespace moe {

void KvCache::reserve(int64_t positions) {
    if (positions <= capacity_) return;
    const int64_t cap = std::max<int64_t>(positions, std::max<int64_t>(256, capacity_ * 2));
    for (auto& k : k_) k.resize(static_cast<size_t>(cap * k_dim_));
    for (auto& v : v_) v.resize(static_cast<size_t>(cap * v_dim_));
    capacity_ = cap;
}

size_t KvCache::bytes() const {
    return static_cast<size_t>(capacity_ * (k_dim_ + v_dim_)) * k_.size() * sizeof(float) + (backend_ ? backend_->bytes() : 0);
}

}  // namespace moe
