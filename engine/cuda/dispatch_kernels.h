// The MoE layer's dispatch on the device: the (token, rank) slots grouped by expert exactly as
// engine/moe_dispatch.h defines it (expert offsets, rows stable in slot order, dropped slots
// without a row, the inverse), the gather of token rows into the grouped matrix, and the
// weighted combine back per token in rank order (the CPU backend's summation order). This
// host interface copies in and out; the forward pass will call the kernels on device buffers.
#pragma once

#include <cstdint>
#include <vector>

namespace moe::cuda {

struct DispatchResult {
    std::vector<int64_t> offsets;   // [E+1]
    std::vector<int64_t> rows;      // [T·k], -1: dropped
    std::vector<int64_t> row_slot;  // [offsets[E]]
};

// experts [T·k]; dropped [E] or empty. Throws moe::Error on a CUDA failure.
DispatchResult dispatch_slots(const std::vector<int32_t>& experts, int64_t n_expert, const std::vector<uint8_t>& dropped);

// gathered[r] = x[row_slot[r] / k] (rows of width H).
std::vector<float> gather_rows(const std::vector<float>& x, int64_t H, int64_t k, const std::vector<int64_t>& row_slot);

// The padded layout (launch::pad_rows, launch::gather_padded) for padded [E+1]
// (dispatch::plan_batches of offsets): the slots' rows moved to their padded rows, and the
// padded gather of x [T, H] (rows of zeros between the experts' rows).
std::vector<int64_t> pad_rows(const std::vector<int32_t>& experts, const std::vector<int64_t>& offsets,
                              const std::vector<int64_t>& padded, const std::vector<int64_t>& rows);
std::vector<float> gather_padded(const std::vector<float>& x, int64_t H, int64_t k,
                                 const std::vector<int64_t>& row_slot, const std::vector<int64_t>& offsets,
                                 const std::vector<int64_t>& padded);

// BF16 parts as launch::round_split leaves them: hi, and lo (empty unless split).
struct Bf16Parts {
    std::vector<uint16_t> hi, lo;
};
// The dense gather (padded empty) or the padded one, rounded to BF16 parts in the same launch
// (launch::gather_rows_rounded, launch::gather_padded_rounded).
Bf16Parts gather_rounded_bf16(const std::vector<float>& x, int64_t H, int64_t k, const std::vector<int64_t>& row_slot,
                              const std::vector<int64_t>& offsets, const std::vector<int64_t>& padded, bool split);

// out[t] = base[t] + Σ_r weights[t·k+r] · results[rows[t·k+r]] (r ascending, dropped slots
// skipped); base may be empty (zeros). With rows_lo (not empty), each term's result is
// results[rows[i]] + results[rows_lo[i]].
std::vector<float> combine_rows(const std::vector<float>& results, int64_t H, int64_t T, int64_t k,
                                const std::vector<int64_t>& rows, const std::vector<float>& weights,
                                const std::vector<float>& base, const std::vector<int64_t>& rows_lo = {});

// The stacked layout of split activations (dispatch::stacked_hi): the slots' rows of both parts
// (launch::pad_rows with rows_lo; without `stacked`, pad_rows' rows in hi and lo empty), and the padded gather's BF16
// parts at their stacked rows, [2·padded[E], H] (launch::gather_padded_rounded, stacked).
struct StackedRows {
    std::vector<int64_t> hi, lo;
};
StackedRows pad_rows_stacked(const std::vector<int32_t>& experts, const std::vector<int64_t>& offsets,
                             const std::vector<int64_t>& padded, const std::vector<int64_t>& rows, bool stacked = true);
std::vector<uint16_t> gather_stacked_bf16(const std::vector<float>& x, int64_t H, int64_t k,
                                          const std::vector<int64_t>& row_slot, const std::vector<int64_t>& offsets,
                                          const std::vector<int64_t>& padded);

}  // namespace moe::cuda
