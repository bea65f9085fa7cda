// The routed experts' products of a step of many tokens in one launch; see launch.h
// (expert_products).
//
// Block: a tile of kBM = 128 rows of one expert (its rows are offsets[e] .. offsets[e+1]) by
// kBN = 128 output features, eight warps of 64 × 32. The rows of x and of the expert's matrix W [N, K]
// both run along K, the layout mma.sync m16n8k16 takes (A row-major, B column-major): tiles of
// kBK = 32 along K go to shared memory through cp.async in a ring of kStages, fragments come
// out with ldmatrix, products accumulate in f32 registers. Split: x as hi + lo (round_split),
// both tiles multiplied by the same fragments of W into the same accumulators.
// Grid: x the output tile (fastest, so that the blocks running together share x's rows and
// the two or three row tiles of an expert meet its matrix in L2), y the row tile, counted
// over the experts in order.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/grouped_tiles.cuh"
#include "engine/cuda/grouped_wgmma.h"
#include "engine/cuda/launch.h"
#include "engine/cuda/mma.cuh"
#include "engine/error.h"
#include "engine/moe_dispatch.h"

namespace moe::cuda::launch {

namespace {

constexpr int kBM = 128, kBN = 128, kBK = 32, kStages = 3, kThreads = 256;
constexpr int kMaxExperts = kGroupedMaxExperts;
constexpr int kLd = kBK + 8;  // BF16 per shared row: 80 bytes, conflict-free ldmatrix
constexpr int kTile = kBM * kLd;  // one part of x's tile

using namespace tc;

template <bool SPLIT>
__global__ void __launch_bounds__(kThreads) expert_gemm_kernel(const __nv_bfloat16* xhi, const __nv_bfloat16* xlo, int64_t K,
                                                               const void* const* w_table, int64_t N, const int64_t* offsets,
                                                               int n_expert, float* y, int64_t ldy) {
    constexpr int kParts = SPLIT ? 2 : 1;
    constexpr int kStage = kParts * kTile + kBN * kLd;  // x's parts, then W's tile
    constexpr int kNT = kBN / 32;                        // n8 tiles per warp
    extern __shared__ __align__(16) unsigned char smem[];
    __nv_bfloat16* ring = reinterpret_cast<__nv_bfloat16*>(smem);  // [stage][x parts..., W]

    const dispatch::Tile tl = block_tile(offsets, n_expert, kBM, blockIdx.y);
    if (tl.expert < 0) return;
    const int e = static_cast<int>(tl.expert);
    const int64_t r0 = tl.row0, rows = tl.rows;
    const auto* w = static_cast<const __nv_bfloat16*>(w_table[e]);
    const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBN;

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = (warp / 4) * 64, wn = (warp % 4) * (kBN / 4);  // the warp's 64 × 32 of the tile

    // Stage s holds K columns kt·kBK ..: 16-byte pieces, four per row of each tile.
    auto load = [&](int stage, int64_t kt) {
        __nv_bfloat16* base = ring + stage * kStage;
#pragma unroll
        for (int i = 0; i < kBM * 4 / kThreads; ++i) {
            const int idx = threadIdx.x + i * kThreads;
            const int r = idx / 4, piece = (idx % 4) * 8;
            const int64_t k = kt * kBK + piece;
            const bool row_ok = r < rows;
            const int64_t xr = row_ok ? r0 + r : r0;
            copy16(base + r * kLd + piece, xhi + xr * K + k, row_ok);
            if constexpr (SPLIT) copy16(base + kTile + r * kLd + piece, xlo + xr * K + k, row_ok);
        }
#pragma unroll
        for (int i = 0; i < kBN * 4 / kThreads; ++i) {
            const int idx = threadIdx.x + i * kThreads;
            const int r = idx / 4, piece = (idx % 4) * 8;
            const int64_t k = kt * kBK + piece;
            const bool col_ok = n0 + r < N;
            copy16(base + kParts * kTile + r * kLd + piece, w + (col_ok ? n0 + r : 0) * K + k, col_ok);
        }
    };

    float acc[4][kNT][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < kNT; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

    const int64_t n_k = K / kBK;
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < n_k) load(s, s);
        commit();
    }
    for (int64_t kt = 0; kt < n_k; ++kt) {
        wait_groups<kStages - 2>();
        __syncthreads();  // stage kt is in for every thread; stage kt - 1 is no longer read
        const int64_t next = kt + kStages - 1;
        if (next < n_k) load(static_cast<int>(next % kStages), next);
        commit();
        const __nv_bfloat16* base = ring + static_cast<int>(kt % kStages) * kStage;
        const __nv_bfloat16* wt = base + kParts * kTile;
#pragma unroll
        for (int kk = 0; kk < kBK; kk += 16) {
            uint32_t b[kNT][2];
#pragma unroll
            for (int j = 0; j < kNT / 2; ++j) {  // two n8 tiles per ldmatrix.x4
                uint32_t r[4];
                ldmatrix4(r, wt + (wn + j * 16 + (lane % 8) + (lane / 16) * 8) * kLd + kk + ((lane / 8) % 2) * 8);
                b[2 * j][0] = r[0];
                b[2 * j][1] = r[1];
                b[2 * j + 1][0] = r[2];
                b[2 * j + 1][1] = r[3];
            }
#pragma unroll
            for (int p = 0; p < kParts; ++p) {
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    uint32_t a[4];
                    ldmatrix4(a, base + p * kTile + (wm + i * 16 + (lane % 16)) * kLd + kk + (lane / 16) * 8);
#pragma unroll
                    for (int j = 0; j < kNT; ++j) mma(acc[i][j], a, b[j][0], b[j][1]);
                }
            }
        }
    }
    wait_groups<0>();

