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
// The pipelined kernel (attention_pipelined) computes the same with its operands rounded
// before the launch: its tiles come into shared memory through cp.async, two stages of key and
// value tiles, the next in flight while the warps work on this one. Wide, its warps take 32
// query rows each (a block 128 queries), each fragment of keys and values going into two
// products; each row's sums stay the same.
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
#include "engine/cuda/launch.h"
#include "engine/cuda/mma.cuh"
#include "engine/cuda/row_math.cuh"

namespace moe::cuda::launch {

namespace {

constexpr int kBQ = 64, kBK = 64, kWarps = 4, kThreads = kWarps * 32;

using namespace tc;

// Four values as BF16 (8 bytes at hi) and, with lo, their rounding residuals (8 bytes at lo).
__device__ inline void store_parts(const float4& x, __nv_bfloat16* hi, __nv_bfloat16* lo) {
    uint32_t h0, h1, l0, l1;
    split_pack(x.x, x.y, h0, l0);
    split_pack(x.z, x.w, h1, l1);
    *reinterpret_cast<uint2*>(hi) = make_uint2(h0, h1);
    if (lo) *reinterpret_cast<uint2*>(lo) = make_uint2(l0, l1);
}

// The B fragments of two neighbouring 8-column tiles that one ldmatrix.x4 reads at b
// (transposed for TRANS), and with BLO those of B's lo part (lo_offset elements on) into rl.
template <bool BLO, bool TRANS>
__device__ inline void load_b_pair(uint32_t (&r)[4], uint32_t (&rl)[4], const __nv_bfloat16* b, int lo_offset) {
    if constexpr (TRANS) ldmatrix4_trans(r, b);
    else
        ldmatrix4(r, b);
    if constexpr (BLO) {
        if constexpr (TRANS) ldmatrix4_trans(rl, b + lo_offset);
        else ldmatrix4(rl, b + lo_offset);
    }
}

// d0 += A·B and d1 += A·B' for those fragments (r); with B's lo part (BLO, rl) also A·B_lo,
// and with A's lo part (ALO, a[1]) also A_lo·B: hi·hi' + hi·lo' + lo·hi', in that order.
template <bool ALO, bool BLO>
__device__ inline void mma_pair(float (&d0)[4], float (&d1)[4], const uint32_t (&a)[2][4], const uint32_t (&r)[4],
                                const uint32_t (&rl)[4]) {
    mma(d0, a[0], r[0], r[1]);
    mma(d1, a[0], r[2], r[3]);
    if constexpr (BLO) {
        mma(d0, a[0], rl[0], rl[1]);
        mma(d1, a[0], rl[2], rl[3]);
    }
    if constexpr (ALO) {
        mma(d0, a[1], r[0], r[1]);
        mma(d1, a[1], r[2], r[3]);
    }
}

// A warp's 16 query rows (g and g + 8 of each lane's quad): the output in the accumulator
// layout, the running maximum and this lane's share of the running sum of rows g and g + 8.
template <int HD>
struct RowState {
    float o[HD / 8][4];
    float m[2], l[2];
    __device__ void clear() {
#pragma unroll
        for (int n = 0; n < HD / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
        m[0] = m[1] = -INFINITY;
        l[0] = l[1] = 0.f;
    }
};

// Scores of the warp's MT tiles of 16 query rows (from row0 of the query tile qs; its lo part
// q_lo elements on, when QLO) against the BK keys of ks (lo part k_lo on, when KLO), rows of ld
// elements; each fragment of the keys read once for all MT row tiles. Row tiles that are not
// live see none of the keys: left alone.
template <int HD, int BK, int MT, bool QLO, bool KLO>
__device__ inline void tile_scores(float (&s)[MT][BK / 8][4], const __nv_bfloat16* qs, int q_lo,
                                   const __nv_bfloat16* ks, int k_lo, int ld, int row0, int lane,
                                   const bool (&live)[MT]) {
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int n = 0; n < BK / 8; ++n) s[m][n][0] = s[m][n][1] = s[m][n][2] = s[m][n][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < HD / 16; ++kc) {
        uint32_t a[MT][2][4];
#pragma unroll
        for (int m = 0; m < MT; ++m) {
            if (!live[m]) continue;
            const __nv_bfloat16* qa = qs + (row0 + m * 16 + lane % 16) * ld + kc * 16 + (lane / 16) * 8;
            ldmatrix4(a[m][0], qa);
            if constexpr (QLO) ldmatrix4(a[m][1], qa + q_lo);
        }
#pragma unroll
        for (int n = 0; n < BK / 8; n += 2) {  // key tiles n and n + 1
            const __nv_bfloat16* kb = ks + (n * 8 + lane % 8 + (lane / 16) * 8) * ld + kc * 16 + ((lane / 8) % 2) * 8;
            uint32_t r[4], rl[4];
            load_b_pair<KLO, false>(r, rl, kb, k_lo);
#pragma unroll
            for (int m = 0; m < MT; ++m)
                if (live[m]) mma_pair<QLO, KLO>(s[m][n], s[m][n + 1], a[m], r, rl);
        }
    }
}

// Online softmax per row over a tile of BK keys from k0: scaled and masked scores, the new
// maximum over the quad of lanes holding the row, the earlier output and sum rescaled; s
// becomes the probabilities.
template <int HD, int BK>
__device__ inline void tile_softmax(float (&s)[BK / 8][4], RowState<HD>& st, int64_t k0, const int64_t (&qi)[2],
                                    int64_t T, int64_t pos0, float scale, int c) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        float mx = -INFINITY;
#pragma unroll
        for (int n = 0; n < BK / 8; ++n)
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
        const float m_new = fmaxf(st.m[i], mx);
        const float alpha = m_new == -INFINITY ? 1.0f : expf(st.m[i] - m_new);
        float sum = 0.f;
#pragma unroll
        for (int n = 0; n < BK / 8; ++n)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
                const float p = m_new == -INFINITY ? 0.0f : expf(s[n][2 * i + e] - m_new);
                s[n][2 * i + e] = p;
                sum += p;
            }
        st.l[i] = st.l[i] * alpha + sum;  // this lane's share of the row; the quad's summed at the end
        st.m[i] = m_new;
#pragma unroll
        for (int n = 0; n < HD / 8; ++n) {
            st.o[n][2 * i] *= alpha;
            st.o[n][2 * i + 1] *= alpha;
        }
    }
}

