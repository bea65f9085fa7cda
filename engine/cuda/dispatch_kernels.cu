// The MoE dispatch on the device; see dispatch_kernels.h.
#include "engine/cuda/dispatch_kernels.h"

#include <cuda_runtime.h>

#include <algorithm>

#include <cub/block/block_scan.cuh>

#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/launch.h"
#include "engine/cuda/row_math.cuh"
#include "engine/error.h"
#include "engine/moe_dispatch.h"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

// counts[e + 1] += kept slots of e (counts zeroed, [E+1]).
__global__ void count_kernel(const int32_t* experts, int64_t n_slots, const uint8_t* dropped,
                             unsigned long long* counts) {
    const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (s < n_slots && !dispatch::slot_dropped(experts, dropped, s)) atomicAdd(&counts[experts[s] + 1], 1ull);
}

// offsets = prefix sums of the counts (one thread: E is at most a few hundred).
__global__ void scan_kernel(const unsigned long long* counts, int64_t n_expert, int64_t* offsets) {
    offsets[0] = 0;
    for (int64_t e = 0; e < n_expert; ++e) offsets[e + 1] = offsets[e] + static_cast<int64_t>(counts[e + 1]);
}

// Block e walks the slots in order; a block-wide exclusive scan of "slot is expert e's" gives
// each of its slots the number of earlier ones: the stable row offsets[e] + that.
__global__ void rows_kernel(const int32_t* experts, int64_t n_slots, const uint8_t* dropped, const int64_t* offsets,
                            int64_t* rows) {
    using Scan = cub::BlockScan<int, kThreads>;
    __shared__ typename Scan::TempStorage temp;
    const int32_t e = static_cast<int32_t>(blockIdx.x);
    int64_t next = offsets[e];
    for (int64_t base = 0; base < n_slots; base += kThreads) {
        const int64_t s = base + threadIdx.x;
        const bool dropped_slot = s < n_slots && dispatch::slot_dropped(experts, dropped, s);
        const int mine = s < n_slots && experts[s] == e && !dropped_slot ? 1 : 0;
        int before = 0, total = 0;
        Scan(temp).ExclusiveSum(mine, before, total);
        if (mine) rows[s] = next + before;
        else if (dropped_slot && experts[s] == e) rows[s] = -1;
        next += total;
        __syncthreads();  // temp is reused by the next chunk
    }
}

__global__ void row_slot_kernel(const int64_t* rows, int64_t n_slots, int64_t* row_slot) {
    const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (s < n_slots && rows[s] >= 0) row_slot[rows[s]] = s;
}

// One block per gathered row, for up to *n_rows rows: f32 (L = float) or rounded parts.
template <typename L>
__global__ void gather_kernel(const float* x, int64_t H, int64_t k, const int64_t* row_slot, const int64_t* n_rows,
                              L* hi, L* lo) {
    const int64_t r = blockIdx.x;
    if (r >= *n_rows) return;
    const float* src = x + (row_slot[r] / k) * H;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) launch::store_parts_at(src[i], hi, lo, r * H + i);
}

// rows[s] (a gathered row of expert experts[s], or -1) moved to its padded row; with rows_lo,
// to the stacked layout's row of its hi part, and rows_lo[s] to its lo part's (-1 with rows[s]).
__global__ void pad_rows_kernel(const int32_t* experts, int64_t n_slots, const int64_t* offsets, const int64_t* padded,
                                int64_t* rows, int64_t* rows_lo) {
    const int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (s >= n_slots) return;
    if (rows[s] < 0) {
        if (rows_lo) rows_lo[s] = -1;
        return;
    }
    const int64_t e = experts[s], p = dispatch::padded_row(offsets, padded, e, rows[s]);
    rows[s] = rows_lo ? dispatch::stacked_hi(padded, e, p) : p;
    if (rows_lo) rows_lo[s] = dispatch::stacked_lo(padded, e, p);
}

