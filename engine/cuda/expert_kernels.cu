// Kernels of the forward pass that have no host interface of their own: the embedding gather
// and the experts of a small step (decode) as matrix-vector products that read each slot's
// expert from device memory, so that a step needs no host round trip.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "engine/cuda/decode_bodies.cuh"
#include "engine/cuda/device.h"
#include "engine/cuda/expert_kernels.h"
#include "engine/cuda/launch_after.h"
#include "engine/cuda/route_warp.cuh"
#include "engine/cuda/row_math.cuh"
#include "engine/error.h"
#include "engine/moe_dispatch.h"

namespace moe::cuda::launch {

namespace {

template <typename W>
__global__ void embed_kernel(const W* table, const int32_t* ids, int64_t H, float* x) {
    const int64_t t = blockIdx.x;
    const W* row = table + static_cast<int64_t>(ids[t]) * H;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) x[t * H + i] = widen(row[i]);
}

constexpr int kWarps = decode_body::kWarps;

// Blocks (b, slot), a few per multiprocessor over all slots, that stay for all rows
// (decode_body::gate_up_rows).
template <typename W, bool S, int MINB>
__global__ void __launch_bounds__(kWarps * 32, MINB) gate_up_kernel(const float* x, int64_t H, int64_t k, const int32_t* experts, const uint8_t* dropped,
                               const void* const* gate, const void* const* up, int64_t F, float* h, bool let_next) {
    extern __shared__ __align__(16) float xs[];
    let_next_start(let_next);
    wait_for_previous();
    decode_body::gate_up_rows<W, S, MINB>(x, H, k, experts, dropped, gate, up, F, h, blockIdx.x, gridDim.x, blockIdx.y,
                                          xs);
}

// Blocks (b, slot) as gate_up_kernel, whose first warp first routes the slot's token
// (route_warp::token on the router's logits [T, E], into shared memory after x's [H]): every
// block of the token finds the experts and weights the router's launch writes, and block
// (0, the token's first slot) writes them, with the token's entropy, mass and margin (which
// the others do not compute), to out for the launches and the observer after this one.
template <typename W, bool S, int MINB>
__global__ void __launch_bounds__(kWarps * 32, MINB)
    routed_gate_up_kernel(const float* logits, router_core::Args a, RouteOutputs out, const float* x, int64_t H,
                          const uint8_t* dropped, const void* const* gate, const void* const* up, int64_t F, float* h,
                          bool let_next) {
    extern __shared__ __align__(16) float xs[];
    let_next_start(let_next);
    wait_for_previous();
    const int64_t k = a.k, slot = blockIdx.y, t = slot / k, j = slot % k;
    float* scratch = xs + H;
    auto* experts = reinterpret_cast<int32_t*>(scratch + route_warp::shared_floats(a.n_expert));
    float* weights = reinterpret_cast<float*>(experts + k);
    float* stats = weights + k;  // entropy, mass, margin
    const bool writes = blockIdx.x == 0 && j == 0;  // the token's routing, for the launches after
    if (threadIdx.x < 32)
        route_warp::token(logits + t * a.n_expert, 0, a, scratch, experts, weights, stats, stats + 1, stats + 2,
                          writes);
    __syncthreads();
    if (writes) {
        for (int64_t r = threadIdx.x; r < k; r += blockDim.x) {
            out.experts[t * k + r] = experts[r];
            out.weights[t * k + r] = weights[r];
        }
        if (threadIdx.x == 0) {
            out.entropy[t] = stats[0];
            out.mass[t] = stats[1];
            out.margin[t] = stats[2];
        }
    }
    const int32_t e = experts[j];
    if (dropped && dropped[e]) return;  // the whole block
    decode_body::expert_gate_up_rows<W, S, MINB>(x + t * H, H, e, gate, up, F, h + slot * F, blockIdx.x, gridDim.x, xs);
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

// The experts' gate and up launches' grid: about two blocks per multiprocessor over all n_slots
// slots, each block's rows a share of F.
dim3 slot_grid(int64_t F, int64_t n_slots) {
    const int64_t tiles = (F + kWarps - 1) / kWarps;
    const int64_t per_slot =
        std::max<int64_t>(1, std::min<int64_t>(tiles, 2 * std::max(1, multiprocessors()) / n_slots));
    return dim3(static_cast<unsigned>(per_slot), static_cast<unsigned>(n_slots));
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
    const dim3 grid = slot_grid(F, T * k);
    const size_t shared = static_cast<size_t>(H) * sizeof(float);
    by_type(type, "expert product", [&](auto w) {
        using W = decltype(w);
        const bool three = decode_blocks() == 3;
        const auto kernel = stream_weight_loads() ? (three ? gate_up_kernel<W, true, 3> : gate_up_kernel<W, true, 2>)
                                                  : (three ? gate_up_kernel<W, false, 3> : gate_up_kernel<W, false, 2>);
        allow_shared(kernel, shared, "expert product: shared memory size");
        launch_after(kernel, grid, dim3(kWarps * 32), shared, s, "launching the experts' gate and up products", x, H,
                     k, experts, dropped, gate, up, F, h, early_trigger());
    });
}

void routed_expert_gate_up(const float* logits, const router_core::Args& a, RouteOutputs out, const float* x, int64_t T,
                           int64_t H, const uint8_t* dropped, const void* const* gate, const void* const* up,
                           DType type, int64_t F, float* h, cudaStream_t s) {
    if (!route_warp::takes(a))
        throw Error(ErrorKind::failure, "the experts' gate and up products route only a plain router's tokens");
    if (T <= 0 || F <= 0) return;
    const int64_t k = a.k;
    const dim3 grid = slot_grid(F, T * k);
    // x's row, then the router's scratch, the token's experts and weights, and its three figures.
    const size_t shared = static_cast<size_t>(H + route_warp::shared_floats(a.n_expert) + 2 * k + 3) * sizeof(float);
    by_type(type, "expert product", [&](auto w) {
        using W = decltype(w);
        const bool three = decode_blocks() == 3;
        const auto kernel = stream_weight_loads()
                                ? (three ? routed_gate_up_kernel<W, true, 3> : routed_gate_up_kernel<W, true, 2>)
                                : (three ? routed_gate_up_kernel<W, false, 3> : routed_gate_up_kernel<W, false, 2>);
        allow_shared(kernel, shared, "expert product: shared memory size");
        launch_after(kernel, grid, dim3(kWarps * 32), shared, s,
                     "launching the routing and the experts' gate and up products", logits, a, out, x, H, dropped, gate,
                     up, F, h, early_trigger());
    });
    count(Counted::routed_gate_up);
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
