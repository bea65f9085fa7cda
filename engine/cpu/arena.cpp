// Arena implementation; see arena.h.
#include "engine/cpu/arena.h"

#include <algorithm>
#include <cstdint>

namespace moe::cpu {

namespace {
constexpr size_t kAlign = 64;
constexpr size_t kMinBlock = size_t(1) << 20;
}  // namespace

void Arena::reset() {
    high_water_ = std::max(high_water_, step_bytes_);
    if (blocks_.size() > 1) {
        blocks_.clear();
        Block b;
        b.size = high_water_ + kAlign;
        b.mem.reset(new std::byte[b.size]);
        blocks_.push_back(std::move(b));
    }
    for (Block& b : blocks_) b.used = 0;
    step_bytes_ = 0;
}

void* Arena::alloc_bytes(size_t bytes) {
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    step_bytes_ += bytes;
    auto fits = [&](Block& b, uintptr_t* out) {
        const uintptr_t base = reinterpret_cast<uintptr_t>(b.mem.get());
        const uintptr_t p = (base + b.used + kAlign - 1) / kAlign * kAlign;
        if (p + bytes > base + b.size) return false;
        *out = p;
        b.used = p + bytes - base;
        return true;
    };
    uintptr_t p = 0;
    if (!blocks_.empty() && fits(blocks_.back(), &p)) return reinterpret_cast<void*>(p);
    Block b;
    b.size = std::max(kMinBlock, bytes + kAlign);
    b.mem.reset(new std::byte[b.size]);
    blocks_.push_back(std::move(b));
    fits(blocks_.back(), &p);
    return reinterpret_cast<void*>(p);
}

size_t Arena::capacity() const {
    size_t n = 0;
    for (const Block& b : blocks_) n += b.size;
    return n;
}

}  // namespace moe::cpu