// One block per padded row: its token's row, or zeros; f32 (L = float) or rounded parts. With
// `stacked`, both parts into hi at the rows of the stacked layout (lo unused).
template <typename L>
__global__ void gather_padded_kernel(const float* x, int64_t H, int64_t k, const int64_t* row_slot,
                                     const int64_t* offsets, const int64_t* padded, int64_t n_expert, L* hi, L* lo,
                                     bool stacked) {
    const int64_t p = blockIdx.x;
    const int64_t row = dispatch::row_of_padded(offsets, padded, n_expert, p);
    const float* src = row < 0 ? nullptr : x + (row_slot[row] / k) * H;
    L* h = hi + p * H;
    L* l = lo ? lo + p * H : nullptr;
    if (stacked) {
        const int64_t e = dispatch::segment_of(padded, n_expert, p);
        h = hi + dispatch::stacked_hi(padded, e, p) * H;
        l = hi + dispatch::stacked_lo(padded, e, p) * H;
    }
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) launch::store_parts_at(src ? src[i] : 0.0f, h, l, i);
}

// Blocks (token, slice of H); each element sums its k terms in rank order, as the CPU does,
// and rounds as it does.
// With rows_lo, each slot's result is the sum of two rows (its hi and lo parts' products).
__global__ void combine_kernel(const float* results, int64_t H, int64_t k, const int64_t* rows, const int64_t* rows_lo,
                               const float* weights, const float* base, float* out) {
    const int64_t t = blockIdx.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; i < H; i += static_cast<int64_t>(gridDim.y) * blockDim.x) {
        float acc = base ? base[t * H + i] : 0.0f;
        for (int64_t r = 0; r < k; ++r) {
            const int64_t row = rows[t * k + r];
            if (row < 0) continue;
            const float v = rows_lo ? __fadd_rn(results[row * H + i], results[rows_lo[t * k + r] * H + i]) : results[row * H + i];
            // Rounded multiply, then add (no fused multiply-add): the CPU's rounding exactly.
            acc = __fadd_rn(acc, __fmul_rn(weights[t * k + r], v));
        }
        out[t * H + i] = acc;
    }
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

void finish(const char* what) {
    check(cudaGetLastError(), what);
    check(cudaDeviceSynchronize(), what);
}

}  // namespace

