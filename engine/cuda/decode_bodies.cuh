// The work of the decode product kernels as device functions of a block's share of the rows,
// with the block's index b among nb blocks and its token t passed in: the launches of
// decode_kernels.cu and expert_kernels.cu (b = blockIdx.x, nb = gridDim.x, t = blockIdx.y)
// and the decode layer kernel (decode_layer.cu, all of a step's blocks at once) compute each
// row the same way, so they give the same values. For the .cu files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "engine/cuda/decode_kernels.h"
#include "engine/cuda/row_math.cuh"
#include "engine/error.h"
#include "engine/moe_dispatch.h"

namespace moe::cuda::launch::decode_body {

constexpr int kWarps = kNormThreads / 32;  // one output row per warp

enum class WType : int { bf16, f16, f32 };

inline WType wtype(DType t, const char* what) {
    switch (t) {
        case DType::bf16:
            return WType::bf16;
        case DType::f16:
            return WType::f16;
        case DType::f32:
            return WType::f32;
        default:
            throw Error(ErrorKind::input,
                        std::string("the CUDA backend has no ") + what + " for " + dtype_name(t) + " weights");
    }
}

// Row o of W [*, n] (of type t): its first chunks fetched, then times x [n], by one warp.
template <bool S, int N>
__device__ inline void fetch(RowChunks<N>& c, const void* w, WType t, int64_t o, int64_t n, int lane) {
    switch (t) {
        case WType::bf16:
            fetch_row<S>(c, static_cast<const __nv_bfloat16*>(w) + o * n, n, lane);
            break;
        case WType::f16:
            fetch_row<S>(c, static_cast<const __half*>(w) + o * n, n, lane);
            break;
        default:
            fetch_row<S>(c, static_cast<const float*>(w) + o * n, n, lane);
            break;
    }
}
template <bool S, int N>
__device__ inline float dot(RowChunks<N>& c, const void* w, WType t, int64_t o, const float* x, int64_t n, int lane) {
    switch (t) {
        case WType::bf16:
            return dot_row<S>(c, static_cast<const __nv_bfloat16*>(w) + o * n, x, n, lane);
        case WType::f16:
            return dot_row<S>(c, static_cast<const __half*>(w) + o * n, x, n, lane);
        default:
            return dot_row<S>(c, static_cast<const float*>(w) + o * n, x, n, lane);
    }
}

// The parts of a fused product by value, as a kernel's argument: end[j] is the first item
// after part j (an item is a row, or a pair of rows of a rotated part).
struct Parts {
    const void* w[kMaxGemvParts];
    const void* w2[kMaxGemvParts];
    WType type[kMaxGemvParts];
    int64_t end[kMaxGemvParts];
    float* y[kMaxGemvParts];
    int64_t ldy[kMaxGemvParts];
    bool accumulate[kMaxGemvParts];
    const int64_t* row0[kMaxGemvParts];
    const float* cos[kMaxGemvParts];  // set: rows of the part are pairs (o, o + half) of a head, rotated
    const float* sin[kMaxGemvParts];
    int64_t half[kMaxGemvParts];
    int n;
    bool let_next;  // let_next_start
};

// The parts as the kernels take them (checked: at most kMaxGemvParts, rotated parts plain
// and of whole heads of an even width).
inline Parts make_parts(const GemvPart* parts, int n_parts) {
    if (n_parts < 0 || n_parts > kMaxGemvParts)
        throw Error(ErrorKind::failure, "fused matrix-vector products: " + std::to_string(n_parts) +
                                            " parts (at most " + std::to_string(kMaxGemvParts) + ")");
    Parts p{};
    int64_t rows = 0;
    for (int j = 0; j < n_parts; ++j) {
        const GemvPart& g = parts[j];
        if (g.rope_cos && (g.w2 || g.accumulate || g.head_dim < 2 || g.head_dim % 2 || g.rows % g.head_dim))
            throw Error(ErrorKind::failure,
                        "fused matrix-vector products: the rotary embedding needs a plain part of whole heads "
                        "of an even width");
        rows += g.rope_cos ? g.rows / 2 : g.rows;  // a rotated part's items are pairs of rows
        p.cos[j] = g.rope_cos;
        p.sin[j] = g.rope_sin;
        p.half[j] = g.head_dim / 2;
        p.w[j] = g.w;
        p.w2[j] = g.w2;
        p.type[j] = wtype(g.type, "matrix-vector product");
        p.end[j] = rows;
        p.y[j] = g.y;
        p.ldy[j] = g.ldy;
        p.accumulate[j] = g.accumulate;
        p.row0[j] = g.row0;
    }
    p.n = n_parts;
    return p;
}

__host__ __device__ inline int64_t items(const Parts& p) {
    return p.n > 0 ? p.end[p.n - 1] : 0;
}

__device__ inline int64_t type_bytes(WType t) {
    return t == WType::f32 ? 4 : 2;
}

// The row of part j that its i-th item computes: i itself, or for a rotated part (pairs of
// rows o, o + half per head) the first row of the i-th pair.
__device__ inline int64_t row_of(const Parts& p, int j, int64_t i) {
    if (!p.cos[j]) return i;
    const int64_t half = p.half[j];
    return (i / half) * 2 * half + i % half;
}

// Item r's rows asked into L2 by the warp (no register waits for them).
__device__ inline void gemv_prefetch_item(const Parts& p, int64_t in, int64_t r) {
    const int lane = threadIdx.x % 32;
    if (r >= items(p)) return;
    int j = 0;
    while (j < p.n && r >= p.end[j]) ++j;
    const int64_t o = row_of(p, j, r - (j ? p.end[j - 1] : 0)), bytes = in * type_bytes(p.type[j]);
    prefetch_l2(static_cast<const char*>(p.w[j]) + o * bytes, bytes, lane);
    if (p.w2[j]) prefetch_l2(static_cast<const char*>(p.w2[j]) + o * bytes, bytes, lane);
    if (p.cos[j]) prefetch_l2(static_cast<const char*>(p.w[j]) + (o + p.half[j]) * bytes, bytes, lane);
}

// The first item of this warp of block b: its rows asked into L2 (before what the products
// read is there).
__device__ inline void gemv_prefetch(const Parts& p, int64_t in, int64_t b) {
    gemv_prefetch_item(p, in, b * kWarps + threadIdx.x / 32);
}

// What both one-launch decode kernels (decode_layer.cu, decode_stream.cu) take of a
// DecodeLayer as it is: their arguments derive from it.
struct LayerInputs {
    float* x;
    int64_t H;
    float eps;
    const float* attn_norm;
    const float* q;
    const float* kc;
    const float* vc;
    int64_t nh, nkv, hd, pos0;
    const int64_t* d_pos;
    float scale;
    float* partials;
    float* attn;
    const float* ffn_norm;
    float* normed;
    bool moe;
    unsigned long long* stamps;
    // MoE: the routing and the routed experts.
    const float* ffn_h;
    const float* logits;
    router_core::Args route;
    RouteOutputs out;
    const uint8_t* dropped;
    int64_t k, F;
    const void* const* gate;
    const void* const* up;
    const void* const* down;
    float* eh;
};

inline LayerInputs inputs_of(const DecodeLayer& L) {
    LayerInputs a{};
    a.x = L.x;
    a.H = L.H;
    a.eps = L.eps;
    a.attn_norm = L.attn_norm;
    a.q = L.q;
    a.kc = L.k_cache;
    a.vc = L.v_cache;
    a.nh = L.nh;
    a.nkv = L.nkv;
    a.hd = L.hd;
    a.pos0 = L.pos0;
    a.d_pos = L.d_pos;
    a.scale = 1.0f / sqrtf(static_cast<float>(L.hd));
    a.partials = L.partials;
    a.attn = L.attn;
    a.ffn_norm = L.ffn_norm;
    a.normed = L.normed;
    a.moe = L.moe;
    a.stamps = L.stamps;
    a.ffn_h = L.ffn_h;
    a.logits = L.router_logits;
    a.route = L.route;
    a.out = L.out;
    a.dropped = L.dropped;
    a.k = L.k;
    a.F = L.F;
    a.gate = L.gate;
    a.up = L.up;
    a.down = L.down;
    a.eh = L.eh;
    return a;
}

// Block b of nb, token t of x [*, in]: the token's input (normalised first when norm is set,
// and then written to normed by block 0 when normed is set) in shared memory xs [in], then
// each warp takes every (nb · kWarps)-th item. All threads of the block call it.
template <bool S, int MINB, bool AHEAD = false>
__device__ inline void gemv_rows(const float* x, int64_t in, const float* norm, float eps, float* normed,
                                 const Parts& p, int64_t b, int64_t nb, int64_t t, float* xs) {
    const int lane = threadIdx.x % 32;
    const int64_t stride = nb * kWarps, rows = items(p);
    int64_t r = b * kWarps + threadIdx.x / 32;
    const bool write = normed && b == 0;
    if (b * kWarps >= rows && !write) return;  // the whole block: no item, nothing to write
    const float* xr = x + t * in;
    for (int64_t i = threadIdx.x; i < in; i += blockDim.x) xs[i] = xr[i];
    __syncthreads();
    if (norm) {
        const float scale = block_rms_scale(xs, in, eps);
        for (int64_t i = threadIdx.x; i < in; i += blockDim.x) {
            const float v = rms_apply(xs[i], scale, norm[i]);
            xs[i] = v;
            if (write) normed[t * in + i] = v;
        }
        __syncthreads();
    }
    int j = 0;
    while (j < p.n && r >= p.end[j]) ++j;
    RowChunks<kDecodeChunks<MINB>> a, c;
    for (; r < rows; r += stride) {
        if constexpr (AHEAD) gemv_prefetch_item(p, in, r + stride);  // the next item, while this one is read
        while (r >= p.end[j]) ++j;
        if (p.cos[j]) {  // rows o and o + half of one head, rotated
            const int64_t i = r - (j ? p.end[j - 1] : 0), half = p.half[j], o = row_of(p, j, i);
            fetch<S>(a, p.w[j], p.type[j], o, in, lane);
            fetch<S>(c, p.w[j], p.type[j], o + half, in, lane);
            const float x1 = dot<S>(a, p.w[j], p.type[j], o, xs, in, lane);
            const float x2 = dot<S>(c, p.w[j], p.type[j], o + half, xs, in, lane);
            if (lane == 0) {
                const float cs = p.cos[j][t * half + i % half], sn = p.sin[j][t * half + i % half];
                float* y = p.y[j] + ((p.row0[j] ? *p.row0[j] : 0) + t) * p.ldy[j] + o;
                y[0] = __fsub_rn(__fmul_rn(x1, cs), __fmul_rn(x2, sn));
                y[half] = __fadd_rn(__fmul_rn(x2, cs), __fmul_rn(x1, sn));
            }
            continue;
        }
        const int64_t o = r - (j ? p.end[j - 1] : 0);
        fetch<S>(a, p.w[j], p.type[j], o, in, lane);
        if (p.w2[j]) fetch<S>(c, p.w2[j], p.type[j], o, in, lane);
        float v = dot<S>(a, p.w[j], p.type[j], o, xs, in, lane);
        if (p.w2[j]) v = silu_mul_rn(v, dot<S>(c, p.w2[j], p.type[j], o, xs, in, lane));
        if (lane == 0) {
            float* y = p.y[j] + ((p.row0[j] ? *p.row0[j] : 0) + t) * p.ldy[j] + o;
            *y = p.accumulate[j] ? __fadd_rn(*y, v) : v;
        }
    }
}

// Block b of nb for one slot of a small step, its expert e and its input x [H] known:
// x in shared memory xs [H], then h[f] = silu(gate_e[f]·x) · (up_e[f]·x) for every
// (nb · kWarps)-th f by each warp, both rows fetched before either product. All threads of
// the block call it.
template <typename W, bool S, int MINB, bool AHEAD = false>
__device__ inline void expert_gate_up_rows(const float* x, int64_t H, int32_t e, const void* const* gate,
                                           const void* const* up, int64_t F, float* h, int64_t b, int64_t nb,
                                           float* xs) {
    const int lane = threadIdx.x % 32;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) xs[i] = x[i];
    __syncthreads();
    const W* g_base = static_cast<const W*>(gate[e]);
    const W* u_base = static_cast<const W*>(up[e]);
    const int64_t stride = nb * kWarps;
    for (int64_t f = b * kWarps + threadIdx.x / 32; f < F; f += stride) {
        if constexpr (AHEAD)
            if (f + stride < F) {
                prefetch_l2(g_base + (f + stride) * H, H * static_cast<int64_t>(sizeof(W)), lane);
                prefetch_l2(u_base + (f + stride) * H, H * static_cast<int64_t>(sizeof(W)), lane);
            }
        RowChunks<kDecodeChunks<MINB>> g, u;
        fetch_row<S>(g, g_base + f * H, H, lane);
        fetch_row<S>(u, u_base + f * H, H, lane);
        const float gv = dot_row<S>(g, g_base + f * H, xs, H, lane);
        const float uv = dot_row<S>(u, u_base + f * H, xs, H, lane);
        if (lane == 0) h[f] = silu_mul_rn(gv, uv);
    }
}

