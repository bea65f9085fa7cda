// Causal attention on the device; see attention_kernels.h.
#include "engine/cuda/attention_kernels.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstring>
#include <type_traits>

#include "engine/attention_tiles.h"
#include "engine/cuda/attention_mma.h"
#include "engine/cuda/decode_attention.cuh"
#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/launch.h"
#include "engine/cuda/launch_after.h"
#include "engine/cuda/row_math.cuh"
#include "engine/error.h"
#include "engine/tensor.h"

namespace moe::cuda {

namespace {

constexpr int kThreads = 128;
constexpr int64_t kMaxFlashHeadDim = 128;  // 4 output dimensions per lane

using decode_attn::block_reduce;
using decode_attn::exp_in_place;
using decode_attn::kDecodeThreads;
using decode_attn::kSplits;
using decode_attn::Softmax;

// Block (t, h). Dynamic shared memory: scores [visible] + q [hd]. The first position is pos0,
// or *d_pos when given (a step replayed from a CUDA graph).
template <typename KV>
__global__ void attention_kernel(const float* q, const KV* k, const KV* v, int64_t n_heads, int64_t n_kv_heads,
                                 int64_t hd, int64_t pos0, const int64_t* d_pos, float scale, float* out) {
    extern __shared__ float shared[];
    __shared__ float scratch[kThreads];
    if (d_pos) pos0 = *d_pos;
    const int64_t t = blockIdx.x / n_heads, h = blockIdx.x % n_heads, kvh = h / (n_heads / n_kv_heads);
    const int64_t visible = pos0 + t + 1;
    float* scores = shared;
    float* qs = shared + visible;
    const float* qrow = q + (t * n_heads + h) * hd;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qrow[d];
    __syncthreads();
    for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) {
        const KV* krow = k + (j * n_kv_heads + kvh) * hd;
        float s = 0;
        for (int64_t d = 0; d < hd; ++d) s += qs[d] * launch::widen(krow[d]);
        scores[j] = s * scale;
    }
    __syncthreads();
    const float inv = 1.0f / exp_in_place(scores, visible, scratch).sum;
    float* orow = out + (t * n_heads + h) * hd;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0;
        for (int64_t j = 0; j < visible; ++j) acc += scores[j] * launch::widen(v[(j * n_kv_heads + kvh) * hd + d]);
        orow[d] = acc * inv;
    }
}

// --- Prefill: tiled ("flash") attention --------------------------------------------------
// Block (query tile of kBQ, head): 4 warps of kRows query rows each. Key and value tiles of
// kBK positions pass through shared memory; each lane owns one key of the tile for the scores
// and ND output dimensions (lane + 32·i) for the sum, with a running maximum and sum per row.
constexpr int kBQ = 64, kBK = 32, kWarpsF = 4, kRows = kBQ / kWarpsF;

__device__ inline float warp_max(float v) {
    for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// A row of queries or values in shared memory: hd rounded up to whole float4s.
__host__ __device__ inline int flash_ld(int64_t hd) { return static_cast<int>((hd + 3) / 4 * 4); }
size_t flash_shared_bytes(int64_t hd) {
    const int ld = flash_ld(hd);
    return static_cast<size_t>(kBQ * ld + kBK * (ld + 4) + kBK * ld + kWarpsF * kRows * kBK) * sizeof(float);
}

template <int ND, typename KV>
__global__ void __launch_bounds__(kWarpsF * 32) flash_attention_kernel(const float* q, const KV* k, const KV* v,
                                                                       int64_t T, int64_t n_heads, int64_t n_kv_heads,
                                                                       int hd, int64_t pos0, float scale, float* out) {
    extern __shared__ float4 shared4[];
    float* shared = reinterpret_cast<float*>(shared4);
    const int ld = flash_ld(hd), ldk = ld + 4;
    float* qs = shared;             // [kBQ][ld]
    float* ks = qs + kBQ * ld;      // [kBK][ldk]
    float* vs = ks + kBK * ldk;     // [kBK][ld]
    float* ps = vs + kBK * ld;      // [warps][kRows][kBK]
    const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kBQ, h = blockIdx.y;
    const int64_t kvh = h / (n_heads / n_kv_heads), P = pos0 + T;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int idx = threadIdx.x; idx < kBQ * ld; idx += blockDim.x) {
        const int r = idx / ld, d = idx % ld;
        qs[idx] = (q0 + r < T && d < hd) ? q[((q0 + r) * n_heads + h) * hd + d] : 0.0f;
    }
    float o[kRows][ND], m[kRows], l[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < ND; ++i) o[r][i] = 0.0f;
    }
    const int row0 = warp * kRows;  // this warp's first row in the tile
    const int64_t n_tiles = attention_tiles::key_tiles(q0, kBQ, T, pos0, kBK);
    float* pw = ps + warp * kRows * kBK;
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
        const int64_t k0 = tile * kBK;
        __syncthreads();  // the previous tile is no longer read (and the queries are in)
        for (int idx = threadIdx.x; idx < kBK * ld; idx += blockDim.x) {
            const int j = idx / ld, d = idx % ld;
            const bool in = k0 + j < P && d < hd;
            const int64_t at = ((k0 + j) * n_kv_heads + kvh) * hd + d;
            ks[j * ldk + d] = in ? launch::widen(k[at]) : 0.0f;
            vs[j * ld + d] = in ? launch::widen(v[at]) : 0.0f;
        }
        __syncthreads();
        float s[kRows];
