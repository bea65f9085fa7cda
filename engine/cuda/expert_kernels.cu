// Kernels of the forward pass that have no host interface of their own: the embedding gather
// and the experts of a small step (decode) as matrix-vector products that read each slot's
// expert from device memory, so that a step needs no host round trip.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "engine/cuda/device.h"
#include "engine/cuda/expert_kernels.h"
#include "engine/error.h"
#include "engine/moe_dispatch.h"

namespace moe::cuda::launch {

namespace {

__device__ inline float widen(float v) { return v; }
__device__ inline float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ inline float widen(__half v) { return __half2float(v); }

template <typename W>
__global__ void embed_kernel(const W* table, const int32_t* ids, int64_t H, float* x) {
    const int64_t t = blockIdx.x;
    const W* row = table + static_cast<int64_t>(ids[t]) * H;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) x[t * H + i] = widen(row[i]);
}

__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename W>
__device__ inline float dot_vec(const uint4& raw, const float* xs) {
    constexpr int kVec = 16 / sizeof(W);
    const W* v = reinterpret_cast<const W*>(&raw);
    float s = 0;
#pragma unroll
    for (int j = 0; j < kVec; ++j) s += widen(v[j]) * xs[j];
    return s;
}

// Σ_i row[i] · xs[i] over n elements, by the 32 lanes of a warp (16-byte loads when the row
// allows them: n a multiple of the vector width; rows start 16-byte aligned then). Four loads
// per lane are issued before their products, so that enough bytes are in flight to keep
// memory busy.
template <typename W>
__device__ float warp_dot(const W* row, const float* xs, int64_t n, int lane) {
    constexpr int kVec = 16 / sizeof(W);
    float s = 0;
    if (n % kVec == 0) {
        constexpr int64_t step = 32 * kVec;
        int64_t i = static_cast<int64_t>(lane) * kVec;
        float s1 = 0, s2 = 0, s3 = 0;
        for (; i + 3 * step < n; i += 4 * step) {
            const uint4 r0 = *reinterpret_cast<const uint4*>(row + i);
            const uint4 r1 = *reinterpret_cast<const uint4*>(row + i + step);
            const uint4 r2 = *reinterpret_cast<const uint4*>(row + i + 2 * step);
            const uint4 r3 = *reinterpret_cast<const uint4*>(row + i + 3 * step);
            s += dot_vec<W>(r0, xs + i);
            s1 += dot_vec<W>(r1, xs + i + step);
            s2 += dot_vec<W>(r2, xs + i + 2 * step);
            s3 += dot_vec<W>(r3, xs + i + 3 * step);
        }
        for (; i < n; i += step) s += dot_vec<W>(*reinterpret_cast<const uint4*>(row + i), xs + i);
        s = (s + s1) + (s2 + s3);
    } else {
        for (int64_t i = lane; i < n; i += 32) s += widen(row[i]) * xs[i];
    }
    return warp_sum(s);
}

constexpr int kWarps = 8;

// Block (row tile, slot): h[slot, f] = silu(gate_e[f]·x) · (up_e[f]·x), one warp per f.
template <typename W>
__global__ void gate_up_kernel(const float* x, int64_t H, int64_t k, const int32_t* experts, const uint8_t* dropped,
                               const void* const* gate, const void* const* up, int64_t F, float* h) {
    extern __shared__ float xs[];
    const int64_t slot = blockIdx.y;
    if (dispatch::slot_dropped(experts, dropped, slot)) return;
    const int32_t e = experts[slot];
    const float* xr = x + (slot / k) * H;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) xs[i] = xr[i];
    __syncthreads();
    const int lane = threadIdx.x % 32;
    const int64_t f = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
    if (f >= F) return;
    const float g = warp_dot(static_cast<const W*>(gate[e]) + f * H, xs, H, lane);
    const float u = warp_dot(static_cast<const W*>(up[e]) + f * H, xs, H, lane);
    if (lane == 0) h[slot * F + f] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), u);
}

// Block (row tile, slot): out[slot, i] = down_e[i]·h[slot], one warp per i.
template <typename W>
__global__ void down_kernel(const float* h, int64_t F, const int32_t* experts, const uint8_t* dropped,
                            const void* const* down, int64_t H, float* out) {
    extern __shared__ float hs[];
    const int64_t slot = blockIdx.y;
    if (dispatch::slot_dropped(experts, dropped, slot)) return;
    const int32_t e = experts[slot];
    for (int64_t i = threadIdx.x; i < F; i += blockDim.x) hs[i] = h[slot * F + i];
    __syncthreads();
    const int lane = threadIdx.x % 32;
    const int64_t i = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
    if (i >= H) return;
    const float v = warp_dot(static_cast<const W*>(down[e]) + i * F, hs, F, lane);
    if (lane == 0) out[slot * H + i] = v;
}