// O += P·V over the tile's BK keys in chunks of 16 for the warp's MT row tiles: the
// probabilities as BF16 (split into two parts when PLO), the values of vs (lo part v_lo on,
// when VLO), each fragment of the values read once for all MT row tiles. The score fragments
// are the A operand without leaving the registers: the accumulators of two neighbouring 8-key
// column tiles are the A fragment of one 16-key chunk. Row tiles that are not live are left alone.
template <int HD, int BK, int MT, bool PLO, bool VLO>
__device__ inline void tile_values(RowState<HD> (&st)[MT], const float (&s)[MT][BK / 8][4], const __nv_bfloat16* vs,
                                   int v_lo, int ld, int lane, const bool (&live)[MT]) {
#pragma unroll
    for (int kc = 0; kc < BK / 16; ++kc) {
        uint32_t a[MT][2][4];
#pragma unroll
        for (int m = 0; m < MT; ++m) {
            if (!live[m]) continue;
            const float(&p)[BK / 8][4] = s[m];
            if constexpr (PLO) {
                split_pack(p[2 * kc][0], p[2 * kc][1], a[m][0][0], a[m][1][0]);
                split_pack(p[2 * kc][2], p[2 * kc][3], a[m][0][1], a[m][1][1]);
                split_pack(p[2 * kc + 1][0], p[2 * kc + 1][1], a[m][0][2], a[m][1][2]);
                split_pack(p[2 * kc + 1][2], p[2 * kc + 1][3], a[m][0][3], a[m][1][3]);
            } else {
                a[m][0][0] = pack(p[2 * kc][0], p[2 * kc][1]);
                a[m][0][1] = pack(p[2 * kc][2], p[2 * kc][3]);
                a[m][0][2] = pack(p[2 * kc + 1][0], p[2 * kc + 1][1]);
                a[m][0][3] = pack(p[2 * kc + 1][2], p[2 * kc + 1][3]);
            }
        }
#pragma unroll
        for (int n = 0; n < HD / 8; n += 2) {  // output dimension tiles n and n + 1
            const __nv_bfloat16* vb = vs + (kc * 16 + lane % 8 + ((lane / 8) % 2) * 8) * ld + n * 8 + (lane / 16) * 8;
            uint32_t r[4], rl[4];
            load_b_pair<VLO, true>(r, rl, vb, v_lo);
#pragma unroll
            for (int m = 0; m < MT; ++m)
                if (live[m]) mma_pair<PLO, VLO>(st[m].o[n], st[m].o[n + 1], a[m], r, rl);
        }
    }
}

