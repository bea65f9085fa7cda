// Matrix products of the CPU backend: y = x · Wᵀ with activations x in f32 and a weight
// matrix W stored as in the checkpoint ([N rows = out features, K cols = in features],
// F32, F16, BF16, or FP8 e4m3 with a float32 scale per 128×128 block). Weights are widened
// to f32 inside the kernel (exact for BF16/F16; FP8 as q·s rounded once to f32, a block of
// rows at a time) and products accumulate in f32; nothing is converted or copied whole.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace moe::cpu {

class ThreadPool;

struct WeightMatrix {
    const void* data = nullptr;
    DType dtype = DType::f32;
    int64_t rows = 0;  // N
    int64_t cols = 0;  // K
    int64_t ld = 0;    // elements between rows (== cols for a dense tensor)
    // FP8 only: the tensor's weight_scale_inv [ceil(N₀/128), ceil(K/128)] (row stride
    // scale_ld) and the row of the whole tensor that row 0 of this matrix is.
    const float* scale = nullptr;
    int64_t scale_ld = 0;
    int64_t row0 = 0;

    static constexpr int64_t kFp8Block = 128;
    static WeightMatrix of(const TensorView& t);  // 2-D tensor [N, K], not FP8
    // An FP8 tensor with its block scales (F32, shape checked by the caller).
    static WeightMatrix of_fp8(const TensorView& t, const TensorView& scale_inv);
    WeightMatrix row_slice(int64_t r0, int64_t n) const;  // rows [r0, r0+n)
};

// y[t, n] = Σ_k x[t, k] · W[n, k] for t < T, n in [n0, n1). Single-threaded.
// x: [T, K] with row stride ldx; y: [T, ≥n1] with row stride ldy.
void matmul_rows(const float* x, int64_t T, int64_t ldx, const WeightMatrix& w, int64_t n0, int64_t n1,
                 float* y, int64_t ldy);

// y[t, c] = Σ_r x[t, r] · W[r0 + r, c] for r < R, c < K: a product with the transpose of
// the row block [r0, r0+R) of W (MLA's absorbed attention). Single-threaded.
void matmul_transposed_rows(const float* x, int64_t T, int64_t ldx, const WeightMatrix& w, int64_t r0, int64_t R,
                            float* y, int64_t ldy);
// Row r of W widened to f32 (block scale applied for FP8): K values.
void widen_row(const WeightMatrix& w, int64_t r, float* out);

// The same over all rows of W, split across the pool's threads.
void matmul(const float* x, int64_t T, int64_t ldx, const WeightMatrix& w, float* y, int64_t ldy,
            ThreadPool& pool);

// out[d] = Σ_j p[j] · v[j·ldv + d] for d < width (attention's weighted sum of values),
// accumulated in f32 over j in order.
void weighted_row_sum(const float* p, int64_t n, const float* v, int64_t ldv, int64_t width, float* out);

// Which kernel family runs ("avx512" or "generic"), for benchmarks.
const char* matmul_kernel_name();
// Forces the portable kernels even where AVX-512 exists (parity tests, benchmarks).
// Also set by the environment variable MOE_CPU_KERNEL=generic at start-up.
void force_generic_kernels(bool on);

}  // namespace moe::cpu
