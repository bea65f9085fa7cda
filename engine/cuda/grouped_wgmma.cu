// The routed experts' products of a step of many tokens in one launch on Hopper's warpgroup
// products (wgmma) fed by its tensor memory accelerator (TMA); see grouped_wgmma.h. Compiled for
// compute 9.0a alone (the "a" features: wgmma, setmaxnreg), into the backend beside its other
// kernels.
//
// Tiles of kBM = 128 rows of one expert by kBN = 256 output features; a block a
// multiprocessor, each taking tiles in turn (the output tiles of a row tile one after another,
// so that the blocks running together share x's rows and an expert's matrix in L2), three
// warpgroups. The first is the producer: one of its threads asks the TMA for each tile of
// kBK = 64 along K (128 bytes a row) of x's rows (both parts where x has two) and of W's rows,
// into a ring of kStages stages (four; three with x's two parts), in the 128-byte swizzled
// K-major layout the warpgroup products read (engine/wgmma_layout.h), each stage's arrival
// counted in bytes by its "full" barrier. The other two are the consumers, 64 rows of the tile
// each: each waits for a stage's full barrier, issues its four products of 16 columns (eight
// with x's lo part: hi, then lo, into the same accumulators), leaves them in flight, and once
// the products of the stage before are done (wgmma.wait_group 1) hands that stage back to the
// producer through its "empty" barrier; a tile's outputs go from the registers to y while the
// producer fills the ring with the next tile's. The producer gives its registers to the
// consumers (setmaxnreg): 128 accumulators a thread.
// Rows of x past the expert's are the next expert's (or zeros past the last): their products
// are computed and not written. Measured on an H200 against other shapes (prefill's rate, as a
// fraction of the default's): with x's two parts, tiles of 128 outputs in four stages 0.98,
// these 0.99–1.00; an expert's last 64 rows or fewer as a half tile (both consumers on its
// rows, half the outputs each) 0.95 against 0.99 with whole tiles.
#include "engine/cuda/grouped_wgmma.h"

#include <cuda.h>  // CUtensorMap and its encoder's types (the driver's entry point is found at run time)
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "engine/cuda/grouped_tiles.cuh"
#include "engine/cuda/mbarrier.cuh"
#include "engine/cuda/mma.cuh"
#include "engine/moe_dispatch.h"
#include "engine/wgmma_layout.h"

namespace moe::cuda::launch {

namespace {

constexpr int kBM = 128, kBN = 256, kBK = 64, kThreads = 384;
constexpr int kMaxExperts = kGroupedMaxExperts;
static_assert(sizeof(CUtensorMap) == kExpertMapBytes, "a tensor map is 128 bytes");

using namespace tc;
namespace wl = wgmma_layout;

// A stage of the ring: x's tile (one part or two) and W's; each consumer warpgroup 64 rows and
// all kBN outputs.
template <bool SPLIT>
struct Shape {
    static constexpr int kParts = SPLIT ? 2 : 1;
    static constexpr uint32_t kATile = kBM * kBK * 2;  // bytes of one part of x's tile
    static constexpr uint32_t kBTile = kBN * kBK * 2;  // bytes of W's tile
    static constexpr uint32_t kStage = kParts * kATile + kBTile;
    static constexpr int kStages = SPLIT ? 3 : 4;  // what shared memory holds (64 and 48 KB a stage)
    static constexpr size_t kBytes = static_cast<size_t>(kStages) * kStage + 1024;  // + room to align to 1,024
};

// Box (c0 along K, c1 along rows) of the tensor map into shared memory at dst, its bytes
// counted on barrier bar.
__device__ inline void tma_load(uint32_t dst, const void* map, uint32_t bar, int c0, int c1) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];\n" ::
            "r"(dst),
        "l"(map), "r"(bar), "r"(c0), "r"(c1)
        : "memory");
}
template <int R>
__device__ inline void set_registers() {
    if constexpr (R < 128)
        asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(R));
    else
        asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(R));
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
#undef MOE_WG_D64
#undef MOE_WG_D32
#undef MOE_WG_D8
#undef MOE_WG_NAMES_64_127
#undef MOE_WG_NAMES_32_63
#undef MOE_WG_NAMES_0_31

