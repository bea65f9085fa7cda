// Matrix products of the CPU backend: y = x · Wᵀ with activations x in f32 and a weight
// matrix W stored as in the checkpoint ([N rows = out features, K cols = in features],
// F32, F16 or BF16). Weights are widened to f32 inside the kernel (exact for BF16/F16)
// and products accumulate in f32; nothing is converted or copied whole beforehand.
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

    static WeightMatrix of(const TensorView& t);  // 2-D tensor [N, K]
    WeightMatrix row_slice(int64_t r0, int64_t n) const;  // rows [r0, r0+n)
};

// y[t, n] = Σ_k x[t, k] · W[n, k] for t < T, n in [n0, n1). Single-threaded.
// x: [T, K] with row stride ldx; y: [T, ≥n1] with row stride ldy.
void matmul_rows(const float* x, int64_t T, int64_t ldx, const WeightMatrix& w, int64_t n0, int64_t n1,
                 float* y, int64_t ldy);

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