// Block b of nb for slot `slot` of a small step with k slots a token: expert_gate_up_rows of
// the slot's expert experts[slot] on its token's input x [slot / k] into h [slot]. A dropped
// slot computes nothing. All threads of the block call it.
template <typename W, bool S, int MINB, bool AHEAD = false>
__device__ inline void gate_up_rows(const float* x, int64_t H, int64_t k, const int32_t* experts,
                                    const uint8_t* dropped, const void* const* gate, const void* const* up, int64_t F,
                                    float* h, int64_t b, int64_t nb, int64_t slot, float* xs) {
    if (dispatch::slot_dropped(experts, dropped, slot)) return;
    expert_gate_up_rows<W, S, MINB, AHEAD>(x + (slot / k) * H, H, experts[slot], gate, up, F, h + slot * F, b, nb, xs);
}

// Part p of output row i of token t's down products: 0 the shared experts' row (null when
// they do not run), 1 + r slot r's expert row (null when the slot is dropped).
template <typename W>
__device__ inline void down_part(int64_t p, int64_t i, int64_t t, int64_t k, int64_t F, const int32_t* experts,
                                 const uint8_t* dropped, const void* const* down, const W* shared_down, int64_t Fs,
                                 const W*& row, int64_t& n) {
    if (p == 0) {
        row = shared_down ? shared_down + i * Fs : nullptr;
        n = Fs;
    } else {
        const int64_t slot = t * k + p - 1;
        row = dispatch::slot_dropped(experts, dropped, slot) ? nullptr
                                                             : static_cast<const W*>(down[experts[slot]]) + i * F;
        n = F;
    }
}

