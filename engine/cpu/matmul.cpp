// y = x · Wᵀ kernels; see matmul.h. Two families, chosen once at run time: AVX-512
// (x86-64 with avx512f/bw/vl) and a portable one. Both compute each output as a dot
// product over K with f32 accumulation in lanes, reduced at the end; a tile of 4 tokens
// × 4 weight rows keeps 16 accumulators in registers so each loaded vector is used 4 times.
#include "engine/cpu/matmul.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/cpu/thread_pool.h"
#include "engine/error.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// GCC 12 reports its own _mm512_undefined_* placeholders inside the intrinsics headers
// as uninitialised when inlined; the values are never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace moe::cpu {

WeightMatrix WeightMatrix::of(const TensorView& t) {
    MOE_ASSERT(t.shape.size() == 2 && t.dtype != DType::f8_e4m3);
    return WeightMatrix{t.data, t.dtype, t.shape[0], t.shape[1], t.shape[1]};
}

WeightMatrix WeightMatrix::of_fp8(const TensorView& t, const TensorView& scale_inv) {
    MOE_ASSERT(t.shape.size() == 2 && t.dtype == DType::f8_e4m3 && scale_inv.dtype == DType::f32);
    MOE_ASSERT(scale_inv.shape.size() == 2 && scale_inv.shape[0] == (t.shape[0] + kFp8Block - 1) / kFp8Block &&
               scale_inv.shape[1] == (t.shape[1] + kFp8Block - 1) / kFp8Block);
    WeightMatrix w{t.data, t.dtype, t.shape[0], t.shape[1], t.shape[1]};
    w.scale = static_cast<const float*>(scale_inv.data);
    w.scale_ld = scale_inv.shape[1];
    return w;
}

WeightMatrix WeightMatrix::row_slice(int64_t r0, int64_t n) const {
    MOE_ASSERT(r0 >= 0 && r0 + n <= rows);
    WeightMatrix w = *this;
    w.data = static_cast<const uint8_t*>(data) + static_cast<size_t>(r0 * ld) * dtype_size(dtype);
    w.rows = n;
    w.row0 += r0;
    return w;
}

namespace {
#if defined(__x86_64__)
bool have_avx512();
void widen_fp8_avx512(const uint8_t* p, const float* scales, int64_t K, float* out);
#endif
}  // namespace

void widen_row(const WeightMatrix& w, int64_t r, float* out) {
    const int64_t K = w.cols;
    switch (w.dtype) {
        case DType::f32:
            std::copy_n(static_cast<const float*>(w.data) + r * w.ld, K, out);
            return;
        case DType::bf16: {
            const uint16_t* p = static_cast<const uint16_t*>(w.data) + r * w.ld;
            for (int64_t k = 0; k < K; ++k) out[k] = bf16_to_f32(p[k]);
            return;
        }
        case DType::f16: {
            const uint16_t* p = static_cast<const uint16_t*>(w.data) + r * w.ld;
            for (int64_t k = 0; k < K; ++k) out[k] = f16_to_f32(p[k]);
            return;
        }
        case DType::f8_e4m3: {
            const uint8_t* p = static_cast<const uint8_t*>(w.data) + r * w.ld;
            const float* s = w.scale + ((w.row0 + r) / WeightMatrix::kFp8Block) * w.scale_ld;
#if defined(__x86_64__)
            if (have_avx512()) return widen_fp8_avx512(p, s, K, out);
#endif
            for (int64_t k = 0; k < K; ++k) out[k] = f8_e4m3_to_f32(p[k]) * s[k / WeightMatrix::kFp8Block];
            return;
        }
    }
}

