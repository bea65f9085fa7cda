// The routed experts' products of a step of many tokens in one launch on Hopper's warpgroup
// products (wgmma); see grouped_wgmma.h. Compiled for compute 9.0a alone (the "a" features:
// wgmma), into the backend beside its other kernels.
//
// Block: a tile of BM rows of one expert (128, as launch::expert_products's tiles, each of the
// two warpgroups 64 of them; or 64, MOEWB_CUDA_EXPERT_ROWS=64, each warpgroup all of them and
// half the outputs: less of a tile left empty by an expert's last rows, for twice the reads of
// the weights' tiles) by kBN output features (256; 128 with x's two parts). Tiles of
// kBK = 64 along K (128 bytes a row) go to shared memory through cp.async in the 128-byte
// swizzled layout the warpgroup products read (engine/wgmma_layout.h), a ring of kStages, two
// tiles ahead: at step kt the block waits for tile kt, fences it for the tensor cores' reads
// (fence.proxy.async), asks for tile kt + 2 into the stage that tile kt - 2 used (both
// warpgroups are done with it: each waited for its products of kt - 2 before the barrier), and
// issues four products of 16 columns (eight with x's lo part: hi, then lo, into the same
// accumulators), leaving them in flight while it goes on to the next tile.
#include "engine/cuda/grouped_wgmma.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda/grouped_tiles.cuh"
#include "engine/cuda/mma.cuh"
#include "engine/moe_dispatch.h"
#include "engine/wgmma_layout.h"

namespace moe::cuda::launch {

namespace {

constexpr int kBK = 64, kStages = 4, kThreads = 256;
constexpr int kMaxExperts = kGroupedMaxExperts;

using namespace tc;
namespace wl = wgmma_layout;

// Tiles of BM rows (128: each warpgroup 64 of them and all kBN outputs; 64: each warpgroup
// all 64 rows and half the outputs) by kBN outputs.
template <bool SPLIT, int BM>
struct Shape {
    static constexpr int kBN = SPLIT ? 128 : 256;
    static constexpr int kWgN = BM == 128 ? kBN : kBN / 2;  // a warpgroup's outputs (its products' N)
    static constexpr int kParts = SPLIT ? 2 : 1;
    static constexpr uint32_t kATile = BM * kBK * 2;   // bytes of one part of x's tile
    static constexpr uint32_t kBTile = kBN * kBK * 2;  // bytes of W's tile
    static constexpr uint32_t kStage = kParts * kATile + kBTile;
    static constexpr size_t kBytes = static_cast<size_t>(kStages) * kStage + 1024;  // + room to align to 1,024
};

__device__ inline void fence_async_proxy() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ inline void wgmma_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ inline void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ inline void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving reads or writes of the accumulators across the products
// that write them asynchronously.
template <int R>
__device__ inline void fence_accumulators(float (&d)[R]) {
#pragma unroll
    for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// The accumulators' operands of the warpgroup products below: their names in the instruction
// (%0 .. %127), and d[0] .. bound to them.
#define MOE_WG_NAMES_0_31                     \
    "%0, %1, %2, %3, %4, %5, %6, %7,"         \
    "%8, %9, %10, %11, %12, %13, %14, %15,"   \
    "%16, %17, %18, %19, %20, %21, %22, %23," \
    "%24, %25, %26, %27, %28, %29, %30, %31"
#define MOE_WG_NAMES_32_63                    \
    "%32, %33, %34, %35, %36, %37, %38, %39," \
    "%40, %41, %42, %43, %44, %45, %46, %47," \
    "%48, %49, %50, %51, %52, %53, %54, %55," \
    "%56, %57, %58, %59, %60, %61, %62, %63"
#define MOE_WG_NAMES_64_127                           \
    "%64, %65, %66, %67, %68, %69, %70, %71,"         \
    "%72, %73, %74, %75, %76, %77, %78, %79,"         \
    "%80, %81, %82, %83, %84, %85, %86, %87,"         \
    "%88, %89, %90, %91, %92, %93, %94, %95,"         \
    "%96, %97, %98, %99, %100, %101, %102, %103,"     \
    "%104, %105, %106, %107, %108, %109, %110, %111," \
    "%112, %113, %114, %115, %116, %117, %118, %119," \
    "%120, %121, %122, %123, %124, %125, %126, %127"
#define MOE_WG_D8(i)                                                                                            \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
        "+f"(d[i + 7])
#define MOE_WG_D32(i) MOE_WG_D8(i), MOE_WG_D8(i + 8), MOE_WG_D8(i + 16), MOE_WG_D8(i + 24)
#define MOE_WG_D64(i) MOE_WG_D32(i), MOE_WG_D32(i + 32)

// D (64 × N, f32, N/2 registers a thread) += A · Bᵀ over 16 columns of K, A and B from shared
// memory through their descriptors (both K-major, not transposed).
__device__ inline void wgmma_n256(float (&d)[128], uint64_t a, uint64_t b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" MOE_WG_NAMES_0_31 "," MOE_WG_NAMES_32_63
        "," MOE_WG_NAMES_64_127 "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
        : MOE_WG_D64(0), MOE_WG_D64(64)
        : "l"(a), "l"(b), "r"(1));
}
__device__ inline void wgmma_n128(float (&d)[64], uint64_t a, uint64_t b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" MOE_WG_NAMES_0_31 "," MOE_WG_NAMES_32_63
        "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
        : MOE_WG_D64(0)
        : "l"(a), "l"(b), "r"(1));
}
__device__ inline void wgmma_n64(float (&d)[32], uint64_t a, uint64_t b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" MOE_WG_NAMES_0_31 "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
        : MOE_WG_D32(0)
        : "l"(a), "l"(b), "r"(1));
}
#undef MOE_WG_D64
#undef MOE_WG_D32
#undef MOE_WG_D8
#undef MOE_WG_NAMES_64_127
#undef MOE_WG_NAMES_32_63
#undef MOE_WG_NAMES_0_31