    const int g = lane / 4, c = lane % 4;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = wm + i * 16 + g + 8 * h;
            if (r >= rows) continue;
            float* yr = y + (r0 + r) * ldy;
#pragma unroll
            for (int j = 0; j < kNT; ++j) {
                const int64_t col = n0 + wn + j * 8 + 2 * c;
                if (col + 1 < N) {
                    *reinterpret_cast<float2*>(yr + col) = make_float2(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
                } else if (col < N) {
                    yr[col] = acc[i][j][2 * h];
                }
            }
        }
}

template <bool SPLIT>
size_t ring_bytes() {
    return static_cast<size_t>(kStages) * ((SPLIT ? 2 : 1) * kTile + kBN * kLd) * sizeof(__nv_bfloat16);
}

template <bool SPLIT>
void launch_grouped(const void* hi, const void* lo, int64_t K, const void* const* w_table, int64_t N, const int64_t* offsets,
                    int n_expert, int64_t row_tiles, float* y, int64_t ldy, cudaStream_t s) {
    static bool raised = false;  // per instantiation, once
    if (!raised) {
        check(cudaFuncSetAttribute(expert_gemm_kernel<SPLIT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(ring_bytes<SPLIT>())),
              "the experts' products: shared memory size");
        raised = true;
    }
    const dim3 grid(static_cast<unsigned>((N + kBN - 1) / kBN), static_cast<unsigned>(row_tiles));
    expert_gemm_kernel<SPLIT><<<grid, kThreads, ring_bytes<SPLIT>(), s>>>(
        static_cast<const __nv_bfloat16*>(hi), static_cast<const __nv_bfloat16*>(lo), K, w_table, N, offsets, n_expert, y, ldy);
    check(cudaGetLastError(), "launching the experts' products");
}

}  // namespace

bool expert_products_fit(DType type, int64_t K, int64_t N, int64_t n_expert) {
    return type == DType::bf16 && K > 0 && K % kBK == 0 && N > 0 && n_expert > 0 && n_expert <= kMaxExperts;
}

bool expert_wgmma_asked() {
    static const bool on = expert_gemm_mode() == 4 && expert_wgmma_available();
    return on;
}

int64_t expert_row_tiles(const int64_t* offsets_host, int64_t n_expert) {
    std::vector<int64_t> tiles(static_cast<size_t>(n_expert + 1));
    dispatch::expert_tiles(offsets_host, n_expert, kBM, tiles.data());
    return tiles.back();
}

int64_t max_expert_row_tiles(int64_t n_rows, int64_t n_expert) {
    return dispatch::max_expert_tiles(n_rows, n_expert, kBM);
}

std::size_t expert_maps_bytes(std::size_t n_expert) {
    return n_expert * kExpertMapBytes;
}

bool write_expert_maps(const std::vector<const void*>& w, int64_t K, int64_t N, void* maps_device) {
#ifdef MOE_HAVE_SM90A
    struct alignas(64) Map {
        unsigned char bytes[kExpertMapBytes];
    };
    std::vector<Map> maps(w.size());
    if (w.empty() || !expert_wgmma_available() || !expert_wgmma_fit(K, N, static_cast<int64_t>(w.size())) ||
        !encode_expert_maps(w, K, N, maps.data()))
        return false;
    check(cudaMemcpy(maps_device, maps.data(), expert_maps_bytes(w.size()), cudaMemcpyHostToDevice),
          "copying the experts' tensor maps");
    return true;
#else
    (void)w, (void)K, (void)N, (void)maps_device;
    return false;
#endif
}

bool expert_wgmma_available() {
#ifdef MOE_HAVE_SM90A
    static const bool on = [] {
        int device = 0, major = 0, minor = 0;
        return cudaGetDevice(&device) == cudaSuccess &&
               cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
               cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess && major == 9 &&
               minor == 0;
    }();
    return on;
#else
    return false;
#endif
}