#pragma unroll
        for (int r = 0; r < kRows; ++r) s[r] = 0.0f;
        const float* krow = ks + lane * ldk;
        for (int d = 0; d < ld; d += 4) {
            const float4 kv = *reinterpret_cast<const float4*>(krow + d);
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                const float4 qv = *reinterpret_cast<const float4*>(qs + (row0 + r) * ld + d);
                s[r] += kv.x * qv.x + kv.y * qv.y + kv.z * qv.z + kv.w * qv.w;
            }
        }
        const int64_t key = k0 + lane;
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
            const int64_t qi = q0 + row0 + r;
            const bool visible = qi < T && key <= pos0 + qi;
            const float sr = visible ? s[r] * scale : -INFINITY;
            const float m_new = fmaxf(m[r], warp_max(sr));
            // A row with nothing visible yet (or past T) keeps m = -inf: nothing to add.
            const float p = m_new == -INFINITY ? 0.0f : expf(sr - m_new);
            const float alpha = m_new == -INFINITY ? 1.0f : expf(m[r] - m_new);
            l[r] = l[r] * alpha + launch::warp_sum(p);
#pragma unroll
            for (int i = 0; i < ND; ++i) o[r][i] *= alpha;
            m[r] = m_new;
            pw[r * kBK + lane] = p;
        }
        __syncwarp();
        for (int j = 0; j < kBK; j += 4) {
            float vv[4][ND];
#pragma unroll
            for (int c = 0; c < 4; ++c)
#pragma unroll
                for (int i = 0; i < ND; ++i) {
                    const int d = lane + 32 * i;
                    vv[c][i] = d < hd ? vs[(j + c) * ld + d] : 0.0f;
                }
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
                const float4 p4 = *reinterpret_cast<const float4*>(pw + r * kBK + j);
#pragma unroll
                for (int i = 0; i < ND; ++i) o[r][i] += p4.x * vv[0][i] + p4.y * vv[1][i] + p4.z * vv[2][i] + p4.w * vv[3][i];
            }
        }
        __syncwarp();
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const int64_t qi = q0 + row0 + r;
        if (qi >= T) continue;
        const float inv = 1.0f / l[r];
#pragma unroll
        for (int i = 0; i < ND; ++i) {
            const int d = lane + 32 * i;
            if (d < hd) out[(qi * n_heads + h) * hd + d] = o[r][i] * inv;
        }
    }
}

// --- Decode: one query split over the positions ---------------------------------------------
// Block (head, split): decode_attn::split_item; a second kernel merges the splits.
template <typename KV>
__global__ void decode_split_kernel(const float* q, const KV* k, const KV* v, int64_t n_heads, int64_t n_kv_heads,
                                    int64_t hd, int64_t pos0, const int64_t* d_pos, float scale, float* partials) {
    extern __shared__ float dsm[];
    __shared__ float scratch[kDecodeThreads];
    launch::wait_for_previous();  // launched early with launch::early_trigger()
    if (d_pos) pos0 = *d_pos;
    decode_attn::split_item(q, k, v, n_heads, n_kv_heads, hd, pos0, blockIdx.x, blockIdx.y, scale, partials, dsm,
                            scratch);
}

