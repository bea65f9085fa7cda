// Causal prefill attention on the tensor cores; see attention_mma.h.
//
// Block (tile of kBQ = 64 queries, head), four warps of 16 query rows. Key tiles of kBK = 64
// positions: queries, keys and values go to shared memory row-major as BF16 (and, split, the
// rounding residual of each as a second BF16 part); fragments come out with ldmatrix (the
// values' transposed); scores S = Q·Kᵀ and the output O += P·V are mma.sync m16n8k16 products
// with f32 accumulation, S and O held in registers in the accumulator layout, with a running
// maximum and sum per query row (flash-style). The score fragments become the A operand of
// P·V without leaving the registers: the accumulator of two neighbouring 8-key column tiles is
// the A fragment of one 16-key chunk.
//
// Split (the exact activations): a value x is taken as hi + lo, hi = bf16(x), lo = bf16(x - hi),
// and a product of two such values as hi·hi' + hi·lo' + lo·hi' (lo·lo' is below 2⁻¹⁶ of it):
// scores and output to about 2⁻¹⁶ of their terms for three times the tensor-core work.
#include "engine/cuda/attention_mma.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "engine/attention_tiles.h"
#include "engine/cuda/device.h"
#include "engine/cuda/row_math.cuh"

namespace moe::cuda::launch {

namespace {

constexpr int kBQ = 64, kBK = 64, kWarps = 4, kThreads = kWarps * 32;

// D += A·B, m16n8k16, BF16 inputs, f32 accumulator (the PTX ISA's fragment layouts).
__device__ inline void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two values as a BF16 pair (the first in the low half), rounded to nearest even; with lo,
// the pair of their rounding residuals too.
__device__ inline uint32_t pack(float x, float y) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
    return *reinterpret_cast<const uint32_t*>(&v);
}
__device__ inline void split_pack(float x, float y, uint32_t& hi, uint32_t& lo) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(x, y);
    hi = *reinterpret_cast<const uint32_t*>(&h);
    lo = pack(x - __low2float(h), y - __high2float(h));
}

// Four values as BF16 (8 bytes at hi) and, with lo, their rounding residuals (8 bytes at lo).
__device__ inline void store_parts(const float4& x, __nv_bfloat16* hi, __nv_bfloat16* lo) {
    uint32_t h0, h1, l0, l1;
    split_pack(x.x, x.y, h0, l0);
    split_pack(x.z, x.w, h1, l1);
    *reinterpret_cast<uint2*>(hi) = make_uint2(h0, h1);
    if (lo) *reinterpret_cast<uint2*>(lo) = make_uint2(l0, l1);
}

