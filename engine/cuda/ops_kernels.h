// Row-wise and elementwise operations on the device, f32 as the CPU backend's
// (engine/cpu/ops.h) and rounding as it does: RMSNorm (double sum of squares), rotary
// embedding in the halves layout from the same host-made tables, the SiLU-gated product.
// This host interface copies in and out; the forward pass will call the kernels on device
// buffers.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/cpu/ops.h"
#include "engine/scoring.h"

namespace moe::cuda {

std::vector<float> rms_norm(const std::vector<float>& x, const std::vector<float>& w, int64_t T, int64_t n, float eps);
// x + b and RMSNorm(x + b) · w in one launch (launch::add_rms_norm): {the new x, y}.
std::pair<std::vector<float>, std::vector<float>> add_rms_norm(const std::vector<float>& x, const std::vector<float>& b,
                                                              const std::vector<float>& w, int64_t T, int64_t n, float eps);
// x [T, ld] with n_heads heads of hd at the start of each row, rotated in place as
// cpu::apply_rope_halves; tables from cpu::make_rope_tables.
void apply_rope_halves(std::vector<float>& x, int64_t T, int64_t n_heads, int64_t hd, int64_t ld,
                       const cpu::RopeTables& tables);
std::vector<float> silu_mul(const std::vector<float>& g, const std::vector<float>& u);
// Rows of logits [targets.size(), V] scored on the device (launch::score_rows, score_kernels.cu):
// against reference [rows, V] unless it is empty; the rows' log-probabilities into *kept when set.
std::vector<RowScore> score_rows(const std::vector<float>& logits, int64_t V, const std::vector<int32_t>& targets,
                                 const std::vector<float>& reference, std::vector<float>* kept);

}  // namespace moe::cuda
