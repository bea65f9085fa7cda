// The MoE dispatch on the device; see dispatch_kernels.h.
#include "engine/cuda/dispatch_kernels.h"

#include <cuda_runtime.h>

#include <cub/block/block_scan.cuh>

#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
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

// One block per gathered row.
__global__ void gather_kernel(const float* x, int64_t H, int64_t k, const int64_t* row_slot, float* gathered) {
    const int64_t r = blockIdx.x;
    const float* src = x + (row_slot[r] / k) * H;
    float* dst = gathered + r * H;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) dst[i] = src[i];
}

// One block per token; each element sums its k terms in rank order, as the CPU does, and
// rounds as it does.
__global__ void combine_kernel(const float* results, int64_t H, int64_t k, const int64_t* rows, const float* weights,
                               const float* base, float* out) {
    const int64_t t = blockIdx.x;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
        float acc = base ? base[t * H + i] : 0.0f;
        for (int64_t r = 0; r < k; ++r) {
            const int64_t row = rows[t * k + r];
            // Rounded multiply, then add (no fused multiply-add): the CPU's rounding exactly.
            if (row >= 0) acc = __fadd_rn(acc, __fmul_rn(weights[t * k + r], results[row * H + i]));
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

DispatchResult dispatch_slots(const std::vector<int32_t>& experts, int64_t n_expert, const std::vector<uint8_t>& dropped) {
    const int64_t n = static_cast<int64_t>(experts.size());
    const size_t E = static_cast<size_t>(n_expert);
    Buffer<int32_t> d_experts(experts.size());
    Buffer<uint8_t> d_dropped(dropped.size());
    Buffer<unsigned long long> d_counts(E + 1);
    Buffer<int64_t> d_offsets(E + 1), d_rows(experts.size());
    upload(d_experts, experts.data(), experts.size());
    upload(d_dropped, dropped.data(), dropped.size());
    check(cudaMemset(d_counts.ptr, 0, (E + 1) * sizeof(unsigned long long)), "clearing the expert counts");
    if (n > 0) {
        count_kernel<<<blocks_for(n), kThreads>>>(d_experts.ptr, n, d_dropped.ptr, d_counts.ptr);
        finish("counting slots per expert");
    }
    scan_kernel<<<1, 1>>>(d_counts.ptr, n_expert, d_offsets.ptr);
    finish("expert offsets");
    if (n > 0) {
        rows_kernel<<<static_cast<unsigned>(n_expert), kThreads>>>(d_experts.ptr, n, d_dropped.ptr, d_offsets.ptr, d_rows.ptr);
        finish("assigning rows");
    }
    DispatchResult out;
    download(out.offsets, d_offsets, E + 1);
    download(out.rows, d_rows, experts.size());
    const size_t total = static_cast<size_t>(out.offsets.back());
    Buffer<int64_t> d_row_slot(total);
    if (n > 0) {
        row_slot_kernel<<<blocks_for(n), kThreads>>>(d_rows.ptr, n, d_row_slot.ptr);
        finish("inverting rows");
    }
    download(out.row_slot, d_row_slot, total);
    return out;
}

std::vector<float> gather_rows(const std::vector<float>& x, int64_t H, int64_t k, const std::vector<int64_t>& row_slot) {
    Buffer<float> d_x(x.size()), d_out(row_slot.size() * static_cast<size_t>(H));
    Buffer<int64_t> d_row_slot(row_slot.size());
    upload(d_x, x.data(), x.size());
    upload(d_row_slot, row_slot.data(), row_slot.size());
    if (!row_slot.empty()) {
        gather_kernel<<<static_cast<unsigned>(row_slot.size()), kThreads>>>(d_x.ptr, H, k, d_row_slot.ptr, d_out.ptr);
        finish("gathering rows");
    }
    std::vector<float> out;
    download(out, d_out, row_slot.size() * static_cast<size_t>(H));
    return out;
}

std::vector<float> combine_rows(const std::vector<float>& results, int64_t H, int64_t T, int64_t k,
                                const std::vector<int64_t>& rows, const std::vector<float>& weights,
                                const std::vector<float>& base) {
    const size_t n_out = static_cast<size_t>(T * H);
    Buffer<float> d_results(results.size()), d_weights(weights.size()), d_base(base.size()), d_out(n_out);
    Buffer<int64_t> d_rows(rows.size());
    upload(d_results, results.data(), results.size());
    upload(d_weights, weights.data(), weights.size());
    upload(d_base, base.data(), base.size());
    upload(d_rows, rows.data(), rows.size());
    if (T > 0) {
        combine_kernel<<<static_cast<unsigned>(T), kThreads>>>(d_results.ptr, H, k, d_rows.ptr, d_weights.ptr,
                                                               base.empty() ? nullptr : d_base.ptr, d_out.ptr);
        finish("combining rows");
    }
    std::vector<float> out;
    download(out, d_out, n_out);
    return out;
}

}  // namespace moe::cuda