// The shared experts' down row of this warp's first output row in block b, into L2: it does
// not depend on the routing.
template <typename W>
__device__ inline void down_prefetch(const W* shared_down, int64_t Fs, int64_t H, int64_t b) {
    const int64_t first = b * kWarps + threadIdx.x / 32;
    if (shared_down && first < H)
        prefetch_l2(shared_down + first * Fs, Fs * static_cast<int64_t>(sizeof(W)), threadIdx.x % 32);
}

// The first routed experts' down rows (slots 0 and 1) of this warp's first output row in
// block b, into L2, once the routing is known.
template <typename W>
__device__ inline void down_prefetch_routed(const int32_t* experts, const uint8_t* dropped, const void* const* down,
                                            int64_t k, int64_t F, int64_t H, int64_t b, int64_t t) {
    const int64_t i = b * kWarps + threadIdx.x / 32;
    if (i >= H) return;
    for (int64_t r = 0; r < k && r < 2; ++r) {
        const int64_t slot = t * k + r;
        if (dispatch::slot_dropped(experts, dropped, slot)) continue;
        prefetch_l2(static_cast<const W*>(down[experts[slot]]) + i * F, F * static_cast<int64_t>(sizeof(W)),
                    threadIdx.x % 32);
    }
}

// Block b of nb, token t: the shared experts' down products alone, y[t, i] = shared_down[i] ·
// shared_h[t] for every (nb · kWarps)-th row i by each warp, each computed as down_rows computes
// it (the value down_rows then takes from y).
template <typename W, bool S, int MINB>
__device__ inline void shared_down_rows(const W* shared_down, const float* shared_h, int64_t Fs, int64_t H, float* y,
                                        int64_t b, int64_t nb, int64_t t) {
    const int lane = threadIdx.x % 32;
    for (int64_t i = b * kWarps + threadIdx.x / 32; i < H; i += nb * kWarps) {
        RowChunks<kDecodeChunks<MINB>> c;
        fetch_row<S>(c, shared_down + i * Fs, Fs, lane);
        const float v = dot_row<S>(c, shared_down + i * Fs, shared_h + t * Fs, Fs, lane);
        if (lane == 0) y[t * H + i] = v;
    }
}