// Block (head, split): decode_attn::split_item, then the head's merge by the last of its
// blocks to finish (DecodeAttention::merged): each block's partial written, then counted on the
// head's counter (counters: attention_partial_counters, 0 before the launch); the block that
// counts kSplits merges the head's chunks as decode_merge_kernel's blocks would (the same
// values) and sets the counter back to 0 for the next launch.
template <typename KV>
__global__ void decode_split_merged_kernel(const float* q, const KV* k, const KV* v, int64_t n_heads,
                                           int64_t n_kv_heads, int64_t hd, int64_t pos0, const int64_t* d_pos,
                                           float scale, float* partials, unsigned* counters, float* out) {
    extern __shared__ float dsm[];
    __shared__ float scratch[kDecodeThreads];
    __shared__ decode_attn::MergeShared sh;
    __shared__ bool last;
    launch::wait_for_previous();  // launched early with launch::early_trigger()
    if (d_pos) pos0 = *d_pos;
    const int64_t h = blockIdx.x;
    decode_attn::split_item(q, k, v, n_heads, n_kv_heads, hd, pos0, h, blockIdx.y, scale, partials, dsm, scratch);
    __syncthreads();  // the block's partial written
    if (threadIdx.x == 0) {
        __threadfence();  // ... and seen by the device before it is counted
        last = atomicAdd(counters + h, 1u) + 1 == static_cast<unsigned>(kSplits);
        if (last) __threadfence();  // the other blocks' partials seen before they are read
    }
    __syncthreads();
    if (!last) return;
    for (int64_t chunk = 0; chunk < (hd + 31) / 32; ++chunk) {
        decode_attn::merge_item<true>(partials, hd, out, h, chunk, scratch, sh);
        __syncthreads();  // sh free for the next chunk
    }
    if (threadIdx.x == 0) counters[h] = 0;
}

// Warps (head, split) in blocks of kDecodeThreads: decode_attn::split_item_warp (f32 caches).
__global__ void __launch_bounds__(kDecodeThreads)
    decode_split_warp_kernel(const float* q, const float* k, const float* v, int64_t n_heads, int64_t n_kv_heads,
                             int64_t hd, int64_t pos0, const int64_t* d_pos, float scale, float* partials) {
    launch::wait_for_previous();  // launched early with launch::early_trigger()
    if (d_pos) pos0 = *d_pos;
    const int64_t item = static_cast<int64_t>(blockIdx.x) * (kDecodeThreads / 32) + threadIdx.x / 32;
    if (item >= n_heads * kSplits) return;  // the whole warp
    decode_attn::split_item_warp(q, k, v, n_heads, n_kv_heads, hd, pos0, item / kSplits, item % kSplits, scale,
                                 partials);
}

// Block (head, 32 output dimensions): decode_attn::merge_item.
// let_next: the kernel after it may start once its blocks have (launch::early_trigger()).
__global__ void decode_merge_kernel(const float* partials, int64_t hd, float* out, bool let_next) {
    __shared__ float scratch[kDecodeThreads];
    __shared__ decode_attn::MergeShared sh;
    launch::let_next_start(let_next);
    launch::wait_for_previous();  // when launched early
    decode_attn::merge_item(partials, hd, out, blockIdx.x, blockIdx.y, scratch, sh);
}

// The same split with 16-byte loads (DecodeAttention::vector): a row of hd = 4·L floats is
// read by L lanes, one float4 each, 32 / L rows per warp at once and kDepth rows per lane
// group in flight before their products; the query stays in registers. Scores: a row's
// partial dots summed over its L lanes with shuffles. Output: each lane group's sum over its
// rows, then the groups' sums added in order through shared memory. Launched to start while
// the kernel before runs (launch_after); it waits for that kernel before reading anything.
constexpr int kDepth = 8;