namespace {

// ---- portable kernels ------------------------------------------------------------

inline float load_weight(const void* base, DType dt, int64_t i) {
    switch (dt) {
        case DType::f32:
            return static_cast<const float*>(base)[i];
        case DType::bf16:
            return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
        case DType::f16:
            return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
        case DType::f8_e4m3:
            break;  // dequantised by matmul_rows_fp8 before any kernel sees it
    }
    MOE_ASSERT(false);
    return 0;
}

void matmul_rows_generic(const float* x, int64_t T, int64_t ldx, const WeightMatrix& w, int64_t n0, int64_t n1,
                         float* y, int64_t ldy) {
    const int64_t K = w.cols;
    float row[4096];
    for (int64_t n = n0; n < n1; ++n) {
        for (int64_t k0 = 0; k0 < K; k0 += 4096) {
            const int64_t kn = std::min<int64_t>(4096, K - k0);
            for (int64_t k = 0; k < kn; ++k) row[k] = load_weight(w.data, w.dtype, n * w.ld + k0 + k);
            for (int64_t t = 0; t < T; ++t) {
                const float* xr = x + t * ldx + k0;
                float acc = 0;
                for (int64_t k = 0; k < kn; ++k) acc += xr[k] * row[k];
                if (k0 == 0)
                    y[t * ldy + n] = acc;
                else
                    y[t * ldy + n] += acc;
            }
        }
    }
}

#if defined(__x86_64__)
#define MOE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

template <DType DT>
MOE_AVX512 inline __m512 load16(const void* base, int64_t i) {
    if constexpr (DT == DType::f32) {
        return _mm512_loadu_ps(static_cast<const float*>(base) + i);
    } else if constexpr (DT == DType::bf16) {
        __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
        __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(base) + i));
        return _mm512_cvtph_ps(h);
    }
}

template <DType DT>
MOE_AVX512 inline __m512 load16_masked(const void* base, int64_t i, __mmask16 m) {
    if constexpr (DT == DType::f32) {
        return _mm512_maskz_loadu_ps(m, static_cast<const float*>(base) + i);
    } else if constexpr (DT == DType::bf16) {
        __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + i);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
        __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + i);
        return _mm512_cvtph_ps(h);
    }
}

// Lane sums of accumulators, all in one fixed tree so that an output's value never
// depends on which tile shape computed it (and so on the thread count): within each
// 128-bit quarter (x0+x2)+(x1+x3), then (q0+q1)+(q2+q3) over the quarters.
MOE_AVX512 inline float reduce1(__m512 v) {
    __m512 s = _mm512_add_ps(v, _mm512_shuffle_ps(v, v, _MM_SHUFFLE(1, 0, 3, 2)));  // x_i + x_{i^2}
    s = _mm512_add_ps(s, _mm512_shuffle_ps(s, s, _MM_SHUFFLE(2, 3, 0, 1)));         // + pair
    s = _mm512_add_ps(s, _mm512_shuffle_f32x4(s, s, _MM_SHUFFLE(2, 3, 0, 1)));      // q0+q1, q2+q3
    s = _mm512_add_ps(s, _mm512_shuffle_f32x4(s, s, _MM_SHUFFLE(1, 0, 3, 2)));      // (q0+q1)+(q2+q3)
    return _mm512_cvtss_f32(s);
}

