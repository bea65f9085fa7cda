// The router of a plain step — softmax scores, greedy top-k, no bias, skips or groups
// (switched-off experts allowed) — with one warp per token instead of one thread: the
// definition of router_core::route computed lane-parallel. The score sum and the weights are
// summed in router_core's order; each rank is the best expert left under its strict order
// (score descending, then index ascending), so the selection is router_core's exactly. Used by
// the router's warp kernel (router_kernels.cu) and the decode layer kernel (decode_layer.cu).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/router_core.h"

namespace moe::cuda::route_warp {

constexpr int kMaxExperts = 256;

// Whether a step's routing is plain enough for a warp per token.
__host__ __device__ inline bool takes(const router_core::Args& a) {
    return !a.sigmoid && !a.bias && a.skip_top == 0 && a.skip_random == 0 && (a.method == 0 || a.n_group <= 1) &&
           a.n_expert <= kMaxExperts && a.k >= 1 && a.k <= a.n_expert;
}

// Shared memory (floats) of one warp: the scores [E], then the ranked experts [E].
__host__ __device__ inline int64_t shared_floats(int64_t n_expert) {
    return 2 * n_expert;
}

__device__ inline bool ranks_before(float va, int32_t a, float vb, int32_t b) {
    return va != vb ? va > vb : a < b;
}

// Token t's entropy, selected mass and margin [t], by the 32 lanes of the warp that has just
// routed it (token, below) from what that left in `sh`: the softmax's weights [E] and the
// ranking after them.
__device__ inline void stats_of(const router_core::Args& a, const float* sh, int64_t t, float* entropy, float* mass,
                                float* margin) {
    const int lane = threadIdx.x % 32;
    const int E = a.n_expert, k = a.k;
    const float* score = sh;
    const auto* ranked = reinterpret_cast<const int32_t*>(score + E);
    int eligible = 0;
    for (int e = lane; e < E; e += 32)
        if (!(a.excluded && a.excluded[e])) ++eligible;
    for (int o = 16; o > 0; o /= 2) eligible += __shfl_xor_sync(0xffffffffu, eligible, o);
    double h = 0;
    for (int e = lane; e < E; e += 32) {
        const double q = static_cast<double>(score[e]);
        if (q > 0) h -= q * log(q);
    }
    for (int o = 16; o > 0; o /= 2) h += __shfl_xor_sync(0xffffffffu, h, o);
    if (lane != 0) return;
    float selected = 0.0f;
    for (int j = 0; j < k; ++j) selected += score[ranked[j]];
    entropy[t] = static_cast<float>(h);
    mass[t] = selected;
    const float last = score[ranked[k - 1]];
    margin[t] = k < eligible ? last - score[ranked[k]] : last;
}

// Token t of logits [*, E], by the 32 lanes of one warp, its shared_floats(E) floats in `sh`:
// experts and weights [t·k ..], entropy, mass and margin [t] (unless stats is false: a caller
// that needs only the selection skips the entropy's logarithms, or asks for them afterwards
// with stats_of while `sh` still holds what this left; the selection is the same).
__device__ inline void token(const float* logits, int64_t t, const router_core::Args& a, float* sh, int32_t* experts,
                             float* weights, float* entropy, float* mass, float* margin, bool stats = true) {
    const int lane = threadIdx.x % 32;
    const int E = a.n_expert, k = a.k;
    float* score = sh;
    auto* ranked = reinterpret_cast<int32_t*>(score + E);
    const float* lg = logits + t * E;
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) mx = fmaxf(mx, __ldcg(lg + e));  // past L1: other blocks' writes
    for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    for (int e = lane; e < E; e += 32) score[e] = expf(__ldcg(lg + e) - mx);
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
        if (a.excluded && a.excluded[e])
            taken |= 1u << i;
        else
            ++eligible;
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
    __syncwarp();
    if (lane == 0) {
        float wsum = 0.0f;
        for (int j = 0; j < k; ++j) {
            const int32_t e = ranked[j];
            experts[t * k + j] = e;
            weights[t * k + j] = score[e];
            wsum += score[e];
        }
        const bool renorm = a.norm_topk_prob && k > 1;
        if (renorm) {
            const float denom = wsum + 1e-20f;
            for (int j = 0; j < k; ++j) weights[t * k + j] /= denom;
        }
        if (!renorm && a.routed_scaling_factor != 1.0f)
            for (int j = 0; j < k; ++j) weights[t * k + j] *= a.routed_scaling_factor;
    }
    if (stats) stats_of(a, sh, t, entropy, mass, margin);
}

}  // namespace moe::cuda::route_warp