// The rows' outputs divided by their sums, for the queries before T.
template <int HD>
__device__ inline void write_rows(const RowState<HD>& st, const int64_t (&qi)[2], int64_t T, int64_t n_heads, int64_t h,
                                  int c, float* out) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
        float sum = st.l[i];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        if (qi[i] >= T) continue;
        const float inv = 1.0f / sum;
        float* orow = out + (qi[i] * n_heads + h) * HD + 2 * c;
#pragma unroll
        for (int n = 0; n < HD / 8; ++n)
            *reinterpret_cast<float2*>(orow + n * 8) = make_float2(st.o[n][2 * i] * inv, st.o[n][2 * i + 1] * inv);
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

// Each block rounds its query tile and each key and value tile to BF16 parts as it stores
// them in shared memory.
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

    RowState<HD> st[1];
    st[0].clear();
    const int row = warp * 16 + g;
    const int64_t qi[2] = {q0 + row, q0 + row + 8};
    const bool live[1] = {true};

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
        float s[1][kBK / 8][4];
        tile_scores<HD, kBK, 1, SPLIT, SPLIT>(s, qs, L::kQ, ks, L::kK, L::kLd, warp * 16, lane, live);
        tile_softmax<HD, kBK>(s[0], st[0], k0, qi, T, pos0, scale, c);
        tile_values<HD, kBK, 1, SPLIT, SPLIT>(st, s, vs, L::kV, L::kLd, lane, live);
    }
    write_rows<HD>(st[0], qi, T, n_heads, h, c, out);
}

// The pipelined kernel's shared memory: the query tile of BQ rows (QLO: two parts), then two
// stages of BK keys and BK values (KVLO: two parts each), each [rows][kLd] BF16.
template <int HD, int BK, int BQ, bool QLO, bool KVLO>
struct PipeLayout {
    static constexpr int kQParts = QLO ? 2 : 1, kKVParts = KVLO ? 2 : 1;
    static constexpr int kLd = HD + 8;
    static constexpr int kQ = BQ * kLd;                  // one part of the query tile
    static constexpr int kTile = BK * kLd;               // one part of a key or value tile
    static constexpr int kStage = 2 * kKVParts * kTile;  // keys' parts, then values' parts
    static constexpr size_t kBytes =
        (static_cast<size_t>(kQParts) * kQ + 2 * static_cast<size_t>(kStage)) * sizeof(__nv_bfloat16);
};