// The same tree for 16 accumulators at once: lane i of the result is the sum of v[i].
// About 3 instructions per sum instead of ~9 for separate reductions.
MOE_AVX512 inline __m512 reduce16(const __m512* v) {
    __m512 t[8], u[4], x[2];
    for (int i = 0; i < 8; ++i)  // per quarter: [a0+a2, b0+b2, a1+a3, b1+b3]
        t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; ++i)  // per quarter: [a, b, c, d] quarter sums
        u[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int i = 0; i < 2; ++i)  // [u0: q0+q1, q2+q3 | u1: q0+q1, q2+q3]
        x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(u[2 * i], u[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(x[0], x[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(x[0], x[1], _MM_SHUFFLE(3, 1, 3, 1)));
}

constexpr int64_t kPrefetchBytes = 256;  // measured best of 64..1024 for BF16 and F32 rows

// One tile: RT tokens × RN weight rows, full K.
template <DType DT, int RT, int RN>
MOE_AVX512 void tile_avx512(const float* x, int64_t ldx, const void* w, int64_t ldw, int64_t K, float* y, int64_t ldy) {
    constexpr int64_t kElementBytes = DT == DType::f32 ? 4 : 2;
    __m512 acc[RT][RN];
    for (int t = 0; t < RT; ++t)
        for (int r = 0; r < RN; ++r) acc[t][r] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 wv[RN];
        if constexpr (RT == 1) {
            // Decode streams weights from memory once: prefetch each row ahead, since the
            // hardware prefetcher follows many short interleaved rows poorly.
            for (int r = 0; r < RN; ++r)
                _mm_prefetch(static_cast<const char*>(w) + (r * ldw + k) * kElementBytes + kPrefetchBytes, _MM_HINT_T0);
        }
        for (int r = 0; r < RN; ++r) wv[r] = load16<DT>(w, r * ldw + k);
        for (int t = 0; t < RT; ++t) {
            __m512 xv = _mm512_loadu_ps(x + t * ldx + k);
            for (int r = 0; r < RN; ++r) acc[t][r] = _mm512_fmadd_ps(xv, wv[r], acc[t][r]);
        }
    }
    if (k < K) {
        const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
        __m512 wv[RN];
        for (int r = 0; r < RN; ++r) wv[r] = load16_masked<DT>(w, r * ldw + k, m);
        for (int t = 0; t < RT; ++t) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + t * ldx + k);
            for (int r = 0; r < RN; ++r) acc[t][r] = _mm512_fmadd_ps(xv, wv[r], acc[t][r]);
        }
    }
    if constexpr (RT * RN == 16) {
        alignas(64) float sums[16];
        _mm512_store_ps(sums, reduce16(&acc[0][0]));
        for (int t = 0; t < RT; ++t)
            for (int r = 0; r < RN; ++r) y[t * ldy + r] = sums[t * RN + r];
    } else {
        for (int t = 0; t < RT; ++t)
            for (int r = 0; r < RN; ++r) y[t * ldy + r] = reduce1(acc[t][r]);
    }
}

template <DType DT>
MOE_AVX512 void rows_avx512(const float* x, int64_t T, int64_t ldx, const WeightMatrix& w, int64_t n0, int64_t n1,
                            float* y, int64_t ldy) {
    const int64_t K = w.cols, ldw = w.ld;
    const size_t es = dtype_size(DT);
    auto wrow = [&](int64_t n) { return static_cast<const uint8_t*>(w.data) + static_cast<size_t>(n * ldw) * es; };
    int64_t n = n0;
    if (T < 4) {
        // Decode streams each weight once from memory: 16 rows at a time (16 independent
        // accumulator chains), with software prefetch. Rows shorter than a 4 KiB page are
        // taken with a stride so that each page is read front to back by one stream —
        // interleaved streams inside a page defeat the hardware prefetcher (BF16 rows of
        // 1024 values read at 60% of the F32 rate without this).
        const int64_t row_bytes = ldw * static_cast<int64_t>(es);  // pitch: rows may be strided views
        const int64_t stride = std::clamp<int64_t>(4096 / std::max<int64_t>(row_bytes, 1), 1, 8);
        alignas(64) float tmp[16];
        for (; n + 16 * stride <= n1; n += 16 * stride)
            for (int64_t t = 0; t < T; ++t)
                for (int64_t s = 0; s < stride; ++s) {
                    tile_avx512<DT, 1, 16>(x + t * ldx, ldx, wrow(n + s), stride * ldw, K, tmp, 0);
                    for (int r = 0; r < 16; ++r) y[t * ldy + n + s + stride * r] = tmp[r];
                }
        for (; n + 16 <= n1; n += 16)
            for (int64_t t = 0; t < T; ++t)
                tile_avx512<DT, 1, 16>(x + t * ldx, ldx, wrow(n), ldw, K, y + t * ldy + n, ldy);
    }
    for (; n + 4 <= n1; n += 4) {
        int64_t t = 0;
        for (; t + 4 <= T; t += 4) tile_avx512<DT, 4, 4>(x + t * ldx, ldx, wrow(n), ldw, K, y + t * ldy + n, ldy);
        for (; t < T; ++t) tile_avx512<DT, 1, 4>(x + t * ldx, ldx, wrow(n), ldw, K, y + t * ldy + n, ldy);
    }
    for (; n < n1; ++n) {
        int64_t t = 0;
        for (; t + 4 <= T; t += 4) tile_avx512<DT, 4, 1>(x + t * ldx, ldx, wrow(n), ldw, K, y + t * ldy + n, ldy);
        for (; t < T; ++t) tile_avx512<DT, 1, 1>(x + t * ldx, ldx, wrow(n), ldw, K, y + t * ldy + n, ldy);
    }
}

