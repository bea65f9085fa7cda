// The router on the device; see router_kernels.h.
#include "engine/cuda/router_kernels.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/launch.h"
#include "engine/cuda/launch_after.h"
#include "engine/cuda/route_warp.cuh"
#include "engine/cuda/row_math.cuh"
#include "engine/error.h"
#include "engine/router_core.h"

namespace moe::cuda {

namespace {

// Per-token scratch in global memory: score, select [E] floats; order [E]; groups [4·G].
struct ScratchLayout {
    int64_t E, G;
    __host__ __device__ int64_t bytes_per_token() const { return (2 * E + E + 4 * G) * 4; }
};

__global__ void route_kernel(const float* logits, int64_t n_tokens, router_core::Args a, const uint64_t* keys,
                             unsigned char* scratch, ScratchLayout layout, int32_t* experts, float* weights,
                             float* entropy, float* mass, float* margin) {
    extern __shared__ float4 shared_scratch[];
    const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= n_tokens) return;
    const int64_t E = layout.E, G = layout.G;
    // The token's scratch in shared memory when the launch gave room for it, else global.
    auto* base = scratch ? reinterpret_cast<float*>(scratch + t * layout.bytes_per_token())
                         : reinterpret_cast<float*>(reinterpret_cast<unsigned char*>(shared_scratch) +
                                                    threadIdx.x * layout.bytes_per_token());
    router_core::Scratch s;
    s.score = base;
    s.select = base + E;
    s.order = reinterpret_cast<int32_t*>(base + 2 * E);
    s.group_best = base + 3 * E;
    s.group_second = base + 3 * E + G;
    s.group_count = reinterpret_cast<int32_t*>(base + 3 * E + 2 * G);
    s.group_order = reinterpret_cast<int32_t*>(base + 3 * E + 3 * G);
    if (keys) a.random_key = keys[t];
    router_core::Stats st;
    router_core::route(logits + t * E, a, s, experts + t * a.k, weights + t * a.k, &st, nullptr, nullptr);
    entropy[t] = st.entropy;
    mass[t] = st.selected_mass;
    margin[t] = st.margin;
}

// One warp per token: route_warp::token.
constexpr int kRouteWarps = 4;

__global__ void route_warp_kernel(const float* logits, int64_t n_tokens, router_core::Args a, int32_t* experts,
                                  float* weights, float* entropy, float* mass, float* margin) {
    extern __shared__ float route_shared[];  // per warp: route_warp::shared_floats
    launch::wait_for_previous();  // launched early with launch::early_trigger()
    const int warp = threadIdx.x / 32;
    const int64_t t = static_cast<int64_t>(blockIdx.x) * kRouteWarps + warp;
    if (t >= n_tokens) return;  // the whole warp
    route_warp::token(logits, t, a, route_shared + warp * route_warp::shared_floats(a.n_expert), experts, weights,
                      entropy, mass, margin);
}

}  // namespace