__device__ inline uint32_t smem_addr(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }
__device__ inline void ldmatrix4(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
__device__ inline void ldmatrix4_trans(uint32_t (&r)[4], const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

// d0 += A·B and d1 += A·B' for the B fragments of two neighbouring 8-column tiles that one
// ldmatrix.x4 reads at b (transposed for TRANS); split, also A·(B's lo part, lo_offset
// elements on) and (A's lo part a[1])·B: hi·hi' + hi·lo' + lo·hi'.
template <bool SPLIT, bool TRANS>
__device__ inline void mma_two_tiles(float (&d0)[4], float (&d1)[4], const uint32_t (&a)[2][4], const __nv_bfloat16* b,
                                     int lo_offset) {
    uint32_t r[4];
    if constexpr (TRANS) ldmatrix4_trans(r, b);
    else ldmatrix4(r, b);
    mma(d0, a[0], r[0], r[1]);
    mma(d1, a[0], r[2], r[3]);
    if constexpr (SPLIT) {
        uint32_t rl[4];
        if constexpr (TRANS) ldmatrix4_trans(rl, b + lo_offset);
        else ldmatrix4(rl, b + lo_offset);
        mma(d0, a[0], rl[0], rl[1]);
        mma(d1, a[0], rl[2], rl[3]);
        mma(d0, a[1], r[0], r[1]);
        mma(d1, a[1], r[2], r[3]);
    }
}

template <int HD, bool SPLIT>
struct Layout {
    static constexpr int kParts = SPLIT ? 2 : 1;
    static constexpr int kLd = HD + 8;    // BF16 per row (16-byte aligned, conflict-free ldmatrix)
    static constexpr int kQ = kBQ * kLd;  // one part of the query tile
    static constexpr int kK = kBK * kLd;
    static constexpr int kV = kBK * kLd;
    static constexpr size_t kBytes = static_cast<size_t>(kParts) * (kQ + kK + kV) * sizeof(__nv_bfloat16);
};

template <int HD, bool SPLIT, typename KV>
__global__ void __launch_bounds__(kThreads) mma_attention_kernel(const float* q, const KV* k, const KV* v, int64_t T,
                                                                  int64_t n_heads, int64_t n_kv_heads, int64_t pos0, float scale,
                                                                  int64_t n_qtiles, float* out) {
    using L = Layout<HD, SPLIT>;
    extern __shared__ __align__(16) unsigned char smem[];
    __nv_bfloat16* qs = reinterpret_cast<__nv_bfloat16*>(smem);  // [parts][kBQ][kLd]
    __nv_bfloat16* ks = qs + L::kParts * L::kQ;                   // [parts][kBK][kLd]
    __nv_bfloat16* vs = ks + L::kParts * L::kK;                   // [parts][kBK][kLd]
    // The longest tiles (latest queries) first.
    const int64_t q0 = (n_qtiles - 1 - static_cast<int64_t>(blockIdx.x)) * kBQ, h = blockIdx.y;
    const int64_t kvh = h / (n_heads / n_kv_heads), P = pos0 + T;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
    constexpr int kVec = HD / 4;  // float4s per row

    for (int idx = threadIdx.x; idx < kBQ * kVec; idx += kThreads) {
        const int r = idx / kVec, d = (idx % kVec) * 4;
        float4 x = make_float4(0.f, 0.f, 0.f, 0.f);
        if (q0 + r < T) x = *reinterpret_cast<const float4*>(q + ((q0 + r) * n_heads + h) * HD + d);
        __nv_bfloat16* hi = qs + r * L::kLd + d;
        store_parts(x, hi, SPLIT ? hi + L::kQ : nullptr);
    }

    float o[HD / 8][4];
#pragma unroll
    for (int n = 0; n < HD / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g and g + 8 of the warp's 16
    const int row = warp * 16 + g;
    const int64_t qi[2] = {q0 + row, q0 + row + 8};

    const int64_t n_tiles = attention_tiles::key_tiles(q0, kBQ, T, pos0, kBK);
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
        const int64_t k0 = tile * kBK;
        __syncthreads();  // the previous tile is no longer read (and the queries are in)
        for (int idx = threadIdx.x; idx < kBK * kVec; idx += kThreads) {
            const int j = idx / kVec, d = (idx % kVec) * 4;
            float4 kx = make_float4(0.f, 0.f, 0.f, 0.f), vx = kx;
            if (k0 + j < P) {
                const int64_t at = ((k0 + j) * n_kv_heads + kvh) * HD + d;
                kx = load4(k + at);  // a BF16 cache's values come back as they are: lo is 0
                vx = load4(v + at);
            }
            __nv_bfloat16* kh = ks + j * L::kLd + d;
            __nv_bfloat16* vh = vs + j * L::kLd + d;
            store_parts(kx, kh, SPLIT ? kh + L::kK : nullptr);
            store_parts(vx, vh, SPLIT ? vh + L::kV : nullptr);
        }
        __syncthreads();

        // Scores of the warp's 16 rows against the tile's keys: kBK / 8 accumulator tiles.
        float s[kBK / 8][4];
#pragma unroll
        for (int n = 0; n < kBK / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
        for (int kc = 0; kc < HD / 16; ++kc) {
            uint32_t a[2][4];
#pragma unroll
            for (int p = 0; p < L::kParts; ++p)
                ldmatrix4(a[p], qs + p * L::kQ + (warp * 16 + lane % 16) * L::kLd + kc * 16 + (lane / 16) * 8);
#pragma unroll
            for (int n = 0; n < kBK / 8; n += 2) {  // key tiles n and n + 1
                const __nv_bfloat16* kb = ks + (n * 8 + lane % 8 + (lane / 16) * 8) * L::kLd + kc * 16 + ((lane / 8) % 2) * 8;
                mma_two_tiles<SPLIT, false>(s[n], s[n + 1], a, kb, L::kK);
            }
        }

        // Online softmax per row: scaled and masked scores, the new maximum over the quad of
        // lanes holding the row, the earlier output and sum rescaled.
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            float mx = -INFINITY;
#pragma unroll
            for (int n = 0; n < kBK / 8; ++n)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const int64_t key = k0 + n * 8 + 2 * c + e;
                    const bool visible = qi[i] < T && key <= pos0 + qi[i];
                    const float x = visible ? s[n][2 * i + e] * scale : -INFINITY;
                    s[n][2 * i + e] = x;
                    mx = fmaxf(mx, x);
                }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m[i], mx);
            const float alpha = m_new == -INFINITY ? 1.0f : expf(m[i] - m_new);
            float sum = 0.f;
#pragma unroll
            for (int n = 0; n < kBK / 8; ++n)
#pragma unroll
                for (int e = 0; e < 2; ++e) {
                    const float p = m_new == -INFINITY ? 0.0f : expf(s[n][2 * i + e] - m_new);
                    s[n][2 * i + e] = p;
                    sum += p;
                }
            l[i] = l[i] * alpha + sum;  // this lane's share of the row; the quad's summed at the end
            m[i] = m_new;
#pragma unroll
            for (int n = 0; n < HD / 8; ++n) {
                o[n][2 * i] *= alpha;
                o[n][2 * i + 1] *= alpha;
            }
        }

        // O += P·V over the tile's keys in chunks of 16.
#pragma unroll
        for (int kc = 0; kc < kBK / 16; ++kc) {
            uint32_t a[2][4];
            if constexpr (SPLIT) {
                split_pack(s[2 * kc][0], s[2 * kc][1], a[0][0], a[1][0]);
                split_pack(s[2 * kc][2], s[2 * kc][3], a[0][1], a[1][1]);
                split_pack(s[2 * kc + 1][0], s[2 * kc + 1][1], a[0][2], a[1][2]);
                split_pack(s[2 * kc + 1][2], s[2 * kc + 1][3], a[0][3], a[1][3]);
            } else {
                a[0][0] = pack(s[2 * kc][0], s[2 * kc][1]);
                a[0][1] = pack(s[2 * kc][2], s[2 * kc][3]);
                a[0][2] = pack(s[2 * kc + 1][0], s[2 * kc + 1][1]);
                a[0][3] = pack(s[2 * kc + 1][2], s[2 * kc + 1][3]);
            }
#pragma unroll
            for (int n = 0; n < HD / 8; n += 2) {  // output dimension tiles n and n + 1
                const __nv_bfloat16* vb = vs + (kc * 16 + lane % 8 + ((lane / 8) % 2) * 8) * L::kLd + n * 8 + (lane / 16) * 8;
                mma_two_tiles<SPLIT, true>(o[n], o[n + 1], a, vb, L::kV);
            }
        }
    }

#pragma unroll
    for (int i = 0; i < 2; ++i) {
        float sum = l[i];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        if (qi[i] >= T) continue;
        const float inv = 1.0f / sum;
        float* orow = out + (qi[i] * n_heads + h) * HD + 2 * c;
#pragma unroll
        for (int n = 0; n < HD / 8; ++n)
            *reinterpret_cast<float2*>(orow + n * 8) = make_float2(o[n][2 * i] * inv, o[n][2 * i + 1] * inv);
    }
}

