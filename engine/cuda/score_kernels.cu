// Scoring rows of logits on the device; see score_kernels.h.
#include "engine/cuda/score_kernels.h"

#include <cmath>

#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/ops_kernels.h"
#include "engine/error.h"

namespace moe::cuda::launch {

namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

// The largest value so far and its first index (-1: none larger than −∞ seen).
struct Best {
    float v;
    int32_t i;
};
__device__ inline Best better(Best a, Best b) {
    if (b.i < 0) return a;
    if (a.i < 0) return b;
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}
__device__ inline Best warp_best(Best b) {
    for (int o = 16; o > 0; o /= 2) {
        Best other{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
        b = better(b, other);
    }
    return b;
}
// A sum of the block's threads' doubles, the same bits in every thread: lanes paired by xor (each
// pair's sum the same in both lanes), then the warps' sums by warp 0 the same way.
__device__ inline double block_sum(double v, double* shared) {
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads();  // shared free from an earlier sum
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    if (warp == 0) {
        double w = lane < kWarps ? shared[lane] : 0.0;
        for (int o = 16; o > 0; o /= 2) w += __shfl_xor_sync(0xffffffffu, w, o);
        if (lane == 0) shared[kWarps] = w;
    }
    __syncthreads();
    return shared[kWarps];
}

__global__ void __launch_bounds__(kThreads)
    score_rows_kernel(const float* logits, int64_t V, const int32_t* targets, float* keep, const float* reference,
                      DeviceRowScore* out) {
    const int64_t r = blockIdx.x;
    const float* row = logits + r * V;
    __shared__ Best warps_best[kWarps];
    __shared__ double sums[kWarps + 1];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;

    // 1. The largest logit and its first index: each thread's elements in order, strictly
    // larger wins (a NaN never), then the threads' by value and index.
    Best b{-INFINITY, -1};
    for (int64_t v = threadIdx.x; v < V; v += kThreads) {
        const float x = row[v];
        if (x > b.v) b = {x, static_cast<int32_t>(v)};
    }
    b = warp_best(b);
    if (lane == 0) warps_best[warp] = b;
    __syncthreads();
    Best all = warps_best[0];
    for (int w = 1; w < kWarps; ++w) all = better(all, warps_best[w]);
    const float first = row[0];
    // log_sum_exp's max starts from the row's first: a NaN there stays.
    const double mx = isnan(first) ? static_cast<double>(first) : all.i < 0 ? -INFINITY : static_cast<double>(all.v);

    // 2. Σ exp(l − max) in double.
    double s = 0.0;
    for (int64_t v = threadIdx.x; v < V; v += kThreads) s += exp(static_cast<double>(row[v]) - mx);
    const double sum = block_sum(s, sums);
    const double log_sum = log(sum), log_z = mx + log_sum;

    // 3. The log-probabilities, kept and against the reference.
    double kl = 0.0;
    if (keep || reference) {
        float* kr = keep ? keep + r * V : nullptr;
        const float* pr = reference ? reference + r * V : nullptr;
        double k = 0.0;
        for (int64_t v = threadIdx.x; v < V; v += kThreads) {
            const float q = static_cast<float>(static_cast<double>(row[v]) - log_z);
            if (kr) kr[v] = q;
            if (pr) {
                const double p = pr[v];
                k += exp(p) * (p - static_cast<double>(q));
            }
        }
        if (pr) kl = block_sum(k, sums);
    }
    if (threadIdx.x == 0) {
        DeviceRowScore o{};
        const int32_t t = targets ? targets[r] : -1;
        o.nll = t >= 0 ? -(static_cast<double>(row[t]) - mx - log_sum) : 0.0;
        o.kl = kl;
        o.top = isnan(first) || all.i < 0 ? 0 : all.i;
        out[r] = o;
    }
}

}  // namespace

void score_rows(const float* logits, int64_t rows, int64_t V, const int32_t* targets, float* keep,
                const float* reference, DeviceRowScore* out, cudaStream_t s) {
    if (rows <= 0) return;
    score_rows_kernel<<<static_cast<unsigned>(rows), kThreads, 0, s>>>(logits, V, targets, keep, reference, out);
    check(cudaGetLastError(), "launching the row scoring kernel");
}

}  // namespace moe::cuda::launch

namespace moe::cuda {

std::vector<RowScore> score_rows(const std::vector<float>& logits, int64_t V, const std::vector<int32_t>& targets,
                                 const std::vector<float>& reference, std::vector<float>* kept) {
    const auto n = static_cast<int64_t>(targets.size());
    const auto cells = static_cast<std::size_t>(n * V);
    MOE_ASSERT(logits.size() == cells && (reference.empty() || reference.size() == cells));
    Buffer<float> l(cells), keep(kept ? cells : 0), ref(reference.size());
    Buffer<int32_t> t(targets.size());
    Buffer<launch::DeviceRowScore> out(targets.size());
    upload(l, logits.data(), cells);
    upload(ref, reference.data(), reference.size());
    upload(t, targets.data(), targets.size());
    launch::score_rows(l.ptr, n, V, t.ptr, keep.ptr, ref.ptr, out.ptr, nullptr);
    check(cudaDeviceSynchronize(), "scoring rows");
    std::vector<launch::DeviceRowScore> d;
    download(d, out, targets.size());
    if (kept) download(*kept, keep, cells);
    std::vector<RowScore> scores;
    for (const auto& r : d) scores.push_back(RowScore{r.nll, r.kl, r.top});
    return scores;
}

}  // namespace moe::cuda
