// Device helpers of the row-wise kernels (ops_kernels.cu, expert_kernels.cu, decode_kernels.cu):
// weights widened to f32 as read, a warp's dot product of a weight row with an f32 vector, the
// RMSNorm scale of a row, and the SiLU-gated product rounded as the CPU rounds it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include <string>

#include "engine/error.h"
#include "engine/tensor.h"

namespace moe::cuda::launch {

__device__ inline float widen(float v) { return v; }
__device__ inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ inline float widen(__half v) { return __half2float(v); }

// Four consecutive values widened to f32: 16 bytes of f32 or 8 of BF16 (aligned so).
__device__ inline float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ inline float4 load4(const __nv_bfloat16* p) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    const __nv_bfloat162 a = *reinterpret_cast<const __nv_bfloat162*>(&u.x), b = *reinterpret_cast<const __nv_bfloat162*>(&u.y);
    return make_float4(__low2float(a), __high2float(a), __low2float(b), __high2float(b));
}

__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Σ of 16 bytes of weights times their inputs x [kVec / 4], in order.
template <typename W>
__device__ inline float dot_vec_of(const uint4& raw, const float4* x) {
    constexpr int kVec = 16 / sizeof(W);
    const W* v = reinterpret_cast<const W*>(&raw);
    float s = 0;
#pragma unroll
    for (int j = 0; j < kVec / 4; ++j) {
        s += widen(v[4 * j]) * x[j].x;
        s += widen(v[4 * j + 1]) * x[j].y;
        s += widen(v[4 * j + 2]) * x[j].z;
        s += widen(v[4 * j + 3]) * x[j].w;
    }
    return s;
}

template <typename W>
__device__ inline float dot_vec(const uint4& raw, const float* xs) {
    constexpr int kVec = 16 / sizeof(W);
    const float4* x4 = reinterpret_cast<const float4*>(xs);  // 16-byte aligned: see warp_dot
    float4 x[kVec / 4];
#pragma unroll
    for (int j = 0; j < kVec / 4; ++j) x[j] = x4[j];
    return dot_vec_of<W>(raw, x);
}

// A warp's dot products of weight rows with an f32 vector xs, Σ_i row[i] · xs[i] over n
// elements: each lane reads 16 bytes per chunk (32 lanes: a chunk of 32·16 bytes of the row),
// up to kChunks chunks per lane in flight before their products, so that enough bytes are
// under way to keep memory busy; rows of n a multiple of the vector width start 16-byte
// aligned (others are read element by element). A row's first chunks can be fetched ahead
// (RowChunks::fetch), before what the products need from earlier kernels is there.
constexpr int kChunks = 8;

// The first N chunks of one lane's share of a row, whatever the weights' type (N a multiple
// of 4: the sums are the same, bit for bit, for every such N).
template <int N = kChunks>
struct RowChunks {
    static_assert(N % 4 == 0, "chunks in groups of four");
    uint4 r[N];
};

// The decode product kernels' shape (MOEWB_CUDA_DECODE_BLOCKS, launch::decode_blocks): compiled
// for MINB blocks of kNormThreads per multiprocessor (2: 128 registers; 3: 80, with half the
// chunks in flight per lane, so that no register is spilled), two launched per multiprocessor.
template <int MINB>
constexpr int kDecodeChunks = MINB >= 3 ? kChunks / 2 : kChunks;

// STREAM: the weights' loads ask L1 not to keep them and L2 for whole 256-byte sectors
// (MOEWB_CUDA_WEIGHT_LOADS=stream, launch::stream_weight_loads), so that what a kernel keeps
// in L1 besides (an input read from global memory) is not pushed out by the stream.
template <typename W, bool STREAM = false>
struct Chunking {
    static constexpr int kVec = 16 / sizeof(W);
    static constexpr int64_t kStep = 32 * kVec;  // elements per chunk
    __device__ static bool vectorised(int64_t n) { return n % kVec == 0; }
    __device__ static uint4 load(const W* p) {
        if constexpr (STREAM) {
            uint4 v;
            asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                         : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                         : "l"(p));
            return v;
        } else {
            return __ldg(reinterpret_cast<const uint4*>(p));
        }
    }
};

template <bool STREAM = false, typename W, int N>
__device__ inline void fetch_row(RowChunks<N>& c, const W* row, int64_t n, int lane) {
    using K = Chunking<W, STREAM>;
    if (!K::vectorised(n)) return;
#pragma unroll
    for (int j = 0; j < N; ++j) {
        const int64_t i = j * K::kStep + lane * K::kVec;
        if (i < n) c.r[j] = K::load(row + i);
    }
}

// The warp's sum over the row, its first chunks as fetch_row left them (c then holds later
// chunks of the row).
template <bool STREAM = false, typename W, int N>
__device__ inline float dot_row(RowChunks<N>& c, const W* row, const float* xs, int64_t n, int lane) {
    using K = Chunking<W, STREAM>;
    float s[4] = {0, 0, 0, 0};
    if (!K::vectorised(n)) {
        for (int64_t i = lane; i < n; i += 32) s[0] += widen(row[i]) * xs[i];
        return warp_sum(s[0]);
    }
    for (int64_t base = 0; base < n; base += N * K::kStep) {
        if (base > 0) {
#pragma unroll
            for (int j = 0; j < N; ++j) {
                const int64_t i = base + j * K::kStep + lane * K::kVec;
                if (i < n) c.r[j] = K::load(row + i);
            }
        }
#pragma unroll
        for (int j = 0; j < N; ++j) {
            const int64_t i = base + j * K::kStep + lane * K::kVec;
            if (i < n) s[j % 4] += dot_vec<W>(c.r[j], xs + i);
        }
    }
    return warp_sum((s[0] + s[1]) + (s[2] + s[3]));
}

