// Scratch memory for one forward step: a bump allocator whose blocks are kept between
// steps, so a step's buffers reuse memory the process already has instead of asking the
// kernel for fresh zeroed pages each time (which cost as much as the arithmetic in a
// prefill). Allocation happens on the thread driving the forward pass; worker threads get
// slices of buffers allocated before a parallel loop.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace moe::cpu {

class Arena {
public:
    // Starts a new step: every earlier allocation is released. If the last step needed more
    // than one block, the blocks are replaced by a single one of the high-water size.
    void reset();
    // Uninitialised storage for n values of T, 64-byte aligned, valid until reset().
    template <class T>
    T* alloc(size_t n) {
        return static_cast<T*>(alloc_bytes(n * sizeof(T)));
    }
    size_t capacity() const;

private:
    struct Block {
        std::unique_ptr<std::byte[]> mem;
        size_t size = 0, used = 0;
    };
    void* alloc_bytes(size_t bytes);
    std::vector<Block> blocks_;
    size_t step_bytes_ = 0, high_water_ = 0;
};

}  // namespace moe::cpu
