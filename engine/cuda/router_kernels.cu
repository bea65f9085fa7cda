// The router on the device; see router_kernels.h.
#include "engine/cuda/router_kernels.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/launch.h"
#include "engine/cuda/launch_after.h"
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

// The router of a plain step — softmax scores, greedy top-k, no bias, skips or groups
// (switched-off experts allowed) — with one warp per token instead of one thread: the
// definition of router_core::route computed lane-parallel. The score sum and the weights are
// summed in router_core's order; each rank is the best expert left under its strict order
// (score descending, then index ascending), so the selection is router_core's exactly.
constexpr int kRouteWarps = 4;
constexpr int kMaxWarpExperts = 256;

__device__ inline bool ranks_before(float va, int32_t a, float vb, int32_t b) { return va != vb ? va > vb : a < b; }

__global__ void route_warp_kernel(const float* logits, int64_t n_tokens, router_core::Args a, int32_t* experts,
                                  float* weights, float* entropy, float* mass, float* margin) {
    extern __shared__ float route_shared[];  // per warp: score [E], then the ranked experts [E]
    launch::wait_for_previous();  // launched early with launch::early_trigger()
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t t = static_cast<int64_t>(blockIdx.x) * kRouteWarps + warp;
    if (t >= n_tokens) return;  // the whole warp
    const int E = a.n_expert, k = a.k;
    float* score = route_shared + warp * 2 * E;
    auto* ranked = reinterpret_cast<int32_t*>(score + E);
    const float* lg = logits + t * E;
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) mx = fmaxf(mx, lg[e]);
    for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    for (int e = lane; e < E; e += 32) score[e] = expf(lg[e] - mx);
    __syncwarp();
    float inv = 0.0f;
    if (lane == 0) {
        float sum = 0.0f;
        for (int e = 0; e < E; ++e) sum += score[e];
        inv = 1.0f / sum;
    }
    inv = __shfl_sync(0xffffffffu, inv, 0);
    unsigned taken = 0;  // bit i: expert lane + 32·i is ranked already, or not eligible
    int eligible = 0;
    for (int e = lane, i = 0; e < E; e += 32, ++i) {
        score[e] *= inv;
        if (a.excluded && a.excluded[e]) taken |= 1u << i;
        else ++eligible;
    }
    for (int o = 16; o > 0; o /= 2) eligible += __shfl_xor_sync(0xffffffffu, eligible, o);
    const int need = eligible < k + 1 ? eligible : k + 1;
    for (int j = 0; j < need; ++j) {
        float bv = -1.0f;  // scores are ≥ 0: no expert ranks after this
        int32_t be = 0x7fffffff;
        for (int e = lane, i = 0; e < E; e += 32, ++i)
            if (!(taken >> i & 1u) && ranks_before(score[e], e, bv, be)) {
                bv = score[e];
                be = e;
            }
        for (int o = 16; o > 0; o /= 2) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int32_t oe = __shfl_xor_sync(0xffffffffu, be, o);
            if (ranks_before(ov, oe, bv, be)) {
                bv = ov;
                be = oe;
            }
        }
        if (be % 32 == lane) taken |= 1u << (be / 32);
        if (lane == 0) ranked[j] = be;
    }
    double h = 0;
    for (int e = lane; e < E; e += 32) {
        const double q = static_cast<double>(score[e]);
        if (q > 0) h -= q * log(q);
    }
    for (int o = 16; o > 0; o /= 2) h += __shfl_xor_sync(0xffffffffu, h, o);
    __syncwarp();
    if (lane != 0) return;
    float wsum = 0.0f, selected = 0.0f;
    for (int j = 0; j < k; ++j) {
        const int32_t e = ranked[j];
        experts[t * k + j] = e;
        weights[t * k + j] = score[e];
        wsum += score[e];
        selected += score[e];
    }
    const bool renorm = a.norm_topk_prob && k > 1;
    if (renorm) {
        const float denom = wsum + 1e-20f;
        for (int j = 0; j < k; ++j) weights[t * k + j] /= denom;
    }
    if (!renorm && a.routed_scaling_factor != 1.0f)
        for (int j = 0; j < k; ++j) weights[t * k + j] *= a.routed_scaling_factor;
    entropy[t] = static_cast<float>(h);
    mass[t] = selected;
    const float last = score[ranked[k - 1]];
    margin[t] = k < eligible ? last - score[ranked[k]] : last;
}

bool plain_route(const router_core::Args& a) {
    return !a.sigmoid && !a.bias && a.skip_top == 0 && a.skip_random == 0 && (a.method == 0 || a.n_group <= 1) &&
           a.n_expert <= kMaxWarpExperts && a.k >= 1 && a.k <= a.n_expert;
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
    if (plain_route(a)) {
        const size_t shared = static_cast<size_t>(kRouteWarps) * 2 * static_cast<size_t>(a.n_expert) * sizeof(float);
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
