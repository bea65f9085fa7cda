// The decode split of attention (one query, the visible positions split over kSplits parts
// per head, then merged) as device functions of one work item each, so that the split and
// merge kernels (attention_kernels.cu) and the decode layer kernel (decode_layer.cu) compute
// the same values: an item's arithmetic does not depend on the block's size (see
// split_item). Also the block reductions and softmax of the other attention kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/attention_tiles.h"
#include "engine/cuda/row_math.cuh"

namespace moe::cuda::decode_attn {

constexpr int kSplits = 64, kDecodeThreads = 128;
constexpr int kMergeWarps = kDecodeThreads / 32;  // the warps that sum a merge item's splits

// The block's reduction of one value per thread (the maximum, or the sum in a tree over
// scratch [blockDim.x]); every thread gets the result. It synchronises.
__device__ inline float block_reduce(float v, float* scratch, bool take_max) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) {
            const float o = scratch[threadIdx.x + stride];
            scratch[threadIdx.x] = take_max ? fmaxf(scratch[threadIdx.x], o) : scratch[threadIdx.x] + o;
        }
        __syncthreads();
    }
    const float r = scratch[0];
    __syncthreads();
    return r;
}

// scores[0..n) (shared memory, written before the call) become exp(score - max); returns the
// maximum and the sum of the exponentials. The block's threads all call it; it synchronises.
struct Softmax {
    float max, sum;
};
__device__ inline Softmax exp_in_place(float* scores, int64_t n, float* scratch) {
    float local = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) local = fmaxf(local, scores[j]);
    const float mx = block_reduce(local, scratch, true);
    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
        const float p = expf(scores[j] - mx);
        scores[j] = p;
        sum += p;
    }
    return {mx, block_reduce(sum, scratch, false)};  // synchronises: every p is in
}

// Dynamic shared memory (floats) a split item needs beside its scratch: the query [hd] and
// the scores of the longest split.
__host__ __device__ inline int64_t split_floats(int64_t hd, int64_t positions) {
    return hd + attention_tiles::split_length(positions, kSplits);
}

// Item (head h, split) of the query q [nh·hd] over the positions 0..pos0 of k, v [*, nkv, hd]:
// the split's share of the visible positions (ceil(visible / kSplits), so that the work is the
// same at every position), its maximum, sum and unnormalised output to
// partials [nh][kSplits][hd + 2]. dsm: split_floats(hd, visible) floats; scratch: blockDim.x.
// Each score is one warp's, each output dimension one thread's, and the softmax's sum a tree
// over the block whose extra slots hold zeros: with at most one score per thread of a block of
// kDecodeThreads (16,384 positions), a block of 256 threads computes the same values.
//
// U > 1 keeps more loads in flight without changing a sum: each warp computes the scores of U
// positions at once (their keys' loads issued together, each position's sum over d in the same
// order), and each thread loads U values of its dimension before it adds them in order — the
// same values as U = 1 (what the split kernel runs), with U times the loads under way.
template <typename KV, int U = 1>
__device__ inline void split_item(const float* q, const KV* k, const KV* v, int64_t n_heads, int64_t n_kv_heads,
                                  int64_t hd, int64_t pos0, int64_t h, int64_t split, float scale, float* partials,
                                  float* dsm, float* scratch) {
    const int64_t kvh = h / (n_heads / n_kv_heads);
    const attention_tiles::Range mine = attention_tiles::split_range(pos0 + 1, kSplits, split);
    const int64_t j0 = mine.begin, n = mine.end - mine.begin;
    float* part = partials + (h * kSplits + split) * (hd + 2);
    float* qs = dsm;       // [hd]
    float* ss = dsm + hd;  // [split length]
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = q[h * hd + d];
    __syncthreads();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
    const int64_t row_stride = n_kv_heads * hd;  // from one position's key (or value) head to the next
    for (int64_t j = warp; j < n; j += static_cast<int64_t>(warps) * U) {
        const KV* kr = k + ((j0 + j) * n_kv_heads + kvh) * hd;  // position j; j + u·warps at u·warps rows on
        float acc[U];
#pragma unroll
        for (int u = 0; u < U; ++u) acc[u] = 0.0f;
        for (int64_t d = lane; d < hd; d += 32) {
            KV kv[U];
#pragma unroll
            for (int u = 0; u < U; ++u)
                if (U == 1 || j + u * warps < n) kv[u] = kr[u * warps * row_stride + d];
#pragma unroll
            for (int u = 0; u < U; ++u)
                if (U == 1 || j + u * warps < n) acc[u] += qs[d] * launch::widen(kv[u]);
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            if (U > 1 && j + u * warps >= n) break;
            const float sum = launch::warp_sum(acc[u]);
            if (lane == 0) ss[j + u * warps] = sum * scale;
        }
    }
    __syncthreads();
    const Softmax sm = exp_in_place(ss, n, scratch);
    const float mx = sm.max, total = sm.sum;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        const KV* vd = v + (j0 * n_kv_heads + kvh) * hd + d;  // position j0's value of dimension d
        float acc = 0.0f;
        int64_t j = 0;
        if constexpr (U > 1) {
            for (; j + U <= n; j += U) {
                KV vv[U];
#pragma unroll
                for (int u = 0; u < U; ++u) vv[u] = vd[(j + u) * row_stride];
#pragma unroll
                for (int u = 0; u < U; ++u) acc += ss[j + u] * launch::widen(vv[u]);
            }
        }
        for (; j < n; ++j) acc += ss[j] * launch::widen(vd[j * row_stride]);
        part[d] = acc;
    }
    if (threadIdx.x == 0) {
        part[hd] = n > 0 ? mx : -INFINITY;
        part[hd + 1] = total;
    }
}