template <int HD, bool SPLIT, typename KV>
void launch_mma(const float* q, const KV* k, const KV* v, int64_t T, int64_t nh, int64_t nkv, int64_t pos0, float scale,
                float* out, cudaStream_t s) {
    using L = Layout<HD, SPLIT>;
    static bool raised = false;  // per instantiation, once
    if (!raised) {
        check(cudaFuncSetAttribute(mma_attention_kernel<HD, SPLIT, KV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   static_cast<int>(L::kBytes)),
              "attention on the tensor cores: shared memory size");
        raised = true;
    }
    const int64_t n_qtiles = (T + kBQ - 1) / kBQ;
    const dim3 grid(static_cast<unsigned>(n_qtiles), static_cast<unsigned>(nh));
    mma_attention_kernel<HD, SPLIT, KV><<<grid, kThreads, L::kBytes, s>>>(q, k, v, T, nh, nkv, pos0, scale, n_qtiles, out);
    check(cudaGetLastError(), "launching attention on the tensor cores");
}


template <typename KV>
void launch_mma_of(const float* q, const KV* k, const KV* v, int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim,
                   int64_t pos0, float scale, float* out, bool split, cudaStream_t s) {
    if (head_dim == 128) {
        if (split) launch_mma<128, true>(q, k, v, T, n_heads, n_kv_heads, pos0, scale, out, s);
        else launch_mma<128, false>(q, k, v, T, n_heads, n_kv_heads, pos0, scale, out, s);
    } else {
        if (split) launch_mma<64, true>(q, k, v, T, n_heads, n_kv_heads, pos0, scale, out, s);
        else launch_mma<64, false>(q, k, v, T, n_heads, n_kv_heads, pos0, scale, out, s);
    }
}

}  // namespace

bool attention_mma(const float* q, const void* k, const void* v, int64_t T, int64_t n_heads, int64_t n_kv_heads,
                   int64_t head_dim, int64_t pos0, float scale, float* out, bool split, KvType kv, cudaStream_t s) {
    if ((head_dim != 64 && head_dim != 128) || !aligned16(q) || !aligned16(k) || !aligned16(v) || !aligned16(out) ||
        n_kv_heads <= 0 || n_heads % n_kv_heads)
        return false;
    if (kv == KvType::bf16)
        launch_mma_of(q, static_cast<const __nv_bfloat16*>(k), static_cast<const __nv_bfloat16*>(v), T, n_heads, n_kv_heads,
                      head_dim, pos0, scale, out, split, s);
    else
        launch_mma_of(q, static_cast<const float*>(k), static_cast<const float*>(v), T, n_heads, n_kv_heads, head_dim, pos0,
                      scale, out, split, s);
    return true;
}

}  // namespace moe::cuda::launch