namespace launch {

void dispatch(const int32_t* experts, int64_t n_slots, const uint8_t* dropped, int64_t n_expert,
              unsigned long long* counts, int64_t* offsets, int64_t* rows, int64_t* row_slot, cudaStream_t s) {
    check(cudaMemsetAsync(counts, 0, static_cast<size_t>(n_expert + 1) * sizeof(unsigned long long), s),
          "clearing the expert counts");
    if (n_slots > 0) count_kernel<<<blocks_for(n_slots), kThreads, 0, s>>>(experts, n_slots, dropped, counts);
    scan_kernel<<<1, 1, 0, s>>>(counts, n_expert, offsets);
    if (n_slots > 0) {
        rows_kernel<<<static_cast<unsigned>(n_expert), kThreads, 0, s>>>(experts, n_slots, dropped, offsets, rows);
        row_slot_kernel<<<blocks_for(n_slots), kThreads, 0, s>>>(rows, n_slots, row_slot);
    }
    check(cudaGetLastError(), "launching the expert dispatch");
}

void gather_rows(const float* x, int64_t H, int64_t k, const int64_t* row_slot, const int64_t* n_rows,
                 int64_t max_rows, float* gathered, cudaStream_t s) {
    if (max_rows <= 0) return;
    gather_kernel<float>
        <<<static_cast<unsigned>(max_rows), kThreads, 0, s>>>(x, H, k, row_slot, n_rows, gathered, nullptr);
    check(cudaGetLastError(), "launching the row gather");
}

void gather_rows_rounded(const float* x, int64_t H, int64_t k, const int64_t* row_slot, const int64_t* n_rows,
                         int64_t max_rows, DType type, void* hi, void* lo, cudaStream_t s) {
    if (max_rows <= 0) return;
    launch::on_sixteen_bit(type, "gathered rows", [&](auto l) {
        using L = decltype(l);
        gather_kernel<L><<<static_cast<unsigned>(max_rows), kThreads, 0, s>>>(x, H, k, row_slot, n_rows,
                                                                              static_cast<L*>(hi), static_cast<L*>(lo));
    });
    check(cudaGetLastError(), "launching the rounded row gather");
}

void pad_rows(const int32_t* experts, int64_t n_slots, const int64_t* offsets, const int64_t* padded, int64_t* rows,
              int64_t* rows_lo, cudaStream_t s) {
    if (n_slots <= 0) return;
    pad_rows_kernel<<<blocks_for(n_slots), kThreads, 0, s>>>(experts, n_slots, offsets, padded, rows, rows_lo);
    check(cudaGetLastError(), "launching the padding of the rows");
}

void gather_padded(const float* x, int64_t H, int64_t k, const int64_t* row_slot, const int64_t* offsets,
                   const int64_t* padded, int64_t n_expert, int64_t n_padded, float* gathered, cudaStream_t s) {
    if (n_padded <= 0) return;
    gather_padded_kernel<float><<<static_cast<unsigned>(n_padded), kThreads, 0, s>>>(x, H, k, row_slot, offsets, padded,
                                                                                     n_expert, gathered, nullptr, false);
    check(cudaGetLastError(), "launching the padded row gather");
}

void gather_padded_rounded(const float* x, int64_t H, int64_t k, const int64_t* row_slot, const int64_t* offsets,
                           const int64_t* padded, int64_t n_expert, int64_t n_padded, DType type, void* hi, void* lo,
                           cudaStream_t s, bool stacked) {
    if (n_padded <= 0) return;
    launch::on_sixteen_bit(type, "padded rows", [&](auto l) {
        using L = decltype(l);
        gather_padded_kernel<L><<<static_cast<unsigned>(n_padded), kThreads, 0, s>>>(
            x, H, k, row_slot, offsets, padded, n_expert, static_cast<L*>(hi), static_cast<L*>(lo), stacked);
    });
    check(cudaGetLastError(), "launching the rounded padded row gather");
}

void combine_rows(const float* results, int64_t H, int64_t T, int64_t k, const int64_t* rows, const float* weights,
                  const float* base, float* out, cudaStream_t s, const int64_t* rows_lo) {
    if (T <= 0) return;
    // A small step spreads each token's row over several blocks.
    const unsigned slices = static_cast<unsigned>(std::min<int64_t>((H + kThreads - 1) / kThreads, T >= 64 ? 1 : 64 / T));
    combine_kernel<<<dim3(static_cast<unsigned>(T), std::max(1u, slices)), kThreads, 0, s>>>(results, H, k, rows, rows_lo,
                                                                                            weights, base, out);
    check(cudaGetLastError(), "launching the weighted combine");
}

}  // namespace launch

DispatchResult dispatch_slots(const std::vector<int32_t>& experts, int64_t n_expert, const std::vector<uint8_t>& dropped) {
    const int64_t n = static_cast<int64_t>(experts.size());
    const size_t E = static_cast<size_t>(n_expert);
    Buffer<int32_t> d_experts(experts.size());
    Buffer<uint8_t> d_dropped(dropped.size());
    Buffer<unsigned long long> d_counts(E + 1);
    Buffer<int64_t> d_offsets(E + 1), d_rows(experts.size());
    upload(d_experts, experts.data(), experts.size());
    upload(d_dropped, dropped.data(), dropped.size());
    Buffer<int64_t> d_row_slot(experts.size());
    launch::dispatch(d_experts.ptr, n, d_dropped.ptr, n_expert, d_counts.ptr, d_offsets.ptr, d_rows.ptr, d_row_slot.ptr,
                     nullptr);
    finish("dispatching slots");
    DispatchResult out;
    download(out.offsets, d_offsets, E + 1);
    download(out.rows, d_rows, experts.size());
    const size_t total = static_cast<size_t>(out.offsets.back());
    download(out.row_slot, d_row_slot, total);
    return out;
}