void expert_products(const void* hi, const void* lo, int64_t K, const void* const* w_table, DType type, int64_t N,
                     const int64_t* offsets, int64_t n_expert, int64_t row_tiles, float* y, int64_t ldy, cudaStream_t s,
                     ExpertMaps maps) {
    if (!expert_products_fit(type, K, N, n_expert))
        throw Error(ErrorKind::failure, std::string("the experts' products in one launch take BF16 weights, K a multiple of ") +
                                            std::to_string(kBK) + " and at most " + std::to_string(kMaxExperts) + " experts; asked " +
                                            dtype_name(type) + ", K = " + std::to_string(K) + ", " + std::to_string(n_expert) +
                                            " experts");
    if (row_tiles <= 0) return;
#ifdef MOE_HAVE_SM90A
    if (maps.w && expert_wgmma_available() && expert_wgmma_fit(K, N, n_expert)) {
        check(expert_products_wgmma(hi, lo, K, maps.w, N, offsets, n_expert, row_tiles, maps.x_rows, y, ldy, s),
              "launching the experts' products (wgmma)");
        count(Counted::expert_wgmma);
        return;
    }
#else
    (void)maps;
#endif
    // 128 × 128 tiles: 128 × 256 (warps of 64 × 64) measured no faster on an H100.
    const int E = static_cast<int>(n_expert);
    if (lo) launch_grouped<true>(hi, lo, K, w_table, N, offsets, E, row_tiles, y, ldy, s);
    else launch_grouped<false>(hi, lo, K, w_table, N, offsets, E, row_tiles, y, ldy, s);
}

}  // namespace moe::cuda::launch

namespace moe::cuda {

bool expert_wgmma_available() {
    return launch::expert_wgmma_available();
}

std::vector<float> expert_products_bf16(const std::vector<float>& x, int64_t K, const std::vector<int64_t>& offsets,
                                        const std::vector<std::vector<uint16_t>>& w, int64_t N, bool split,
                                        bool wgmma) {
    const auto E = static_cast<int64_t>(w.size());
    if (static_cast<int64_t>(offsets.size()) != E + 1 || offsets.front() != 0 ||
        static_cast<int64_t>(x.size()) != offsets.back() * K)
        throw Error(ErrorKind::input, "expert_products_bf16: x must be [offsets.back(), K] with offsets [E + 1] from 0");
    for (const auto& m : w)
        if (static_cast<int64_t>(m.size()) != N * K) throw Error(ErrorKind::input, "expert_products_bf16: each W must be [N, K]");
    const int64_t rows = offsets.back();
    Buffer<float> d_x(x.size()), d_y(static_cast<size_t>(rows * N));
    Buffer<__nv_bfloat16> d_hi(x.size()), d_lo(x.size()), d_w(static_cast<size_t>(E * N * K));
    Buffer<int64_t> d_offsets(offsets.size());
    std::vector<const void*> table;
    for (int64_t e = 0; e < E; ++e) {
        check(cudaMemcpy(d_w.ptr + e * N * K, w[static_cast<size_t>(e)].data(), static_cast<size_t>(N * K) * 2,
                         cudaMemcpyHostToDevice),
              "copying weights to the device");
        table.push_back(d_w.ptr + e * N * K);
    }
    Buffer<const void*> d_table(table.size());
    Buffer<unsigned char> d_maps(wgmma ? launch::expert_maps_bytes(table.size()) : 0);
    if (wgmma && !launch::write_expert_maps(table, K, N, d_maps.ptr))
        throw Error(ErrorKind::failure, "expert_products_bf16: no tensor maps for the wgmma kernel here");
    upload(d_x, x.data(), x.size());
    upload(d_offsets, offsets.data(), offsets.size());
    upload(d_table, table.data(), table.size());
    // Poisoned: every output row must be written.
    check(cudaMemset(d_y.ptr, 0xff, static_cast<size_t>(rows * N) * sizeof(float)), "poisoning the output");
    launch::round_split(d_x.ptr, rows * K, DType::bf16, d_hi.ptr, split ? d_lo.ptr : nullptr, nullptr);
    launch::expert_products(d_hi.ptr, split ? d_lo.ptr : nullptr, K, d_table.ptr, DType::bf16, N, d_offsets.ptr, E,
                            launch::expert_row_tiles(offsets.data(), E), d_y.ptr, N, nullptr,
                            wgmma ? launch::ExpertMaps{d_maps.ptr, rows} : launch::ExpertMaps{});
    check(cudaDeviceSynchronize(), "running the experts' products");
    std::vector<float> y;
    download(y, d_y, static_cast<size_t>(rows * N));
    return y;
}

}  // namespace moe::cuda