template <bool SPLIT>
__global__ void __launch_bounds__(kThreads, 1)
    expert_wgmma_kernel(const __grid_constant__ CUtensorMap x_hi, const __grid_constant__ CUtensorMap x_lo,
                        const CUtensorMap* w_maps, int64_t K, int64_t N, const int64_t* offsets, int n_expert, float* y,
                        int64_t ldy) {
    using S = Shape<SPLIT>;
    constexpr int kStages = S::kStages;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    __shared__ __align__(8) uint64_t barriers[2 * kStages];  // full, then empty
    // The ring at the first 1,024-byte boundary: the swizzle follows the address bits.
    const uint32_t ring = (smem_addr(smem_raw) + 1023u) & ~1023u;
    const uint32_t full0 = smem_addr(barriers), empty0 = full0 + 8u * kStages;

    const TileTable table = tile_table(offsets, n_expert, kBM);
    const int64_t n_col = (N + kBN - 1) / kBN, n_tiles = table.count() * n_col;
    if (static_cast<int64_t>(blockIdx.x) >= n_tiles) return;
    const int n_k = static_cast<int>(K / kBK);
    if (threadIdx.x == 0) {
        for (int s = 0; s < kStages; ++s) {
            mbar::init(full0 + 8u * s, 1);   // the producer's arrival, and the copies' bytes
            mbar::init(empty0 + 8u * s, 8);  // each consumer warp's
        }
        mbar::init_fence();
    }
    __syncthreads();

    // The block's tiles: blockIdx.x, then every gridDim.x-th after it, the output tiles of a row
    // tile one after another. `it` counts the K tiles of all of them: stage it % kStages, in
    // its round it / kStages.
    const int wg = static_cast<int>(threadIdx.x) / 128;
    if (wg == 0) {
        set_registers<40>();
        if (threadIdx.x == 0) {
            uint32_t it = 0;
            for (int64_t t = blockIdx.x; t < n_tiles; t += gridDim.x) {
                const dispatch::Tile tl = table.at(t / n_col);
                const CUtensorMap* w = w_maps + tl.expert;
                const int r0 = static_cast<int>(tl.row0), n0 = static_cast<int>((t % n_col) * kBN);
                for (int kt = 0; kt < n_k; ++kt, ++it) {
                    const uint32_t s = it % kStages;
                    // Round 0 finds the stage free; round j waits for the consumers' j-th release.
                    mbar::wait(empty0 + 8u * s, ((it / kStages) & 1u) ^ 1u);
                    const uint32_t full = full0 + 8u * s, stage = ring + s * S::kStage;
                    mbar::arrive_expect(full, S::kStage);
                    tma_load(stage, &x_hi, full, kt * kBK, r0);
                    if constexpr (SPLIT) tma_load(stage + S::kATile, &x_lo, full, kt * kBK, r0);
                    tma_load(stage + S::kParts * S::kATile, w, full, kt * kBK, n0);
                }
            }
        }
        return;
    }
    set_registers<232>();
    const int cw = wg - 1;  // the consumer's rows of a tile: 64 · cw on
    const int warp = (static_cast<int>(threadIdx.x) / 32) % 4, lane = static_cast<int>(threadIdx.x) % 32;
    float acc[kBN / 2];
    uint32_t it = 0;
    for (int64_t t = blockIdx.x; t < n_tiles; t += gridDim.x) {
#pragma unroll
        for (int i = 0; i < kBN / 2; ++i) acc[i] = 0.f;
        fence_accumulators(acc);
        for (int kt = 0; kt < n_k; ++kt, ++it) {
            const uint32_t s = it % kStages;
            mbar::wait(full0 + 8u * s, (it / kStages) & 1u);
            const uint32_t stage = ring + s * S::kStage;
            const uint32_t b = stage + S::kParts * S::kATile;
            const uint32_t a_hi = stage + static_cast<uint32_t>(64 * cw) * 128u;
            wgmma_fence();
#pragma unroll
            for (uint32_t kk = 0; kk < kBK / 16; ++kk) {
                const uint64_t db = wl::descriptor(b + 32u * kk);
                wgmma_n256(acc, wl::descriptor(a_hi + 32u * kk), db);
                if constexpr (SPLIT) wgmma_n256(acc, wl::descriptor(a_hi + S::kATile + 32u * kk), db);
            }
            wgmma_commit();
            wgmma_wait<1>();  // the products of the K tile before are done (this one's may still run)
            if (kt > 0 && lane == 0) mbar::arrive(empty0 + 8u * ((it - 1) % kStages));
        }
        wgmma_wait<0>();
        fence_accumulators(acc);
        if (lane == 0) mbar::arrive(empty0 + 8u * ((it - 1) % kStages));  // the tile's last stage
        // The outputs, while the producer fills the ring with the next tile's.
        const dispatch::Tile tl = table.at(t / n_col);
        const int64_t r0 = tl.row0, rows = tl.rows, n0 = (t % n_col) * kBN;
#pragma unroll
        for (int i = 0; i < kBN / 2; i += 2) {
            const wl::Cell cell = wl::accumulator_cell(warp, lane, i);
            const int64_t r = 64 * cw + cell.row, col = n0 + cell.col;
            if (r >= rows) continue;
            float* yr = y + (r0 + r) * ldy;
            if (col + 1 < N)
                *reinterpret_cast<float2*>(yr + col) = make_float2(acc[i], acc[i + 1]);
            else if (col < N)
                yr[col] = acc[i];
        }
    }
}