// Block b of nb, token t: each warp takes every (nb · kWarps)-th output row i and adds to the
// residual x[t, i] the shared experts' row (when they run) and each slot's weighted expert
// row in rank order, two rows fetched at a time (launch::moe_down_combine). With shared_y, the
// shared experts' rows were computed before (shared_down_rows) and are taken from there: the
// same sums in the same order.
template <typename W, bool S, int MINB, bool AHEAD = false>
__device__ inline void down_rows(const float* h, int64_t k, int64_t F, const int32_t* experts, const uint8_t* dropped,
                                 const float* weights, const void* const* down, const W* shared_down,
                                 const float* shared_h, int64_t Fs, int64_t H, float* x, int64_t b, int64_t nb,
                                 int64_t t, const float* shared_y = nullptr) {
    const int lane = threadIdx.x % 32;
    const int64_t stride = nb * kWarps;
    for (int64_t i = b * kWarps + threadIdx.x / 32; i < H; i += stride) {
        float acc = shared_y ? shared_y[t * H + i] : 0.0f;
        for (int64_t p = shared_y ? 1 : 0; p <= k; p += 2) {
            // Parts p and p + 1: 0 the shared experts, 1 + r slot r.
            if constexpr (AHEAD)  // the next pair's rows, while this pair is read
                for (int64_t q = p + 2; q <= k && q < p + 4; ++q) {
                    const W* ahead = nullptr;
                    int64_t n = 0;
                    down_part(q, i, t, k, F, experts, dropped, down, shared_down, Fs, ahead, n);
                    if (ahead) prefetch_l2(ahead, n * static_cast<int64_t>(sizeof(W)), lane);
                }
            const W *row0 = nullptr, *row1 = nullptr;
            int64_t n0 = 0, n1 = 0;
            down_part(p, i, t, k, F, experts, dropped, down, shared_down, Fs, row0, n0);
            if (p + 1 <= k) down_part(p + 1, i, t, k, F, experts, dropped, down, shared_down, Fs, row1, n1);
            RowChunks<kDecodeChunks<MINB>> c0, c1;
            if (row0) fetch_row<S>(c0, row0, n0, lane);
            if (row1) fetch_row<S>(c1, row1, n1, lane);
            if (row0) {
                const float v = dot_row<S>(c0, row0, p == 0 ? shared_h + t * Fs : h + (t * k + p - 1) * F, n0, lane);
                acc = p == 0 ? v : __fadd_rn(acc, __fmul_rn(weights[t * k + p - 1], v));
            }
            if (row1)
                acc =
                    __fadd_rn(acc, __fmul_rn(weights[t * k + p], dot_row<S>(c1, row1, h + (t * k + p) * F, n1, lane)));
        }
        if (lane == 0) x[t * H + i] = __fadd_rn(x[t * H + i], acc);
    }
}

}  // namespace moe::cuda::launch::decode_body