template <int L, typename KV>
__global__ void __launch_bounds__(kDecodeThreads) decode_split_vector_kernel(const float* q, const KV* k, const KV* v,
                                                                             int64_t n_heads, int64_t n_kv_heads,
                                                                             int64_t pos0, const int64_t* d_pos, float scale,
                                                                             float* partials, bool let_next) {
    constexpr int kRowsPerWarp = 32 / L, kSlots = (kDecodeThreads / 32) * kRowsPerWarp, hd = 4 * L;
    extern __shared__ float4 dsm4[];
    float4* sums = dsm4;                                // [kSlots][L]
    float* ss = reinterpret_cast<float*>(dsm4 + kSlots * L);  // [split length]
    __shared__ float scratch[kDecodeThreads];
    launch::let_next_start(let_next);
    launch::wait_for_previous();
    if (d_pos) pos0 = *d_pos;
    const int64_t h = blockIdx.x, split = blockIdx.y, kvh = h / (n_heads / n_kv_heads);
    const attention_tiles::Range mine = attention_tiles::split_range(pos0 + 1, kSplits, split);
    const int64_t j0 = mine.begin, n = mine.end - mine.begin;
    float* part = partials + (h * kSplits + split) * (hd + 2);
    const int lane = threadIdx.x % 32, c = lane % L;
    const int slot = (threadIdx.x / 32) * kRowsPerWarp + lane / L;
    const float4 q4 = reinterpret_cast<const float4*>(q + h * hd)[c];
    // The lane group's kDepth rows of keys or values from `first` on (zeros past the split).
    auto fetch = [&](float4 (&r)[kDepth], const KV* base, int64_t first) {
#pragma unroll
        for (int u = 0; u < kDepth; ++u) {
            const int64_t j = first + u * kSlots + slot;
            r[u] = j < n ? launch::load4(base + ((j0 + j) * n_kv_heads + kvh) * hd + 4 * c) : make_float4(0, 0, 0, 0);
        }
    };
    for (int64_t first = 0; first < n; first += kDepth * kSlots) {
        float4 r[kDepth];
        fetch(r, k, first);
#pragma unroll
        for (int u = 0; u < kDepth; ++u) {
            float d = q4.x * r[u].x + q4.y * r[u].y + q4.z * r[u].z + q4.w * r[u].w;
#pragma unroll
            for (int o = L / 2; o > 0; o /= 2) d += __shfl_xor_sync(0xffffffffu, d, o);
            const int64_t j = first + u * kSlots + slot;
            if (c == 0 && j < n) ss[j] = d * scale;
        }
    }
    __syncthreads();
    const Softmax sm = exp_in_place(ss, n, scratch);
    float4 acc = make_float4(0, 0, 0, 0);
    for (int64_t first = 0; first < n; first += kDepth * kSlots) {
        float4 r[kDepth];
        fetch(r, v, first);
#pragma unroll
        for (int u = 0; u < kDepth; ++u) {
            const int64_t j = first + u * kSlots + slot;
            const float p = j < n ? ss[j] : 0.0f;
            acc.x += p * r[u].x;
            acc.y += p * r[u].y;
            acc.z += p * r[u].z;
            acc.w += p * r[u].w;
        }
    }
    sums[slot * L + c] = acc;
    __syncthreads();
    const float* flat = reinterpret_cast<const float*>(sums);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float total = 0.0f;
        for (int g = 0; g < kSlots; ++g) total += flat[g * hd + d];
        part[d] = total;
    }
    if (threadIdx.x == 0) {
        part[hd] = n > 0 ? sm.max : -INFINITY;
        part[hd + 1] = sm.sum;
    }
}

// Heads the vector split takes: hd = 4·L with L a power of two from 1 to 32.
bool vector_split_takes(int64_t hd) { return hd >= 4 && hd <= 128 && (hd & (hd - 1)) == 0; }

// A kernel with `shared` bytes of dynamic shared memory (and `fixed` of its own) for
// `positions` positions: refused when the device has too little per block, else allowed.
template <typename K>
void fit_shared(K* kernel, size_t shared, size_t fixed, int64_t positions) {
    if (shared > static_cast<size_t>(max_shared_optin()) - fixed)
        throw Error(ErrorKind::input, "attention on the device: " + std::to_string(positions) +
                                          " positions need more shared memory than the device has per block");
    if (shared > 48 * 1024)
        check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)),
              "attention: shared memory size");
}

template <int ND, typename KV>
void launch_flash(const float* q, const KV* k, const KV* v, int64_t T, int64_t nh, int64_t nkv, int64_t hd,
                  int64_t pos0, float scale, float* out, cudaStream_t s) {
    const size_t shared = flash_shared_bytes(hd);
    static bool raised = false;  // per instantiation, once
    if (!raised) {
        check(cudaFuncSetAttribute(flash_attention_kernel<ND, KV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(flash_shared_bytes(kMaxFlashHeadDim))),
              "attention: shared memory size");
        raised = true;
    }
    const dim3 grid(static_cast<unsigned>((T + kBQ - 1) / kBQ), static_cast<unsigned>(nh));
    flash_attention_kernel<ND, KV><<<grid, kWarpsF * 32, shared, s>>>(q, k, v, T, nh, nkv, static_cast<int>(hd), pos0, scale, out);
}

