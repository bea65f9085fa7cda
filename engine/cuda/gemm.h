// y = x · Wᵀ on the device with cuBLAS: W in BF16 as stored ([out, in], the checkpoint's
// layout), x rounded to BF16 (round to nearest even) for the tensor cores, products
// accumulated in f32, y in f32. Split: x is taken as hi + lo, both BF16 (lo the rounding of
// x - hi), and the two products summed: x to about 2⁻¹⁷ of itself for twice the tensor-core
// work. This host interface copies in and out; the forward pass calls launch::Blas on device
// buffers with one cuBLAS handle per stream.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "engine/cuda/dispatch_kernels.h"  // Bf16Parts

namespace moe::cuda {

// x [T, in] f32, w [out, in] BF16 bits; returns y [T, out]. Throws moe::Error on a CUDA or
// cuBLAS failure.
std::vector<float> linear_bf16(const std::vector<float>& x, const std::vector<uint16_t>& w, int64_t T, int64_t in,
                               int64_t out, bool split = false);

}  // namespace moe::cuda

namespace moe::cuda {

// The fused products of a small step (engine/cuda/decode_kernels.h) from the host, BF16 weights:
// x [T, in]; norm [in] (empty: none) normalises x first (into *normed when set); w [rows, in];
// w2 empty (y = w·x) or [rows, in] (y = silu(w·x) · (w2·x)); with residual [T, rows] set,
// y = residual + the product. Returns y [T, rows].
std::vector<float> fused_gemv_bf16(const std::vector<float>& x, int64_t T, int64_t in, const std::vector<float>& norm,
                                   float eps, const std::vector<uint16_t>& w, const std::vector<uint16_t>& w2, int64_t rows,
                                   const std::vector<float>* residual, std::vector<float>* normed);
// A decode step's queries, keys and values as the forward pass launches them: three parts in
// one launch of fused products, y_j = w_j · RMSNorm(x) with w_j [rows_j, in] BF16, the first two
// rotated per head of head_dim rows with cos, sin [T, head_dim/2] when cos is not empty
// (GemvPart::rope_cos). Returns y_j [T, rows_j].
std::array<std::vector<float>, 3> fused_qkv_bf16(const std::vector<float>& x, int64_t T, int64_t in,
                                                 const std::vector<float>& norm, float eps,
                                                 const std::array<std::vector<uint16_t>, 3>& w,
                                                 const std::array<int64_t, 3>& rows, int64_t head_dim,
                                                 const std::vector<float>& cos, const std::vector<float>& sin);
// The routed experts' products in one launch (launch::expert_products), BF16 weights: x
// [offsets.back(), K] f32, its rows offsets[e] .. offsets[e+1] going to expert e with w[e]
// [N, K]; x rounded to BF16, or split into two BF16 parts. Returns y [offsets.back(), N].
// With `wgmma`, on Hopper's warpgroup products fed by the TMA (launch::expert_products with the
// weights' tensor maps), which needs expert_wgmma_available().
std::vector<float> expert_products_bf16(const std::vector<float>& x, int64_t K, const std::vector<int64_t>& offsets,
                                        const std::vector<std::vector<uint16_t>>& w, int64_t N, bool split,
                                        bool wgmma = false);
// Whether the build has the Hopper experts' kernel and the device (compute 9.0) runs it.
bool expert_wgmma_available();
// The same products as cuBLAS batched products over the experts' rows padded to a multiple of
// `pad` (dispatch::plan_batches; Blas::linear_rounded_batched), as a prefill's routed experts
// run by default. Returns y [offsets.back(), N] without the padding.
// With `stacked` (split only), each expert's hi and lo parts are the rows of one product over
// the stacked layout (dispatch::stacked_hi), as exact activations' batched products run by
// default, and each
// row's two products are summed after it.
std::vector<float> expert_products_batched_bf16(const std::vector<float>& x, int64_t K,
                                                const std::vector<int64_t>& offsets,
                                                const std::vector<std::vector<uint16_t>>& w, int64_t N, bool split,
                                                int64_t pad, bool stacked = false);
// h = silu(gu[r, f]) · gu[r, F + f] of gu [rows, 2F] rounded to BF16 parts in one launch
// (launch::silu_mul_round).
Bf16Parts silu_mul_round_bf16(const std::vector<float>& gu, int64_t rows, int64_t F, bool split);
// The same over a stacked layout of padded [E+1] (launch::silu_mul_round_stacked): gu
// [2·padded[E], 2F]; returns h's BF16 parts at their stacked rows, [2·padded[E], F].
std::vector<uint16_t> silu_mul_round_stacked_bf16(const std::vector<float>& gu, const std::vector<int64_t>& padded,
                                                  int64_t F);
// x [T, H] += shared_down · shared_h[t] + Σ_r weights[t·k+r] · (down[experts[t·k+r]] · h[t·k+r]),
// BF16 weights: down E matrices [H, F]; shared_down [H, Fs] (empty: no shared experts);
// dropped [E] (empty: none). Returns the new x.
std::vector<float> moe_down_combine_bf16(const std::vector<float>& x, int64_t T, int64_t H, int64_t k, const std::vector<float>& h,
                                         int64_t F, const std::vector<int32_t>& experts, const std::vector<float>& weights,
                                         const std::vector<std::vector<uint16_t>>& down, const std::vector<uint8_t>& dropped,
                                         const std::vector<uint16_t>& shared_down, const std::vector<float>& shared_h, int64_t Fs);

}  // namespace moe::cuda