// Blocks the device keeps resident at once (one a multiprocessor): the kernel's grid.
int resident_blocks() {
    static const int n = [] {
        int device = 0, sms = 0;
        return cudaGetDevice(&device) == cudaSuccess &&
                       cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) == cudaSuccess && sms > 0
                   ? sms
                   : 132;
    }();
    return n;
}

template <bool SPLIT>
cudaError_t launch_wgmma(const CUtensorMap& hi, const CUtensorMap& lo, int64_t K, const void* w_maps, int64_t N,
                         const int64_t* offsets, int n_expert, int64_t row_tiles, float* y, int64_t ldy,
                         cudaStream_t s) {
    using S = Shape<SPLIT>;
    static const cudaError_t raised = cudaFuncSetAttribute(
        expert_wgmma_kernel<SPLIT>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(S::kBytes));
    if (raised != cudaSuccess) return raised;
    const int64_t tiles = (N + kBN - 1) / kBN * row_tiles;
    const auto grid = static_cast<unsigned>(tiles < resident_blocks() ? tiles : resident_blocks());
    expert_wgmma_kernel<SPLIT><<<grid, kThreads, S::kBytes, s>>>(hi, lo, static_cast<const CUtensorMap*>(w_maps), K, N,
                                                                 offsets, n_expert, y, ldy);
    return cudaGetLastError();
}

// cuTensorMapEncodeTiled, from the driver the runtime loaded (null where it has none).
PFN_cuTensorMapEncodeTiled_v12000 encoder() {
    static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
        void* p = nullptr;
        cudaDriverEntryPointQueryResult found{};
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &found) !=
                cudaSuccess ||
            found != cudaDriverEntryPointSuccess)
            return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
        return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
    }();
    return fn;
}

// The map of a row-major BF16 matrix [rows, cols] at `base` handing out boxes of kBK columns by
// box_rows rows in the 128-byte swizzle, zeros past its edges.
bool encode_rows(CUtensorMap* map, const void* base, int64_t cols, int64_t rows, int box_rows) {
    const PFN_cuTensorMapEncodeTiled_v12000 encode = encoder();
    if (!encode || cols % kBK != 0 || rows <= 0 || (reinterpret_cast<uintptr_t>(base) & 15u) != 0) return false;
    const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
    const cuuint64_t strides[1] = {static_cast<cuuint64_t>(cols) * 2};
    const cuuint32_t box[2] = {static_cast<cuuint32_t>(kBK), static_cast<cuuint32_t>(box_rows)};
    const cuuint32_t steps[2] = {1, 1};
    return encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(base), dims, strides, box, steps,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace

bool expert_wgmma_fit(int64_t K, int64_t N, int64_t n_expert) {
    return K > 0 && K % kBK == 0 && N > 0 && N < (int64_t(1) << 31) && n_expert > 0 && n_expert <= kMaxExperts;
}

bool encode_expert_maps(const std::vector<const void*>& w, int64_t K, int64_t N, void* maps_host) {
    auto* out = static_cast<CUtensorMap*>(maps_host);
    for (size_t e = 0; e < w.size(); ++e)
        if (!encode_rows(out + e, w[e], K, N, kBN)) return false;  // boxes of a tile's outputs
    return true;
}

cudaError_t expert_products_wgmma(const void* hi, const void* lo, int64_t K, const void* w_maps, int64_t N,
                                  const int64_t* offsets, int64_t n_expert, int64_t row_tiles, int64_t x_rows, float* y,
                                  int64_t ldy, cudaStream_t s) {
    if (row_tiles <= 0) return cudaSuccess;
    CUtensorMap map_hi{}, map_lo{};
    if (!encode_rows(&map_hi, hi, K, x_rows, kBM) || (lo && !encode_rows(&map_lo, lo, K, x_rows, kBM)))
        return cudaErrorInvalidValue;
    const int E = static_cast<int>(n_expert);
    return lo ? launch_wgmma<true>(map_hi, map_lo, K, w_maps, N, offsets, E, row_tiles, y, ldy, s)
              : launch_wgmma<false>(map_hi, map_lo, K, w_maps, N, offsets, E, row_tiles, y, ldy, s);
}

}  // namespace moe::cuda::launch