MOE_AVX512 void weighted_row_sum_avx512(const float* p, int64_t n, const float* v, int64_t ldv, int64_t width,
                                        float* out) {
    constexpr int kMaxVec = 8;  // 128 columns per pass
    for (int64_t d0 = 0; d0 < width; d0 += 16 * kMaxVec) {
        const int64_t cols = std::min<int64_t>(16 * kMaxVec, width - d0);
        const int nv = static_cast<int>((cols + 15) / 16);
        const __mmask16 tail = static_cast<__mmask16>(cols % 16 ? (1u << (cols % 16)) - 1 : 0xffffu);
        __m512 acc[kMaxVec];
        for (int i = 0; i < nv; ++i) acc[i] = _mm512_setzero_ps();
        for (int64_t j = 0; j < n; ++j) {
            const __m512 pj = _mm512_set1_ps(p[j]);
            const float* row = v + j * ldv + d0;
            for (int i = 0; i < nv - 1; ++i) acc[i] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(row + 16 * i), acc[i]);
            acc[nv - 1] = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(tail, row + 16 * (nv - 1)), acc[nv - 1]);
        }
        for (int i = 0; i < nv - 1; ++i) _mm512_storeu_ps(out + d0 + 16 * i, acc[i]);
        _mm512_mask_storeu_ps(out + d0 + 16 * (nv - 1), tail, acc[nv - 1]);
    }
}

std::atomic<bool> g_force_generic{[] {
    const char* v = std::getenv("MOE_CPU_KERNEL");
    return v && std::string(v) == "generic";
}()};

// e4m3 -> f32 sixteen at a time: the byte's sign, exponent and mantissa moved into binary16
// positions give the value times 2^-8 exactly (binary16 holds every e4m3 value, subnormals
// included, at that scale), so (half -> float) · (256 · block scale) is the scalar
// f8_e4m3_to_f32(b) · scale to the bit. (The NaN code 0x7f is not expected in weights.)
MOE_AVX512 void widen_fp8_avx512(const uint8_t* p, const float* scales, int64_t K, float* out) {
    const __m256i sign = _mm256_set1_epi16(0x80), rest = _mm256_set1_epi16(0x7f);
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k)));
        const __m256i h = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(b, sign), 8),
                                          _mm256_slli_epi16(_mm256_and_si256(b, rest), 7));
        const __m512 scale = _mm512_set1_ps(256.0f * scales[k / WeightMatrix::kFp8Block]);
        _mm512_storeu_ps(out + k, _mm512_mul_ps(_mm512_cvtph_ps(h), scale));
    }
    for (; k < K; ++k) out[k] = f8_e4m3_to_f32(p[k]) * scales[k / WeightMatrix::kFp8Block];
}

bool have_avx512() {
    static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    return ok && !g_force_generic.load(std::memory_order_relaxed);
}
#endif

}  // namespace

void force_generic_kernels(bool on) {
#if defined(__x86_64__)
    g_force_generic.store(on);
#else
    (void)on;
#endif
}