template <typename W>
__device__ inline float warp_dot(const W* row, const float* xs, int64_t n, int lane) {
    RowChunks<> c;
    fetch_row(c, row, n, lane);
    return dot_row(c, row, xs, n, lane);
}

// Programmatic dependent launch (launch::launch_after): a kernel so launched may start while the
// kernel before it still runs, and waits here before it touches anything that kernel writes
// (or anything it reads that this kernel writes). Devices before compute capability 9.0 start
// it only after the kernel before, and this is a no-op.
__device__ inline void wait_for_previous() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    cudaGridDependencySynchronize();
#endif
}

// Lets the kernel after this one, when it was launched with launch_after, start once every
// block of this one has called this (rather than once they have all ended), so that its blocks
// take the multiprocessors as this kernel's blocks leave them and fetch their first weights
// while this kernel's last blocks run; it waits for this kernel in wait_for_previous() all
// the same. A no-op unless `on` (launch::early_trigger()) and on compute capability 9.0 on.
__device__ inline void let_next_start(bool on) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (on) cudaTriggerProgrammaticLaunchCompletion();
#else
    (void)on;
#endif
}

// The rotary embedding (halves layout) of one head v [2·half] in place, by the threads of a
// block: v·cos + rotate_half(v)·sin with cos, sin [half], no fused multiply-add (the CPU's).
__device__ inline void rope_head(float* v, const float* c, const float* s, int64_t half) {
    for (int64_t j = threadIdx.x; j < half; j += blockDim.x) {
        const float x1 = v[j], x2 = v[j + half];
        v[j] = __fsub_rn(__fmul_rn(x1, c[j]), __fmul_rn(x2, s[j]));
        v[j + half] = __fadd_rn(__fmul_rn(x2, c[j]), __fmul_rn(x1, s[j]));
    }
}

// v stored at index i: as it is (L = float), or as launch::round_split's parts (L = BF16 or
// F16): hi[i] its rounding to nearest even and, unless lo is null, lo[i] the rounding of what
// that left out.
template <typename L>
__device__ inline void store_parts_at(float v, L* hi, L* lo, int64_t i) {
    if constexpr (std::is_same_v<L, float>) {
        hi[i] = v;
    } else if constexpr (std::is_same_v<L, __half>) {
        const __half h = __float2half_rn(v);
        hi[i] = h;
        if (lo) lo[i] = __float2half_rn(v - __half2float(h));
    } else {
        const __nv_bfloat16 h = __float2bfloat16_rn(v);
        hi[i] = h;
        if (lo) lo[i] = __float2bfloat16_rn(v - __bfloat162float(h));
    }
}

// f(L{}) with L the 16-bit type of activations rounded for `type`'s weights (BF16 or F16);
// for other types a moe::Error naming `what`.
template <typename F>
void on_sixteen_bit(DType type, const char* what, F&& f) {
    if (type == DType::bf16)
        f(__nv_bfloat16{});
    else if (type == DType::f16)
        f(__half{});
    else
        throw Error(ErrorKind::failure, std::string(what) + " rounded to " + dtype_name(type) + ": not a 16-bit type");
}

// silu(g) · u with the CPU's roundings (no fused multiply-add).
__device__ inline float silu_mul_rn(float g, float u) { return __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u); }

// RMSNorm's 1 / sqrt(mean(x²) + eps) of the row xs [n] (shared or global memory), by all
// threads of a block of kNormThreads: the sum of squares in double, as the CPU — each warp's
// share summed with shuffles, the warps' sums added in order by every thread after a barrier,
// and a second before the shared sums may be written again (a kernel may call it twice).
constexpr int kNormThreads = 256;
__device__ inline float block_rms_scale(const float* xs, int64_t n, float eps) {
    __shared__ double warp_sums[kNormThreads / 32];
    double ss = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += static_cast<double>(xs[i]) * xs[i];
    for (int o = 16; o > 0; o /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = ss;
    __syncthreads();
    double total = 0;
    for (int w = 0; w < kNormThreads / 32; ++w) total += warp_sums[w];
    __syncthreads();
    return static_cast<float>(1.0 / sqrt(total / static_cast<double>(n) + eps));
}

// A row of `bytes` bytes asked into L2 by a warp (one 128-byte line per lane per step): no
// register waits for it, so that what the warp loads next is not queued behind it.
__device__ inline void prefetch_l2(const void* row, int64_t bytes, int lane) {
    const char* p = static_cast<const char*>(row);
    for (int64_t off = static_cast<int64_t>(lane) * 128; off < bytes; off += 32 * 128)
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p + off));
}

// The GPU's global timer (ns): the one-launch decode kernels' stage stamps.
__device__ inline unsigned long long global_ns() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// y = (x · scale) · w, as the CPU rounds it.
__device__ inline float rms_apply(float x, float scale, float w) { return __fmul_rn(__fmul_rn(x, scale), w); }

}  // namespace moe::cuda::launch