template <int L, typename KV>
void launch_vector_split(size_t shared, int64_t positions, int64_t nh, const float* q, const KV* k, const KV* v,
                         int64_t nkv, int64_t pos0, const int64_t* d_pos, float scale, float* partials, cudaStream_t s) {
    fit_shared(decode_split_vector_kernel<L, KV>, shared, kDecodeThreads * sizeof(float), positions);
    launch::launch_after(decode_split_vector_kernel<L, KV>, dim3(static_cast<unsigned>(nh), kSplits), dim3(kDecodeThreads), shared,
                         s, "launching attention", q, k, v, nh, nkv, pos0, d_pos, scale, partials, launch::early_trigger());
}

// launch::attention with keys and values of type KV (float or BF16).
template <typename KV>
void attention_of(const float* q, const KV* k, const KV* v, int64_t T, int64_t n_heads, int64_t n_kv_heads,
                  int64_t head_dim, int64_t pos0, float* out, cudaStream_t s, const int64_t* d_pos,
                  int64_t max_positions, float* partials, AttentionMath math, DecodeAttention decode,
                  PrefillAttention prefill, void* scratch) {
    const float scale = 1.0f / sqrtf(static_cast<float>(head_dim));
    if (T == 1 && partials) {
        // Decode: the positions split over kSplits blocks per head, then merged.
        const int64_t positions = d_pos ? max_positions : pos0 + 1;
        const int64_t longest = attention_tiles::split_length(positions, kSplits);
        const dim3 merge_grid(static_cast<unsigned>(n_heads), static_cast<unsigned>((head_dim + 31) / 32));
        // Four of a row's values per load: 16 bytes of an f32 cache, 8 of a BF16 one.
        if (decode == DecodeAttention::vector && vector_split_takes(head_dim) && aligned16(q) &&
            aligned_to(k, 4 * sizeof(KV)) && aligned_to(v, 4 * sizeof(KV))) {
            const size_t shared = static_cast<size_t>(kDecodeThreads * 4 + longest) * sizeof(float);
            switch (head_dim) {
                case 4: launch_vector_split<1, KV>(shared, positions, n_heads, q, k, v, n_kv_heads, pos0, d_pos, scale, partials, s); break;
                case 8: launch_vector_split<2, KV>(shared, positions, n_heads, q, k, v, n_kv_heads, pos0, d_pos, scale, partials, s); break;
                case 16: launch_vector_split<4, KV>(shared, positions, n_heads, q, k, v, n_kv_heads, pos0, d_pos, scale, partials, s); break;
                case 32: launch_vector_split<8, KV>(shared, positions, n_heads, q, k, v, n_kv_heads, pos0, d_pos, scale, partials, s); break;
                case 64: launch_vector_split<16, KV>(shared, positions, n_heads, q, k, v, n_kv_heads, pos0, d_pos, scale, partials, s); break;
                default: launch_vector_split<32, KV>(shared, positions, n_heads, q, k, v, n_kv_heads, pos0, d_pos, scale, partials, s); break;
            }
            launch::launch_after(decode_merge_kernel, merge_grid, dim3(kDecodeThreads), 0, s, "launching attention",
                                 static_cast<const float*>(partials), head_dim, out, launch::early_trigger());
            return;
        }
        const bool early = launch::early_trigger();
        if constexpr (std::is_same_v<KV, float>) {
            // A warp a split: at most 64 positions a split (4,096 in all), heads of at most 128.
            if (decode == DecodeAttention::warp && head_dim <= 128 && positions <= 64 * kSplits) {
                const int64_t warps_per_block = kDecodeThreads / 32;
                const dim3 grid(static_cast<unsigned>((n_heads * kSplits + warps_per_block - 1) / warps_per_block));
                launch::launch_early_if(early, decode_split_warp_kernel, grid, dim3(kDecodeThreads), 0, s,
                                        "launching attention", q, k, v, n_heads, n_kv_heads, head_dim, pos0, d_pos,
                                        scale, partials);
                launch::launch_early_if(early, decode_merge_kernel, merge_grid, dim3(kDecodeThreads), 0, s,
                                        "launching attention", static_cast<const float*>(partials), head_dim, out,
                                        false);
                return;
            }
        }
        const size_t shared = static_cast<size_t>(head_dim + longest) * sizeof(float);
        const dim3 split_grid(static_cast<unsigned>(n_heads), kSplits);
        if (decode == DecodeAttention::merged) {
            fit_shared(decode_split_merged_kernel<KV>, shared,
                       kDecodeThreads * sizeof(float) + sizeof(decode_attn::MergeShared) + 16, positions);
            launch::launch_early_if(early, decode_split_merged_kernel<KV>, split_grid, dim3(kDecodeThreads), shared, s,
                                    "launching attention", q, k, v, n_heads, n_kv_heads, head_dim, pos0, d_pos, scale,
                                    partials, launch::attention_partial_counters(partials, n_heads, head_dim), out);
            launch::count(launch::Counted::merged_attention);
            return;
        }
        fit_shared(decode_split_kernel<KV>, shared, kDecodeThreads * sizeof(float), positions);
        launch::launch_early_if(early, decode_split_kernel<KV>, split_grid, dim3(kDecodeThreads), shared, s,
                                "launching attention", q, k, v, n_heads, n_kv_heads, head_dim, pos0, d_pos, scale, partials);
        launch::launch_early_if(early, decode_merge_kernel, merge_grid, dim3(kDecodeThreads), 0, s, "launching attention",
                                static_cast<const float*>(partials), head_dim, out, false);
        return;
    }
    const KvType kv = std::is_same_v<KV, __nv_bfloat16> ? KvType::bf16 : KvType::f32;
    const bool split = math == AttentionMath::split_bf16;
    if (!d_pos && math != AttentionMath::f32 && prefill != PrefillAttention::tiles &&
        launch::attention_pipelined(q, k, v, T, n_heads, n_kv_heads, head_dim, pos0, scale, out, split, kv, scratch, s,
                                    prefill == PrefillAttention::pipelined_wide))
        return;
    if (!d_pos && math != AttentionMath::f32 &&
        launch::attention_mma(q, k, v, T, n_heads, n_kv_heads, head_dim, pos0, scale, out, split, kv, s))
        return;
    if (!d_pos && head_dim <= kMaxFlashHeadDim) {
        switch ((head_dim + 31) / 32) {
            case 1: launch_flash<1, KV>(q, k, v, T, n_heads, n_kv_heads, head_dim, pos0, scale, out, s); break;
            case 2: launch_flash<2, KV>(q, k, v, T, n_heads, n_kv_heads, head_dim, pos0, scale, out, s); break;
            case 3: launch_flash<3, KV>(q, k, v, T, n_heads, n_kv_heads, head_dim, pos0, scale, out, s); break;
            default: launch_flash<4, KV>(q, k, v, T, n_heads, n_kv_heads, head_dim, pos0, scale, out, s); break;
        }
        check(cudaGetLastError(), "launching attention");
        return;
    }
    // Otherwise (wider heads, or several queries at a device-held position): one block per
    // (query, head) with every visible score in shared memory.
    const int64_t positions = d_pos ? max_positions : pos0 + T;
    const size_t shared = static_cast<size_t>(positions + head_dim) * sizeof(float);
    fit_shared(attention_kernel<KV>, shared, kThreads * sizeof(float), positions);
    attention_kernel<KV><<<static_cast<unsigned>(T * n_heads), kThreads, shared, s>>>(q, k, v, n_heads, n_kv_heads, head_dim,
                                                                                   pos0, d_pos, scale, out);
    check(cudaGetLastError(), "launching attention");
}

}  // namespace