std::vector<float> gather_rows(const std::vector<float>& x, int64_t H, int64_t k, const std::vector<int64_t>& row_slot) {
    Buffer<float> d_x(x.size()), d_out(row_slot.size() * static_cast<size_t>(H));
    Buffer<int64_t> d_row_slot(row_slot.size());
    upload(d_x, x.data(), x.size());
    upload(d_row_slot, row_slot.data(), row_slot.size());
    const auto n_rows = static_cast<int64_t>(row_slot.size());
    Buffer<int64_t> d_n_rows(1);
    upload(d_n_rows, &n_rows, 1);
    launch::gather_rows(d_x.ptr, H, k, d_row_slot.ptr, d_n_rows.ptr, n_rows, d_out.ptr, nullptr);
    finish("gathering rows");
    std::vector<float> out;
    download(out, d_out, row_slot.size() * static_cast<size_t>(H));
    return out;
}

StackedRows pad_rows_stacked(const std::vector<int32_t>& experts, const std::vector<int64_t>& offsets,
                             const std::vector<int64_t>& padded, const std::vector<int64_t>& rows, bool stacked) {
    Buffer<int32_t> d_experts(experts.size());
    Buffer<int64_t> d_offsets(offsets.size()), d_padded(padded.size()), d_rows(rows.size()),
        d_lo(stacked ? rows.size() : 0);
    upload(d_experts, experts.data(), experts.size());
    upload(d_offsets, offsets.data(), offsets.size());
    upload(d_padded, padded.data(), padded.size());
    upload(d_rows, rows.data(), rows.size());
    if (stacked) check(cudaMemset(d_lo.ptr, 0x7f, rows.size() * sizeof(int64_t)), "poisoning the output");
    launch::pad_rows(d_experts.ptr, static_cast<int64_t>(rows.size()), d_offsets.ptr, d_padded.ptr, d_rows.ptr, d_lo.ptr,
                     nullptr);
    finish("padding rows");
    StackedRows out;
    download(out.hi, d_rows, rows.size());
    if (stacked) download(out.lo, d_lo, rows.size());
    return out;
}

std::vector<int64_t> pad_rows(const std::vector<int32_t>& experts, const std::vector<int64_t>& offsets,
                              const std::vector<int64_t>& padded, const std::vector<int64_t>& rows) {
    return pad_rows_stacked(experts, offsets, padded, rows, false).hi;
}

std::vector<float> gather_padded(const std::vector<float>& x, int64_t H, int64_t k,
                                 const std::vector<int64_t>& row_slot, const std::vector<int64_t>& offsets,
                                 const std::vector<int64_t>& padded) {
    const auto E = static_cast<int64_t>(offsets.size()) - 1;
    const int64_t n_padded = padded.back();
    Buffer<float> d_x(x.size()), d_out(static_cast<size_t>(n_padded * H));
    Buffer<int64_t> d_row_slot(row_slot.size()), d_offsets(offsets.size()), d_padded(padded.size());
    upload(d_x, x.data(), x.size());
    upload(d_row_slot, row_slot.data(), row_slot.size());
    upload(d_offsets, offsets.data(), offsets.size());
    upload(d_padded, padded.data(), padded.size());
    // Poisoned: the rows of zeros must be written too.
    check(cudaMemset(d_out.ptr, 0xff, static_cast<size_t>(n_padded * H) * sizeof(float)), "poisoning the output");
    launch::gather_padded(d_x.ptr, H, k, d_row_slot.ptr, d_offsets.ptr, d_padded.ptr, E, n_padded, d_out.ptr, nullptr);
    finish("gathering padded rows");
    std::vector<float> out;
    download(out, d_out, static_cast<size_t>(n_padded * H));
    return out;
}