// Item (head h, split) of split_item by one warp, for an f32 cache: the same values (each score
// a warp's sum over d = lane + 32·i, the softmax's sum the block's tree over positions, each
// output dimension its own sum over positions in order), with G positions' loads in flight.
// Needs hd ≤ 128 and at most 64 positions a split (two scores a lane). Reads q and the cache
// past L1: the decode stream kernel's attention, whose other blocks wrote them.
__device__ inline void split_item_warp(const float* q, const float* k, const float* v, int64_t n_heads,
                                       int64_t n_kv_heads, int64_t hd, int64_t pos0, int64_t h, int64_t split,
                                       float scale, float* partials) {
    constexpr int G = 16, D = 4;
    const int lane = threadIdx.x % 32;
    const int64_t kvh = h / (n_heads / n_kv_heads);
    const attention_tiles::Range mine = attention_tiles::split_range(pos0 + 1, kSplits, split);
    const int64_t j0 = mine.begin, n = mine.end - mine.begin;
    float* part = partials + (h * kSplits + split) * (hd + 2);
    const int64_t stride = n_kv_heads * hd;
    const int64_t first = (j0 * n_kv_heads + kvh) * hd + lane;  // position j0's element of dimension lane
    // Positions jb .. jb + G of rows (keys or values): this lane's dimensions, 0 past n or hd.
    auto load = [&](const float* rows, int64_t jb, float(&out)[G][D]) {
#pragma unroll
        for (int g = 0; g < G; ++g)
#pragma unroll
            for (int i = 0; i < D; ++i)
                out[g][i] = jb + g < n && lane + 32 * i < hd ? __ldcg(rows + first + (jb + g) * stride + 32 * i) : 0.0f;
    };
    float qv[D];
#pragma unroll
    for (int i = 0; i < D; ++i) qv[i] = lane + 32 * i < hd ? __ldcg(q + h * hd + lane + 32 * i) : 0.0f;
    // Position j's score in lane j % 32: s0 for j < 32, s1 for the rest.
    float s0 = -INFINITY, s1 = -INFINITY;
    for (int64_t jb = 0; jb < n; jb += G) {
        float kv[G][D];
        load(k, jb, kv);
#pragma unroll
        for (int g = 0; g < G; ++g) {
            if (jb + g >= n) break;
            float acc = 0.0f;
#pragma unroll
            for (int i = 0; i < D; ++i)
                if (lane + 32 * i < hd) acc += qv[i] * kv[g][i];
            const float sc = launch::warp_sum(acc) * scale;
            const int64_t j = jb + g;
            if (lane == j % 32) (j < 32 ? s0 : s1) = sc;
        }
    }
    float mx = fmaxf(s0, s1);
    for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    const float p0 = lane < n ? expf(s0 - mx) : 0.0f, p1 = lane + 32 < n ? expf(s1 - mx) : 0.0f;
    // The block's tree: slots t and t + 32 first (the wider strides add zeros), then halving.
    float total = p0 + p1;
    for (int o = 16; o > 0; o /= 2) total = total + __shfl_down_sync(0xffffffffu, total, o);
    total = __shfl_sync(0xffffffffu, total, 0);
    float acc[D] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t jb = 0; jb < n; jb += G) {
        float vv[G][D];
        load(v, jb, vv);
#pragma unroll
        for (int g = 0; g < G; ++g) {
            if (jb + g >= n) break;
            const int64_t j = jb + g;
            const float pj = __shfl_sync(0xffffffffu, j < 32 ? p0 : p1, static_cast<int>(j % 32));
#pragma unroll
            for (int i = 0; i < D; ++i) acc[i] += pj * vv[g][i];
        }
    }