int max_shared_optin() {
    static const int m = [] {
        int device = 0, v = 0;
        check(cudaGetDevice(&device), "attention: device");
        check(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "attention: shared memory");
        return v;
    }();
    return m;
}

int64_t launch::attention_partial_floats(int64_t n_heads, int64_t head_dim) {
    return n_heads * kSplits * (head_dim + 2) + n_heads;  // the splits' partials, then a counter a head
}

unsigned* launch::attention_partial_counters(float* partials, int64_t n_heads, int64_t head_dim) {
    return reinterpret_cast<unsigned*>(partials + n_heads * kSplits * (head_dim + 2));
}

void launch::attention(const float* q, const void* k, const void* v, int64_t T, int64_t n_heads, int64_t n_kv_heads,
                       int64_t head_dim, int64_t pos0, float* out, cudaStream_t s, const int64_t* d_pos,
                       int64_t max_positions, float* partials, AttentionMath math, DecodeAttention decode, KvType kv,
                       PrefillAttention prefill, void* scratch) {
    if (T <= 0) return;
    if (kv == KvType::bf16)
        attention_of(q, static_cast<const __nv_bfloat16*>(k), static_cast<const __nv_bfloat16*>(v), T, n_heads,
                     n_kv_heads, head_dim, pos0, out, s, d_pos, max_positions, partials, math, decode, prefill,
                     scratch);
    else
        attention_of(q, static_cast<const float*>(k), static_cast<const float*>(v), T, n_heads, n_kv_heads, head_dim,
                     pos0, out, s, d_pos, max_positions, partials, math, decode, prefill, scratch);
}