template <int N>
__device__ inline void wgmma_tile(float (&d)[N / 2], uint64_t a, uint64_t b) {
    if constexpr (N == 256)
        wgmma_n256(d, a, b);
    else if constexpr (N == 128)
        wgmma_n128(d, a, b);
    else
        wgmma_n64(d, a, b);
}

template <bool SPLIT, int BM>
__global__ void __launch_bounds__(kThreads, 1)
    expert_wgmma_kernel(const __nv_bfloat16* xhi, const __nv_bfloat16* xlo, int64_t K, const void* const* w_table,
                        int64_t N, const int64_t* offsets, int n_expert, float* y, int64_t ldy) {
    using S = Shape<SPLIT, BM>;
    constexpr int kBN = S::kBN, kWgN = S::kWgN;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    // The ring at the first 1,024-byte boundary: the swizzle follows the address bits.
    const uint32_t raw = smem_addr(smem_raw);
    const uint32_t ring = (raw + 1023u) & ~1023u;
    unsigned char* ring_ptr = smem_raw + (ring - raw);

    const dispatch::Tile tl = block_tile(offsets, n_expert, BM, blockIdx.y);
    if (tl.expert < 0) return;
    const int64_t r0 = tl.row0, rows = tl.rows;
    const auto* w = static_cast<const __nv_bfloat16*>(w_table[tl.expert]);
    const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBN;

    // Tile kt of K into stage `stage`: x's rows (zeros past the expert's), W's rows (zeros past N).
    auto load = [&](int stage, int64_t kt) {
        unsigned char* base = ring_ptr + stage * S::kStage;
        const int64_t k = kt * kBK;
        for (int i = threadIdx.x; i < BM * 8; i += kThreads) {
            const int r = i / 8, piece = i % 8;
            const bool ok = r < rows;
            const int64_t at = (ok ? r0 + r : r0) * K + k + piece * 8;
            const uint32_t to = wl::swizzled_offset(static_cast<uint32_t>(r), static_cast<uint32_t>(piece));
            copy16(base + to, xhi + at, ok);
            if constexpr (SPLIT) copy16(base + S::kATile + to, xlo + at, ok);
        }
        for (int i = threadIdx.x; i < kBN * 8; i += kThreads) {
            const int r = i / 8, piece = i % 8;
            const bool ok = n0 + r < N;
            copy16(base + S::kParts * S::kATile +
                       wl::swizzled_offset(static_cast<uint32_t>(r), static_cast<uint32_t>(piece)),
                   w + (ok ? n0 + r : 0) * K + k + piece * 8, ok);
        }
    };

    float acc[kWgN / 2];
#pragma unroll
    for (int i = 0; i < kWgN / 2; ++i) acc[i] = 0.f;
    fence_accumulators(acc);

    // The warpgroup's rows of the tile (from row0) and outputs (from col0).
    const int wg = threadIdx.x / 128;
    const int row0 = BM == 128 ? 64 * wg : 0, col0 = BM == 128 ? 0 : kWgN * wg;
    const int64_t n_k = K / kBK;
    load(0, 0);
    commit();
    if (n_k > 1) load(1, 1);
    commit();
    for (int64_t kt = 0; kt < n_k; ++kt) {
        wait_groups<1>();     // this thread's copies of tile kt are in
        fence_async_proxy();  // and visible to the products' reads
        __syncthreads();      // every thread's; and tile kt - 2's products are done in both warpgroups
        if (kt + 2 < n_k) load(static_cast<int>((kt + 2) % kStages), kt + 2);
        commit();
        const uint32_t stage = ring + static_cast<uint32_t>(kt % kStages) * S::kStage;
        const uint32_t a_hi = stage + static_cast<uint32_t>(row0) * 128u;
        const uint32_t b = stage + S::kParts * S::kATile + static_cast<uint32_t>(col0) * 128u;
        wgmma_fence();
#pragma unroll
        for (uint32_t kk = 0; kk < kBK / 16; ++kk) {
            const uint64_t db = wl::descriptor(b + 32u * kk);
            wgmma_tile<kWgN>(acc, wl::descriptor(a_hi + 32u * kk), db);
            if constexpr (SPLIT) wgmma_tile<kWgN>(acc, wl::descriptor(a_hi + S::kATile + 32u * kk), db);
        }
        wgmma_commit();
        wgmma_wait<1>();  // the products of tile kt - 1 are done (kt's may still run)
    }
    wgmma_wait<0>();
    fence_accumulators(acc);

    const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
#pragma unroll
    for (int i = 0; i < kWgN / 2; i += 2) {
        const wl::Cell cell = wl::accumulator_cell(warp, lane, i);
        const int64_t r = row0 + cell.row, col = n0 + col0 + cell.col;
        if (r >= rows) continue;
        float* yr = y + (r0 + r) * ldy;
        if (col + 1 < N)
            *reinterpret_cast<float2*>(yr + col) = make_float2(acc[i], acc[i + 1]);
        else if (col < N)
            yr[col] = acc[i];
    }
}

