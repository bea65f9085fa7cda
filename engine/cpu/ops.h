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

// Tables from given inverse frequencies: angle = (pos / position_divisor) · inv_freq_j in f32,
// cos and sin multiplied by `magnitude` (YaRN's attention factor; 1 otherwise).
RopeTables make_rope_tables(int64_t pos0, int64_t T, const std::vector<float>& inv_freq, double position_divisor,
                            float magnitude);
// YaRN's inverse frequencies for a rotary dimension `dim` (published DeepseekV2/V3 code):
// ramp between the dimensions whose wavelength fits original_max_position / beta_fast
// rotations and beta_slow ones; unscaled below, divided by `factor` above.
std::vector<float> yarn_inv_freq(int64_t dim, double base, double factor, int64_t original_max_position,
                                 double beta_fast, double beta_slow);
// Applies RoPE in place to the `dim`-wide slices x[t·ld + h·head_stride + 0 .. dim) of T
// rows and n_heads heads, rotating adjacent pairs (x[2j], x[2j+1]) by angle j (the layout
// of MLA's RoPE slice in the published V2/V3 checkpoints).
void apply_rope_pairs(float* x, int64_t T, int64_t n_heads, int64_t head_stride, int64_t dim, int64_t ld,
                      const RopeTables& r);
// Applies RoPE in place to x [T, n_heads, hd] (row stride ld) with the halves layout:
// out = x·cos(emb) + rotate_half(x)·sin(emb), rotate_half(x) = [−x₂, x₁].
void apply_rope_halves(float* x, int64_t T, int64_t n_heads, int64_t hd, int64_t ld, const RopeTables& r);

// h[i] = silu(g[i]) · u[i], silu(z) = z·σ(z).
void silu_mul(const float* g, const float* u, int64_t n, float* h);

// In-place softmax of a row of n values.
void softmax_row(float* x, int64_t n);

}  // namespace moe::cpu