// Block (row tile, token): y[t, o] = W[o] · x[t], one warp per output row, x[t] in shared
// memory, f32 throughout (the weights widened as read).
template <typename W>
__global__ void gemv_kernel(const float* x, int64_t in, const W* w, int64_t out, float* y, int64_t ldy) {
    extern __shared__ float xs[];
    const int64_t t = blockIdx.y;
    for (int64_t i = threadIdx.x; i < in; i += blockDim.x) xs[i] = x[t * in + i];
    __syncthreads();
    const int lane = threadIdx.x % 32;
    const int64_t o = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
    if (o >= out) return;
    const float v = warp_dot(w + o * in, xs, in, lane);
    if (lane == 0) y[t * ldy + o] = v;
}

__global__ void slot_rows_kernel(const int32_t* experts, const uint8_t* dropped, int64_t n_slots, int64_t* rows) {
    const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (s < n_slots) rows[s] = dispatch::slot_dropped(experts, dropped, s) ? -1 : s;
}

// Dynamic shared memory beyond the default 48 KiB is asked for per kernel.
template <typename K>
void allow_shared(K* kernel, size_t shared, const char* what) {
    if (shared > 48 * 1024)
        check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)), what);
}

template <typename F>
void by_type(DType t, const char* what, F&& f) {
    switch (t) {
    case DType::bf16: f(__nv_bfloat16{}); break;
    case DType::f16: f(__half{}); break;
    case DType::f32: f(float{}); break;
    default: throw Error(ErrorKind::input, std::string("the CUDA backend has no ") + what + " for " + dtype_name(t) + " weights");
    }
}

}  // namespace

void embed(const void* table, DType type, const int32_t* ids, int64_t T, int64_t H, float* x, cudaStream_t s) {
    if (T <= 0) return;
    by_type(type, "embedding", [&](auto w) {
        using W = decltype(w);
        embed_kernel<W><<<static_cast<unsigned>(T), 256, 0, s>>>(static_cast<const W*>(table), ids, H, x);
    });
    check(cudaGetLastError(), "launching the embedding gather");
}

void expert_gate_up(const float* x, int64_t T, int64_t H, int64_t k, const int32_t* experts, const uint8_t* dropped,
                    const void* const* gate, const void* const* up, DType type, int64_t F, float* h, cudaStream_t s) {
    if (T <= 0 || F <= 0) return;
    const dim3 grid(static_cast<unsigned>((F + kWarps - 1) / kWarps), static_cast<unsigned>(T * k));
    const size_t shared = static_cast<size_t>(H) * sizeof(float);
    by_type(type, "expert product", [&](auto w) {
        using W = decltype(w);
        allow_shared(gate_up_kernel<W>, shared, "expert product: shared memory size");
        gate_up_kernel<W><<<grid, kWarps * 32, shared, s>>>(x, H, k, experts, dropped, gate, up, F, h);
    });
    check(cudaGetLastError(), "launching the experts' gate and up products");
}

void expert_down(const float* h, int64_t n_slots, int64_t F, const int32_t* experts, const uint8_t* dropped,
                 const void* const* down, DType type, int64_t H, float* out, cudaStream_t s) {
    if (n_slots <= 0 || H <= 0) return;
    const dim3 grid(static_cast<unsigned>((H + kWarps - 1) / kWarps), static_cast<unsigned>(n_slots));
    const size_t shared = static_cast<size_t>(F) * sizeof(float);
    by_type(type, "expert product", [&](auto w) {
        using W = decltype(w);
        allow_shared(down_kernel<W>, shared, "expert product: shared memory size");
        down_kernel<W><<<grid, kWarps * 32, shared, s>>>(h, F, experts, dropped, down, H, out);
    });
    check(cudaGetLastError(), "launching the experts' down products");
}

void gemv(const float* x, int64_t T, int64_t in, const void* w, DType type, int64_t out, float* y, int64_t ldy,
          cudaStream_t s) {
    if (T <= 0 || out <= 0) return;
    const dim3 grid(static_cast<unsigned>((out + kWarps - 1) / kWarps), static_cast<unsigned>(T));
    const size_t shared = static_cast<size_t>(in) * sizeof(float);
    by_type(type, "matrix-vector product", [&](auto tag) {
        using W = decltype(tag);
        allow_shared(gemv_kernel<W>, shared, "matrix-vector product: shared memory size");
        gemv_kernel<W><<<grid, kWarps * 32, shared, s>>>(x, in, static_cast<const W*>(w), out, y, ldy);
    });
    check(cudaGetLastError(), "launching a matrix-vector product");
}

void slot_rows(const int32_t* experts, const uint8_t* dropped, int64_t n_slots, int64_t* rows, cudaStream_t s) {
    if (n_slots <= 0) return;
    slot_rows_kernel<<<static_cast<unsigned>((n_slots + 255) / 256), 256, 0, s>>>(experts, dropped, n_slots, rows);
    check(cudaGetLastError(), "launching the slot rows");
}

}  // namespace moe::cuda::launch