namespace {

// gather_rounded_bf16, or with `stacked` (split, padded) both parts into hi at the rows of the
// stacked layout (lo empty).
Bf16Parts gather_rounded(const std::vector<float>& x, int64_t H, int64_t k, const std::vector<int64_t>& row_slot,
                         const std::vector<int64_t>& offsets, const std::vector<int64_t>& padded, bool split,
                         bool stacked) {
    const auto E = static_cast<int64_t>(offsets.size()) - 1;
    const int64_t rows = padded.empty() ? static_cast<int64_t>(row_slot.size()) : padded.back();
    const size_t n = static_cast<size_t>(rows * H);
    Buffer<float> d_x(x.size());
    Buffer<int64_t> d_row_slot(row_slot.size()), d_offsets(offsets.size()), d_padded(padded.size()), d_rows(1);
    Buffer<uint16_t> d_hi(stacked ? 2 * n : n), d_lo(split ? n : 0);
    upload(d_x, x.data(), x.size());
    upload(d_row_slot, row_slot.data(), row_slot.size());
    upload(d_offsets, offsets.data(), offsets.size());
    upload(d_padded, padded.data(), padded.size());
    upload(d_rows, &rows, 1);
    // Poisoned: every part must be written (0xffff is a BF16 NaN).
    check(cudaMemset(d_hi.ptr, 0xff, (stacked ? 2 * n : n) * 2), "poisoning the output");
    if (split) check(cudaMemset(d_lo.ptr, 0xff, n * 2), "poisoning the output");
    if (padded.empty())
        launch::gather_rows_rounded(d_x.ptr, H, k, d_row_slot.ptr, d_rows.ptr, rows, DType::bf16, d_hi.ptr, d_lo.ptr,
                                    nullptr);
    else
        launch::gather_padded_rounded(d_x.ptr, H, k, d_row_slot.ptr, d_offsets.ptr, d_padded.ptr, E, rows, DType::bf16,
                                      d_hi.ptr, d_lo.ptr, nullptr, stacked);
    finish("gathering rounded rows");
    Bf16Parts out;
    download(out.hi, d_hi, stacked ? 2 * n : n);
    if (split && !stacked) download(out.lo, d_lo, n);
    return out;
}

}  // namespace

Bf16Parts gather_rounded_bf16(const std::vector<float>& x, int64_t H, int64_t k, const std::vector<int64_t>& row_slot,
                              const std::vector<int64_t>& offsets, const std::vector<int64_t>& padded, bool split) {
    return gather_rounded(x, H, k, row_slot, offsets, padded, split, false);
}

std::vector<uint16_t> gather_stacked_bf16(const std::vector<float>& x, int64_t H, int64_t k,
                                          const std::vector<int64_t>& row_slot, const std::vector<int64_t>& offsets,
                                          const std::vector<int64_t>& padded) {
    return gather_rounded(x, H, k, row_slot, offsets, padded, true, true).hi;
}

std::vector<float> combine_rows(const std::vector<float>& results, int64_t H, int64_t T, int64_t k,
                                const std::vector<int64_t>& rows, const std::vector<float>& weights,
                                const std::vector<float>& base, const std::vector<int64_t>& rows_lo) {
    const size_t n_out = static_cast<size_t>(T * H);
    Buffer<float> d_results(results.size()), d_weights(weights.size()), d_base(base.size()), d_out(n_out);
    Buffer<int64_t> d_rows(rows.size()), d_rows_lo(rows_lo.size());
    upload(d_results, results.data(), results.size());
    upload(d_weights, weights.data(), weights.size());
    upload(d_base, base.data(), base.size());
    upload(d_rows, rows.data(), rows.size());
    upload(d_rows_lo, rows_lo.data(), rows_lo.size());
    launch::combine_rows(d_results.ptr, H, T, k, d_rows.ptr, d_weights.ptr, base.empty() ? nullptr : d_base.ptr,
                         d_out.ptr, nullptr, rows_lo.empty() ? nullptr : d_rows_lo.ptr);
    finish("combining rows");
    std::vector<float> out;
    download(out, d_out, n_out);
    return out;
}

}  // namespace moe::cuda