#pragma unroll
    for (int i = 0; i < D; ++i)
        if (lane + 32 * i < hd) part[lane + 32 * i] = acc[i];
    if (lane == 0) {
        part[hd] = n > 0 ? mx : -INFINITY;
        part[hd + 1] = total;
    }
}

// The keys and values item (h, split) reads, asked into L2 by the block's threads (a 128-byte
// line each at a time): what a block prefetches for its first item while it waits for the
// products before.
template <typename KV>
__device__ inline void split_prefetch(const KV* k, const KV* v, int64_t n_heads, int64_t n_kv_heads, int64_t hd,
                                      int64_t pos0, int64_t h, int64_t split) {
    const int64_t kvh = h / (n_heads / n_kv_heads);
    const attention_tiles::Range mine = attention_tiles::split_range(pos0 + 1, kSplits, split);
    const int64_t row_bytes = hd * static_cast<int64_t>(sizeof(KV)), lines = (row_bytes + 127) / 128;
    const int64_t n = mine.end - mine.begin;
    for (int64_t i = threadIdx.x; i < 2 * n * lines; i += blockDim.x) {
        const int64_t j = i / (2 * lines), rest = i % (2 * lines);
        const KV* base = (rest < lines ? k : v) + ((mine.begin + j) * n_kv_heads + kvh) * hd;
        asm volatile("prefetch.global.L2 [%0];\n" ::"l"(reinterpret_cast<const char*>(base) + (rest % lines) * 128));
    }
}

// Shared memory of a merge item.
struct MergeShared {
    float weight[kSplits];
    float part[kMergeWarps][32];
};

// Item (head h, 32 output dimensions from 32·chunk) of the merge of the splits in partials
// into out [nh·hd]: each split's weight exp(m_s - max) once, then each of the first
// kMergeWarps warps sums a share of the splits for the item's dimensions and the first warp
// adds the shares. scratch: blockDim.x floats (at least kSplits threads). The same values in
// a block of any such size. PastL1: the partials read past the L1 (other blocks of the same
// launch wrote them).
template <bool PastL1 = false>
__device__ inline void merge_item(const float* partials, int64_t hd, float* out, int64_t h, int64_t chunk,
                                  float* scratch, MergeShared& sh) {
    const float* base = partials + h * kSplits * (hd + 2);
    auto at = [&](int64_t i) { return PastL1 ? __ldcg(base + i) : base[i]; };
    const bool mine = threadIdx.x < kSplits;
    const float m = mine ? at(threadIdx.x * (hd + 2) + hd) : -INFINITY;
    const float l = mine ? at(threadIdx.x * (hd + 2) + hd + 1) : 0.0f;
    const float mx = block_reduce(m, scratch, true);
    const float w = mine && l > 0.0f ? expf(m - mx) : 0.0f;
    if (mine) sh.weight[threadIdx.x] = w;
    const float total = block_reduce(w * l, scratch, false);  // synchronises: weight is in
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t d = chunk * 32 + lane;
    if (warp < kMergeWarps) {
        float acc = 0.0f;
        if (d < hd)
            for (int s = warp; s < kSplits; s += kMergeWarps) acc += at(s * (hd + 2) + d) * sh.weight[s];
        sh.part[warp][lane] = acc;
    }
    __syncthreads();
    if (warp == 0 && d < hd) {
        float sum = 0.0f;
        for (int i = 0; i < kMergeWarps; ++i) sum += sh.part[i][lane];
        out[h * hd + d] = sum / total;
    }
}

}  // namespace moe::cuda::decode_attn