// Queries, keys and values rounded to BF16 parts before the launch (qh, ql [T, nh, hd]; kh, kl,
// vh, vl [pos0 + T, nkv, hd]; the lo parts only when QLO, KVLO): each block copies its query
// tile and then its key and value tiles into shared memory with cp.async, the next tile in
// flight while the warps work on this one. Each warp takes MT tiles of 16 query rows (a block
// kWarps · 16 · MT queries): every fragment of keys and values it reads from shared memory goes
// into MT products. With MT > 1 a row tile skips the key tiles none of its queries sees (the
// last ones of a block's diagonal): they would leave its state as it is.
template <int HD, int BK, int MT, bool QLO, bool KVLO>
__global__ void __launch_bounds__(kThreads)
    pipelined_attention_kernel(const __nv_bfloat16* qh, const __nv_bfloat16* ql, const __nv_bfloat16* kh,
                               const __nv_bfloat16* kl, const __nv_bfloat16* vh, const __nv_bfloat16* vl, int64_t T,
                               int64_t n_heads, int64_t n_kv_heads, int64_t pos0, float scale, int64_t n_qtiles,
                               float* out) {
    constexpr int BQ = kWarps * 16 * MT;
    using L = PipeLayout<HD, BK, BQ, QLO, KVLO>;
    extern __shared__ __align__(16) unsigned char smem[];
    __nv_bfloat16* qs = reinterpret_cast<__nv_bfloat16*>(smem);
    __nv_bfloat16* stages = qs + L::kQParts * L::kQ;
    // The longest tiles (latest queries) of every head first: the blocks start in order of
    // blockIdx.x (the head), then blockIdx.y, so the last to start are the shortest.
    const int64_t q0 = (n_qtiles - 1 - static_cast<int64_t>(blockIdx.y)) * BQ, h = blockIdx.x;
    const int64_t kvh = h / (n_heads / n_kv_heads), P = pos0 + T;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
    constexpr int kPieces = HD / 8;  // 16-byte pieces per row

    // The query tile, rows past T zeros: the first group of copies.
    for (int idx = threadIdx.x; idx < BQ * kPieces; idx += kThreads) {
        const int r = idx / kPieces, d = (idx % kPieces) * 8;
        const bool in = q0 + r < T;
        const int64_t at = in ? ((q0 + r) * n_heads + h) * HD + d : 0;
        copy16(qs + r * L::kLd + d, qh + at, in);
        if constexpr (QLO) copy16(qs + L::kQ + r * L::kLd + d, ql + at, in);
    }
    commit();
    auto keys = [&](int stage) { return stages + stage * L::kStage; };
    auto values = [&](int stage) { return stages + stage * L::kStage + L::kKVParts * L::kTile; };
    // Key tile `tile` into a stage, positions past P zeros (their values must not be NaN: a
    // probability of 0 times NaN is NaN): one group of copies.
    auto load = [&](int64_t tile, int stage) {
        const int64_t k0 = tile * BK;
        for (int idx = threadIdx.x; idx < BK * kPieces; idx += kThreads) {
            const int j = idx / kPieces, d = (idx % kPieces) * 8;
            const bool in = k0 + j < P;
            const int64_t at = in ? ((k0 + j) * n_kv_heads + kvh) * HD + d : 0;
            copy16(keys(stage) + j * L::kLd + d, kh + at, in);
            copy16(values(stage) + j * L::kLd + d, vh + at, in);
            if constexpr (KVLO) {
                copy16(keys(stage) + L::kTile + j * L::kLd + d, kl + at, in);
                copy16(values(stage) + L::kTile + j * L::kLd + d, vl + at, in);
            }
        }
        commit();
    };

    RowState<HD> st[MT];
    int64_t qi[MT][2];
    const int row0 = warp * 16 * MT;  // the warp's first row in the query tile
#pragma unroll
    for (int m = 0; m < MT; ++m) {
        st[m].clear();
        qi[m][0] = q0 + row0 + m * 16 + g;
        qi[m][1] = qi[m][0] + 8;
    }
    const int64_t n_tiles = attention_tiles::key_tiles(q0, BQ, T, pos0, BK);
    load(0, 0);
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
        const int stage = static_cast<int>(tile & 1);
        // The next tile goes to the other stage (read by the previous iteration, which every
        // warp has finished: the barrier at its end); then this tile (and the queries) must be in.
        if (tile + 1 < n_tiles) {
            load(tile + 1, stage ^ 1);
            wait_groups<1>();
        } else {
            wait_groups<0>();
        }
        __syncthreads();
        bool live[MT];
#pragma unroll
        for (int m = 0; m < MT; ++m)  // (one row tile a warp: every tile, as the kernel has run by default)
            live[m] = MT == 1 || attention_tiles::rows_see_tile(q0 + row0 + m * 16, 16, T, pos0, tile * BK);
        float s[MT][BK / 8][4];
        tile_scores<HD, BK, MT, QLO, KVLO>(s, qs, L::kQ, keys(stage), L::kTile, L::kLd, row0, lane, live);
#pragma unroll
        for (int m = 0; m < MT; ++m)
            if (live[m]) tile_softmax<HD, BK>(s[m], st[m], tile * BK, qi[m], T, pos0, scale, c);
        tile_values<HD, BK, MT, QLO, KVLO>(st, s, values(stage), L::kTile, L::kLd, lane, live);
        __syncthreads();
    }
#pragma unroll
    for (int m = 0; m < MT; ++m) write_rows<HD>(st[m], qi[m], T, n_heads, h, c, out);
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