void weighted_row_sum(const float* p, int64_t n, const float* v, int64_t ldv, int64_t width, float* out) {
#if defined(__x86_64__)
    if (have_avx512()) return weighted_row_sum_avx512(p, n, v, ldv, width, out);
#endif
    std::fill(out, out + width, 0.0f);
    for (int64_t j = 0; j < n; ++j)
        for (int64_t d = 0; d < width; ++d) out[d] += p[j] * v[j * ldv + d];
}

const char* matmul_kernel_name() {
#if defined(__x86_64__)
    if (have_avx512()) return "avx512";
#endif
    return "generic";
}

namespace {

// FP8: a block of rows dequantised (q · s) into a per-thread f32 buffer, then the f32 kernel.
void matmul_rows_fp8(const float* x, int64_t T, int64_t ldx, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                     int64_t ldy) {
    constexpr int64_t kRows = 16;
    const int64_t K = w.cols;
    thread_local std::vector<float> buf;
    buf.resize(static_cast<size_t>(kRows * K));
    for (int64_t r0 = n0; r0 < n1; r0 += kRows) {
        const int64_t rn = std::min(kRows, n1 - r0);
        for (int64_t r = 0; r < rn; ++r) widen_row(w, r0 + r, buf.data() + r * K);
        const WeightMatrix f{buf.data(), DType::f32, rn, K, K};
        matmul_rows(x, T, ldx, f, 0, rn, y + r0, ldy);
    }
}

}  // namespace

void matmul_transposed_rows(const float* x, int64_t T, int64_t ldx, const WeightMatrix& w, int64_t r0, int64_t R,
                            float* y, int64_t ldy) {
    MOE_ASSERT(r0 >= 0 && r0 + R <= w.rows);
    const int64_t K = w.cols;
    thread_local std::vector<float> row;
    row.resize(static_cast<size_t>(K));
    for (int64_t t = 0; t < T; ++t) std::fill(y + t * ldy, y + t * ldy + K, 0.0f);
    for (int64_t r = 0; r < R; ++r) {
        widen_row(w, r0 + r, row.data());
        for (int64_t t = 0; t < T; ++t) {
            const float a = x[t * ldx + r];
            float* yt = y + t * ldy;
            for (int64_t k = 0; k < K; ++k) yt[k] += a * row[static_cast<size_t>(k)];
        }
    }
}

void matmul_rows(const float* x, int64_t T, int64_t ldx, const WeightMatrix& w, int64_t n0, int64_t n1, float* y,
                 int64_t ldy) {
    MOE_ASSERT(n0 >= 0 && n1 <= w.rows && n0 <= n1);
    if (T == 0 || n0 == n1) return;
    if (w.dtype == DType::f8_e4m3) return matmul_rows_fp8(x, T, ldx, w, n0, n1, y, ldy);
#if defined(__x86_64__)
    if (have_avx512()) {
        switch (w.dtype) {
            case DType::f32:
                return rows_avx512<DType::f32>(x, T, ldx, w, n0, n1, y, ldy);
            case DType::bf16:
                return rows_avx512<DType::bf16>(x, T, ldx, w, n0, n1, y, ldy);
            case DType::f16:
                return rows_avx512<DType::f16>(x, T, ldx, w, n0, n1, y, ldy);
            case DType::f8_e4m3:
                break;
        }
    }
#endif
    matmul_rows_generic(x, T, ldx, w, n0, n1, y, ldy);
}

void matmul(const float* x, int64_t T, int64_t ldx, const WeightMatrix& w, float* y, int64_t ldy, ThreadPool& pool) {
    const int64_t N = w.rows;
    // Row blocks: multiples of 4, at least ~4 blocks per thread so uneven cores balance.
    int64_t block = (N + 4 * pool.size() - 1) / (4 * pool.size());
    block = std::max<int64_t>(16, (block + 3) / 4 * 4);
    const int64_t n_blocks = (N + block - 1) / block;
    pool.parallel_for(n_blocks, [&](int64_t b, int) {
        const int64_t n0 = b * block, n1 = std::min(N, n0 + block);
        matmul_rows(x, T, ldx, w, n0, n1, y, ldy);
    });
}

}  // namespace moe::cpu