template <bool SPLIT, int BM>
cudaError_t launch_wgmma(const void* hi, const void* lo, int64_t K, const void* const* w_table, int64_t N,
                         const int64_t* offsets, int n_expert, int64_t row_tiles, float* y, int64_t ldy,
                         cudaStream_t s) {
    using S = Shape<SPLIT, BM>;
    static const cudaError_t raised = cudaFuncSetAttribute(
        expert_wgmma_kernel<SPLIT, BM>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(S::kBytes));
    if (raised != cudaSuccess) return raised;
    const dim3 grid(static_cast<unsigned>((N + S::kBN - 1) / S::kBN), static_cast<unsigned>(row_tiles));
    expert_wgmma_kernel<SPLIT, BM><<<grid, kThreads, S::kBytes, s>>>(static_cast<const __nv_bfloat16*>(hi),
                                                                     static_cast<const __nv_bfloat16*>(lo), K, w_table,
                                                                     N, offsets, n_expert, y, ldy);
    return cudaGetLastError();
}

}  // namespace

bool expert_wgmma_fit(int64_t K, int64_t N, int64_t n_expert) {
    return K > 0 && K % kBK == 0 && N > 0 && n_expert > 0 && n_expert <= kMaxExperts;
}

cudaError_t expert_products_wgmma(const void* hi, const void* lo, int64_t K, const void* const* w_table, int64_t N,
                                  const int64_t* offsets, int64_t n_expert, int64_t row_tiles, float* y, int64_t ldy,
                                  cudaStream_t s, int tile_rows) {
    if (row_tiles <= 0) return cudaSuccess;
    if (tile_rows != 64 && tile_rows != 128) return cudaErrorInvalidValue;
    const int E = static_cast<int>(n_expert);
    if (tile_rows == 64)
        return lo ? launch_wgmma<true, 64>(hi, lo, K, w_table, N, offsets, E, row_tiles, y, ldy, s)
                  : launch_wgmma<false, 64>(hi, lo, K, w_table, N, offsets, E, row_tiles, y, ldy, s);
    return lo ? launch_wgmma<true, 128>(hi, lo, K, w_table, N, offsets, E, row_tiles, y, ldy, s)
              : launch_wgmma<false, 128>(hi, lo, K, w_table, N, offsets, E, row_tiles, y, ldy, s);
}

}  // namespace moe::cuda::launch