// Key tiles of 64 positions, of 32 when keys and values have two parts (the shared memory of
// two blocks per multiprocessor); MT row tiles of 16 queries per warp.
template <int HD, int MT, bool QLO, bool KVLO>
void launch_pipelined(const __nv_bfloat16* qh, const __nv_bfloat16* ql, const __nv_bfloat16* kh,
                      const __nv_bfloat16* kl, const __nv_bfloat16* vh, const __nv_bfloat16* vl, int64_t T, int64_t nh,
                      int64_t nkv, int64_t pos0, float scale, float* out, cudaStream_t s) {
    constexpr int BK = KVLO ? 32 : 64, BQ = kWarps * 16 * MT;
    using L = PipeLayout<HD, BK, BQ, QLO, KVLO>;
    auto* kernel = pipelined_attention_kernel<HD, BK, MT, QLO, KVLO>;
    static bool raised = false;  // per instantiation, once
    if (!raised) {
        check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(L::kBytes)),
              "pipelined attention: shared memory size");
        raised = true;
    }
    const int64_t n_qtiles = (T + BQ - 1) / BQ;
    if (n_qtiles > 65535) throw Error(ErrorKind::input, "pipelined attention: more than 65535 query tiles");
    const dim3 grid(static_cast<unsigned>(nh), static_cast<unsigned>(n_qtiles));
    kernel<<<grid, kThreads, L::kBytes, s>>>(qh, ql, kh, kl, vh, vl, T, nh, nkv, pos0, scale, n_qtiles, out);
    check(cudaGetLastError(), "launching pipelined attention");
}

template <int HD, int MT>
void launch_pipelined_of(const __nv_bfloat16* qh, const __nv_bfloat16* ql, const __nv_bfloat16* kh,
                         const __nv_bfloat16* kl, const __nv_bfloat16* vh, const __nv_bfloat16* vl, int64_t T,
                         int64_t nh, int64_t nkv, int64_t pos0, float scale, float* out, cudaStream_t s) {
    if (ql && kl)
        launch_pipelined<HD, MT, true, true>(qh, ql, kh, kl, vh, vl, T, nh, nkv, pos0, scale, out, s);
    else if (ql)
        launch_pipelined<HD, MT, true, false>(qh, ql, kh, kl, vh, vl, T, nh, nkv, pos0, scale, out, s);
    else
        launch_pipelined<HD, MT, false, false>(qh, ql, kh, kl, vh, vl, T, nh, nkv, pos0, scale, out, s);
}

// `bytes`: the shared memory of the instantiation the shape takes, which must fit the device's
// limit per block (a head of 128 with two parts needs 102 KB: more than compute 8.6 and 8.9
// allow; those take the f32 tiled kernel).
bool mma_takes(const void* q, const void* k, const void* v, const void* out, int64_t n_heads, int64_t n_kv_heads,
               int64_t head_dim, size_t bytes) {
    return (head_dim == 64 || head_dim == 128) && aligned16(q) && aligned16(k) && aligned16(v) && aligned16(out) &&
           n_kv_heads > 0 && n_heads % n_kv_heads == 0 && bytes <= static_cast<size_t>(max_shared_optin());
}

size_t mma_bytes(int64_t head_dim, bool split) {
    if (head_dim == 128) return split ? Layout<128, true>::kBytes : Layout<128, false>::kBytes;
    return split ? Layout<64, true>::kBytes : Layout<64, false>::kBytes;
}

// The pipelined kernel's shared memory (launch_pipelined_of's choice of parts).
template <int HD, int MT>
size_t pipelined_bytes_of(bool qlo, bool kvlo) {
    constexpr int BQ = kWarps * 16 * MT;
    if (qlo && kvlo) return PipeLayout<HD, 32, BQ, true, true>::kBytes;
    return qlo ? PipeLayout<HD, 64, BQ, true, false>::kBytes : PipeLayout<HD, 64, BQ, false, false>::kBytes;
}

size_t pipelined_bytes(int64_t head_dim, bool split, KvType kv, bool wide) {
    const bool kvlo = split && kv == KvType::f32;
    if (wide) return head_dim == 128 ? pipelined_bytes_of<128, 2>(split, kvlo) : pipelined_bytes_of<64, 2>(split, kvlo);
    return head_dim == 128 ? pipelined_bytes_of<128, 1>(split, kvlo) : pipelined_bytes_of<64, 1>(split, kvlo);
}