std::vector<float> causal_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, int64_t T, int64_t P, int64_t n_heads,
                                    int64_t n_kv_heads, int64_t head_dim, int64_t pos0, bool device_pos,
                                    AttentionMath math, DecodeAttention decode, KvType kv, PrefillAttention prefill) {
    if (n_kv_heads <= 0 || n_heads % n_kv_heads || pos0 + T > P ||
        static_cast<int64_t>(q.size()) != T * n_heads * head_dim ||
        static_cast<int64_t>(k.size()) != P * n_kv_heads * head_dim || k.size() != v.size())
        throw Error(ErrorKind::input, "causal_attention: inconsistent shapes");
    const bool f32 = kv == KvType::f32;
    Buffer<float> d_q(q.size()), d_k(f32 ? k.size() : 0), d_v(f32 ? v.size() : 0), d_out(q.size());
    Buffer<uint16_t> d_k16(kv == KvType::bf16 ? k.size() : 0), d_v16(kv == KvType::bf16 ? v.size() : 0);
    Buffer<float> d_partials(static_cast<size_t>(launch::attention_partial_floats(n_heads, head_dim)));
    Buffer<int64_t> d_pos(1);
    Buffer<unsigned char> d_scratch(prefill != PrefillAttention::tiles && math != AttentionMath::f32
                                        ? launch::pipelined_attention_scratch(T, n_heads, n_kv_heads, head_dim, pos0,
                                                                              math == AttentionMath::split_bf16, kv)
                                        : 0);
    upload(d_q, q.data(), q.size());
    if (kv == KvType::bf16) {
        std::vector<uint16_t> k16(k.size()), v16(v.size());
        for (size_t i = 0; i < k.size(); ++i) k16[i] = f32_to_bf16(k[i]);
        for (size_t i = 0; i < v.size(); ++i) v16[i] = f32_to_bf16(v[i]);
        upload(d_k16, k16.data(), k16.size());
        upload(d_v16, v16.data(), v16.size());
    } else {
        upload(d_k, k.data(), k.size());
        upload(d_v, v.data(), v.size());
    }
    upload(d_pos, &pos0, 1);
    check(cudaMemset(d_partials.ptr, 0, launch::attention_partial_floats(n_heads, head_dim) * sizeof(float)),
          "clearing the decode splits' counters");
    const void* keys = kv == KvType::bf16 ? static_cast<const void*>(d_k16.ptr) : d_k.ptr;
    const void* values = kv == KvType::bf16 ? static_cast<const void*>(d_v16.ptr) : d_v.ptr;
    // A decode launched twice on the same buffers, as each layer of a model's steps does: the
    // second must give the first's values (what a launch leaves behind, its counters, ready).
    std::vector<float> out, again;
    for (int run = 0; run < (T == 1 ? 2 : 1); ++run) {
        // Poisoned: every output must be written.
        check(cudaMemset(d_out.ptr, 0xff, q.size() * sizeof(float)), "poisoning the output");
        launch::attention(d_q.ptr, keys, values, T, n_heads, n_kv_heads, head_dim, pos0, d_out.ptr, nullptr,
                          device_pos ? d_pos.ptr : nullptr, P, d_partials.ptr, math, decode, kv, prefill,
                          d_scratch.ptr);
        check(cudaDeviceSynchronize(), "running attention");
        download(run == 0 ? out : again, d_out, q.size());
    }
    if (T == 1 && std::memcmp(out.data(), again.data(), out.size() * sizeof(float)) != 0)
        throw Error(ErrorKind::failure,
                    "causal_attention: a second decode launch on the same buffers gave other values");
    return out;
}

}  // namespace moe::cuda