namespace launch {

router_core::Args router_args(const RouterParams& p) {
    router_core::Args a;
    a.n_expert = static_cast<int32_t>(p.n_expert);
    a.k = static_cast<int32_t>(p.k);
    a.norm_topk_prob = p.norm_topk_prob;
    a.sigmoid = p.scoring == ScoringFunc::sigmoid;
    a.method = p.method == TopkMethod::greedy ? 0 : p.method == TopkMethod::group_limited_greedy ? 1 : 2;
    a.n_group = static_cast<int32_t>(p.n_group > 0 ? p.n_group : 1);
    a.topk_group = static_cast<int32_t>(p.topk_group);
    a.skip_top = static_cast<int32_t>(p.skip_top);
    a.skip_random = static_cast<int32_t>(p.skip_random);
    a.routed_scaling_factor = p.routed_scaling_factor;
    a.excluded = p.excluded;
    a.bias = p.bias;
    return a;
}

int64_t route_scratch_bytes(int64_t T, int64_t E, int64_t G) { return T * ScratchLayout{E, G}.bytes_per_token(); }

void route(const float* logits, int64_t T, const router_core::Args& a, const uint64_t* keys, void* scratch,
           RouteOutputs out, cudaStream_t s) {
    if (T <= 0) return;
    if (route_warp::takes(a)) {
        const size_t shared = static_cast<size_t>(kRouteWarps * route_warp::shared_floats(a.n_expert)) * sizeof(float);
        const dim3 grid(static_cast<unsigned>((T + kRouteWarps - 1) / kRouteWarps)), block(kRouteWarps * 32);
        launch_early_if(early_trigger(), route_warp_kernel, grid, block, shared, s, "launching the router kernel", logits, T, a,
                        out.experts, out.weights, out.entropy, out.mass, out.margin);
        return;
    }
    // Otherwise one thread per token, its scratch in shared memory (up to 32 tokens a block, within the
    // default 48 KiB) unless one token's scratch alone is larger.
    const ScratchLayout layout{a.n_expert, a.n_group};
    const int64_t per_token = layout.bytes_per_token();
    const int64_t fit = (48 * 1024) / per_token;
    const int threads = fit > 0 ? static_cast<int>(std::min<int64_t>(fit, 32)) : 128;
    const unsigned blocks = static_cast<unsigned>((T + threads - 1) / threads);
    const size_t shared = fit > 0 ? static_cast<size_t>(threads * per_token) : 0;
    route_kernel<<<blocks, threads, shared, s>>>(
        logits, T, a, keys, fit > 0 ? nullptr : static_cast<unsigned char*>(scratch), layout, out.experts, out.weights,
        out.entropy, out.mass, out.margin);
    check(cudaGetLastError(), "launching the router kernel");
}

}  // namespace launch

RoutedBatch route_tokens(const float* logits, int64_t n_tokens, const RouterParams& p,
                         const std::vector<uint64_t>& random_keys) {
    const int64_t E = p.n_expert, k = p.k, G = p.n_group > 0 ? p.n_group : 1;
    if (k < 1 || k > E) throw Error(ErrorKind::input, "router: k must be in 1..E");
    if (p.skip_random > 0 && static_cast<int64_t>(random_keys.size()) != n_tokens)
        throw Error(ErrorKind::input, "router: skip-random needs one key per token");
    router_core::Args a = launch::router_args(p);
    const size_t T = static_cast<size_t>(n_tokens), ne = static_cast<size_t>(E), nk = static_cast<size_t>(k);
    Buffer<float> d_logits(T * ne), d_weights(T * nk), d_entropy(T), d_mass(T), d_margin(T), d_bias(p.bias ? ne : 0);
    Buffer<int32_t> d_experts(T * nk);
    Buffer<uint8_t> d_excluded(p.excluded ? ne : 0);
    Buffer<uint64_t> d_keys(p.skip_random > 0 ? T : 0);
    const ScratchLayout layout{E, G};
    Buffer<unsigned char> d_scratch(T * static_cast<size_t>(layout.bytes_per_token()));
    upload(d_logits, logits, T * ne);
    if (p.bias) upload(d_bias, p.bias, ne);
    if (p.excluded) upload(d_excluded, p.excluded, ne);
    if (p.skip_random > 0) upload(d_keys, random_keys.data(), T);
    a.bias = d_bias.ptr;
    a.excluded = d_excluded.ptr;

    RoutedBatch out;
    launch::route(d_logits.ptr, n_tokens, a, d_keys.ptr, d_scratch.ptr,
                  {d_experts.ptr, d_weights.ptr, d_entropy.ptr, d_mass.ptr, d_margin.ptr}, nullptr);
    check(cudaDeviceSynchronize(), "running the router kernel");
    download(out.experts, d_experts, T * nk);
    download(out.weights, d_weights, T * nk);
    download(out.entropy, d_entropy, T);
    download(out.selected_mass, d_mass, T);
    download(out.margin, d_margin, T);
    return out;
}

}  // namespace moe::cuda