size_t round256(size_t bytes) {
    return (bytes + 255) / 256 * 256;
}

}  // namespace

bool attention_mma(const float* q, const void* k, const void* v, int64_t T, int64_t n_heads, int64_t n_kv_heads,
                   int64_t head_dim, int64_t pos0, float scale, float* out, bool split, KvType kv, cudaStream_t s) {
    if (!mma_takes(q, k, v, out, n_heads, n_kv_heads, head_dim, mma_bytes(head_dim, split))) return false;
    if (kv == KvType::bf16)
        launch_mma_of(q, static_cast<const __nv_bfloat16*>(k), static_cast<const __nv_bfloat16*>(v), T, n_heads, n_kv_heads,
                      head_dim, pos0, scale, out, split, s);
    else
        launch_mma_of(q, static_cast<const float*>(k), static_cast<const float*>(v), T, n_heads, n_kv_heads, head_dim, pos0,
                      scale, out, split, s);
    return true;
}

size_t pipelined_attention_scratch(int64_t T, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t pos0,
                                   bool split, KvType kv) {
    const size_t parts = split ? 2 : 1, two = sizeof(__nv_bfloat16);
    const size_t q = round256(static_cast<size_t>(T * n_heads * head_dim) * two);
    const size_t kvp = kv == KvType::f32 ? round256(static_cast<size_t>((pos0 + T) * n_kv_heads * head_dim) * two) : 0;
    return parts * (q + 2 * kvp);
}

bool attention_pipelined(const float* q, const void* k, const void* v, int64_t T, int64_t n_heads, int64_t n_kv_heads,
                         int64_t head_dim, int64_t pos0, float scale, float* out, bool split, KvType kv, void* scratch,
                         cudaStream_t s, bool wide) {
    if (!scratch || !mma_takes(q, k, v, out, n_heads, n_kv_heads, head_dim, pipelined_bytes(head_dim, split, kv, wide)))
        return false;
    // The scratch: q's parts, then (an f32 cache) the keys' and the values' parts.
    const size_t two = sizeof(__nv_bfloat16);
    const int64_t nq = T * n_heads * head_dim, nkv = (pos0 + T) * n_kv_heads * head_dim;
    const size_t q_bytes = round256(static_cast<size_t>(nq) * two), kv_bytes = round256(static_cast<size_t>(nkv) * two);
    auto* base = static_cast<unsigned char*>(scratch);
    auto take = [&](size_t bytes) {
        auto* p = reinterpret_cast<__nv_bfloat16*>(base);
        base += bytes;
        return p;
    };
    __nv_bfloat16* qh = take(q_bytes);
    __nv_bfloat16* ql = split ? take(q_bytes) : nullptr;
    round_split(q, nq, DType::bf16, qh, ql, s);
    const __nv_bfloat16 *kh, *kl = nullptr, *vh, *vl = nullptr;
    if (kv == KvType::f32) {
        // Every visible key and value rounded once (the kernel before rounded each tile in
        // every block that read it).
        __nv_bfloat16* khw = take(kv_bytes);
        __nv_bfloat16* klw = split ? take(kv_bytes) : nullptr;
        __nv_bfloat16* vhw = take(kv_bytes);
        __nv_bfloat16* vlw = split ? take(kv_bytes) : nullptr;
        round_split(static_cast<const float*>(k), nkv, DType::bf16, khw, klw, s);
        round_split(static_cast<const float*>(v), nkv, DType::bf16, vhw, vlw, s);
        kh = khw, kl = klw, vh = vhw, vl = vlw;
    } else {
        // A BF16 cache is the keys' and values' one part already.
        kh = static_cast<const __nv_bfloat16*>(k);
        vh = static_cast<const __nv_bfloat16*>(v);
    }
    auto run = [&](auto launch) { launch(qh, ql, kh, kl, vh, vl, T, n_heads, n_kv_heads, pos0, scale, out, s); };
    if (head_dim == 128)
        wide ? run(launch_pipelined_of<128, 2>) : run(launch_pipelined_of<128, 1>);
    else
        wide ? run(launch_pipelined_of<64, 2>) : run(launch_pipelined_of<64, 1>);
    return true;
}

}  // namespace moe::cuda::launch
