// Shared-memory barriers that count bytes (mbarrier) and the bulk copies that complete them
// (cp.async.bulk, the TMA's one-dimensional form): device helpers of the kernels that stream
// operands into shared memory ahead of their use (grouped_wgmma.cu, decode_stream.cu). Compute
// capability 9.0 on; compiled for an earlier one, each is a trap. For the .cu files.
#pragma once

#include <cstdint>

namespace moe::cuda::mbar {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MOE_MBAR(body) body
#else
#define MOE_MBAR(body) __trap();
#endif

// The shared-memory address of p, as the instructions below take it.
__device__ inline uint32_t address(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ inline void init(uint32_t bar, uint32_t count) {
    MOE_MBAR(asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");)
}
// The barriers' initial state visible to the other threads and to the TMA's completions.
__device__ inline void init_fence() {
    MOE_MBAR(asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");)
}
__device__ inline void arrive(uint32_t bar) {
    MOE_MBAR(asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");)
}
// Arrives and adds `bytes` to what the barrier's phase waits for (the TMA's copies complete them).
__device__ inline void arrive_expect(uint32_t bar, uint32_t bytes) {
    MOE_MBAR(asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
                          : "memory");)
}
__device__ inline bool try_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    MOE_MBAR(asm volatile(
                 "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(bar), "r"(parity)
                 : "memory");)
    return done != 0;
}
// Waits for the phase of parity `parity` to complete. A wait of seconds means a bug, not a slow
// device: it ends the kernel with an error (a trap) rather than hang the process.
__device__ inline void wait(uint32_t bar, uint32_t parity) {
    if (try_wait(bar, parity)) return;
    const long long start = clock64();
    for (uint32_t n = 1;; ++n) {
        if (try_wait(bar, parity)) return;
        if ((n & 1023u) == 0 && clock64() - start > (20ll << 30)) __trap();
    }
}
// `bytes` (a multiple of 16, both addresses 16-byte aligned) from global memory at src into
// shared memory at dst, counted on barrier bar.
__device__ inline void bulk_copy(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
    MOE_MBAR(asm volatile(
                 "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(bar)
                 : "memory");)
}
// Orders this thread's earlier accesses to shared memory (ordinary loads and stores) before the
// asynchronous copies it asks for after: a slot that was read is written by a copy only then.
__device__ inline void fence_async_shared() {
    MOE_MBAR(asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");)
}

#undef MOE_MBAR

}  // namespace moe::cuda::mbar
