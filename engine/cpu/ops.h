// Elementwise and row-wise operations of the CPU backend (f32 in and out):
// RMSNorm, rotary embedding (Hugging Face "rotate_half" layout), SiLU-gated product,
// softmax. Published definitions: model-spec.md §1.
#pragma once

#include <cstdint>
#include <vector>

namespace moe::cpu {

// y[t] = x[t] / sqrt(mean(x[t]²) + eps) · w, for T rows of width n (y may alias x).
void rms_norm(const float* x, const float* w, int64_t T, int64_t n, float eps, float* y);

// Rotary tables for positions [pos0, pos0+T): cos/sin [T, hd/2].
struct RopeTables {
    int64_t half = 0;
    std::vector<float> cos, sin;  // [T, hd/2]
};
// inv_freq_j = base^(-2j/hd) and angle = (pos / position_divisor) · inv_freq_j, in f32 as
// the published code computes them.
RopeTables make_rope_tables(int64_t pos0, int64_t T, int64_t hd, double base, double position_divisor);

// Applies RoPE in place to x [T, n_heads, hd] (row stride ld) with the halves layout:
// out = x·cos(emb) + rotate_half(x)·sin(emb), rotate_half(x) = [−x₂, x₁].
void apply_rope_halves(float* x, int64_t T, int64_t n_heads, int64_t hd, int64_t ld, const RopeTables& r);

// h[i] = silu(g[i]) · u[i], silu(z) = z·σ(z).
void silu_mul(const float* g, const float* u, int64_t n, float* h);

// In-place softmax of a row of n values.
void softmax_row(float* x, int64_t n);

}  // namespace moe::cpu
