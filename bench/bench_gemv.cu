// How fast a decode step's matrix-vector product can stream BF16 weights on this GPU: y = W·x
// with W [rows, n] BF16 and x f32 in shared memory, one output row per warp, in variants of
//   rows: how many rows a warp reads at once (all their 16-byte loads issued before any product),
//   blocks: blocks of 256 threads per multiprocessor the compiler is held to (registers),
//   hint: plain read-only loads, or loads that skip L1 and ask L2 for 256-byte sectors,
//   grid: blocks that stay and stride over the rows, or one block per 8·rows rows;
//   norm: x normalised in each block first (RMSNorm, sum of squares in double, as the fused
//   decode kernels do) or copied;
// against a kernel that only reads the bytes (the ceiling), and the engine's own fused product
// (launch::fused_gemv, with and without its RMSNorm) on the same matrices. Shapes of DeepSeekMoE 16B's decode:
// q, k, v (6144 × 2048, 25 MB) and the routed experts' gate and up (6 × 2816 × 2048, 69 MB).
// Then what launches cost a stream of weights ("launches"): reads of one size, 2 to 128 MB,
// each a launch of its own, back to back in a CUDA graph (a decode step's form), fitted as
// time = fixed + bytes / rate; and a decode step's reads of DeepSeekMoE 16B (28 layers of
// q, k, v 25 MB, o 8.4 MB, router and shared gate and up 24 MB, six experts' gate and up 69 MB,
// down 46 MB) as 140 launches in a graph against one launch that reads the same bytes.
// Usage: bench_gemv [repeats]. Prints JSON: GB/s per variant and shape, and the launches' figures.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/cuda/decode_kernels.h"
#include "engine/cuda/row_math.cuh"

namespace {

void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        std::fprintf(stderr, "bench_gemv: %s: %s\n", what, cudaGetErrorString(e));
        std::exit(1);
    }
}

constexpr int kThreads = 256, kWarps = kThreads / 32, kChunks = 8;  // 8 × 16 B per lane: 4 KB per row of 2048

// HINT: the engine's streamed weight loads (row_math.cuh, MOEWB_CUDA_WEIGHT_LOADS=stream).
template <bool HINT>
__device__ inline uint4 load(const uint4* p) {
    return moe::cuda::launch::Chunking<__nv_bfloat16, HINT>::load(reinterpret_cast<const __nv_bfloat16*>(p));
}

__device__ inline float dot8(const uint4& raw, const float* xs) {
    const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(&raw);
    const float4 a = reinterpret_cast<const float4*>(xs)[0], b = reinterpret_cast<const float4*>(xs)[1];
    return __bfloat162float(v[0]) * a.x + __bfloat162float(v[1]) * a.y + __bfloat162float(v[2]) * a.z +
           __bfloat162float(v[3]) * a.w + __bfloat162float(v[4]) * b.x + __bfloat162float(v[5]) * b.y +
           __bfloat162float(v[6]) * b.z + __bfloat162float(v[7]) * b.w;
}

// n = 2048 (kChunks chunks of 256 elements per row).
template <int R, int MINB, bool HINT, bool NORM = false>
__global__ void __launch_bounds__(kThreads, MINB) gemv(const __nv_bfloat16* w, const float* x, float* y, int rows) {
    constexpr int n = kChunks * 256;
    __shared__ __align__(16) float xs[n];
    if constexpr (NORM) {
        __shared__ double partial[kThreads];
        double ss = 0;
        for (int i = threadIdx.x; i < n; i += kThreads) ss += static_cast<double>(x[i]) * x[i];
        partial[threadIdx.x] = ss;
        __syncthreads();
        for (int st = kThreads / 2; st > 0; st /= 2) {
            if (threadIdx.x < st) partial[threadIdx.x] += partial[threadIdx.x + st];
            __syncthreads();
        }
        const float scale = static_cast<float>(1.0 / sqrt(partial[0] / n + 1e-6));
        for (int i = threadIdx.x; i < n; i += kThreads) xs[i] = __fmul_rn(x[i], scale);
    } else {
        for (int i = threadIdx.x; i < n; i += kThreads) xs[i] = x[i];
    }
    __syncthreads();
    const int lane = threadIdx.x % 32;
    const int stride = gridDim.x * kWarps * R;
    for (int r0 = (blockIdx.x * kWarps + threadIdx.x / 32) * R; r0 < rows; r0 += stride) {
        uint4 c[R][kChunks];
#pragma unroll
        for (int r = 0; r < R; ++r)
#pragma unroll
            for (int j = 0; j < kChunks; ++j)
                if (r0 + r < rows) c[r][j] = load<HINT>(reinterpret_cast<const uint4*>(w + static_cast<size_t>(r0 + r) * n + j * 256 + lane * 8));
#pragma unroll
        for (int r = 0; r < R; ++r) {
            float s = 0;
#pragma unroll
            for (int j = 0; j < kChunks; ++j) s += dot8(c[r][j], xs + j * 256 + lane * 8);
            for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);
            if (lane == 0 && r0 + r < rows) y[r0 + r] = s;
        }
    }
}

// The bytes only: every 16 bytes read once, xor-folded so that nothing is optimised away.
__global__ void read_only(const uint4* p, size_t n, unsigned* sink) {
    unsigned acc = 0;
    for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<size_t>(gridDim.x) * blockDim.x) {
        const uint4 v = __ldg(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) *sink = acc;
}

// The bytes only, four 16-byte loads in flight per thread: a stream's ceiling.
__global__ void read_deep(const uint4* p, size_t n, unsigned* sink) {
    unsigned acc = 0;
    const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
    size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
    for (; i + 3 * stride < n; i += 4 * stride) {
        const uint4 a = __ldg(p + i), b = __ldg(p + i + stride), c = __ldg(p + i + 2 * stride),
                    d = __ldg(p + i + 3 * stride);
        acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
    }
    for (; i < n; i += stride) {
        const uint4 v = __ldg(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x12345678u) *sink = acc;
}

// Seconds a replay of `graph` takes, best of `reps` after a warm-up.
double replay_seconds(cudaGraphExec_t graph, cudaStream_t s, int reps) {
    cudaEvent_t a, b;
    check(cudaEventCreate(&a), "event");
    check(cudaEventCreate(&b), "event");
    check(cudaGraphLaunch(graph, s), "graph launch");
    double best = 1e30;
    for (int r = 0; r < reps; ++r) {
        check(cudaEventRecord(a, s), "record");
        check(cudaGraphLaunch(graph, s), "graph launch");
        check(cudaEventRecord(b, s), "record");
        check(cudaEventSynchronize(b), "sync");
        float ms = 0;
        check(cudaEventElapsedTime(&ms, a, b), "elapsed");
        best = std::min(best, static_cast<double>(ms) * 1e-3);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return best;
}

// A graph of read_deep launches over consecutive pieces of `base`, `sizes[i]` bytes each.
cudaGraphExec_t reads_graph(const char* base, const std::vector<size_t>& sizes, int blocks, unsigned* sink,
                            cudaStream_t s) {
    cudaGraph_t g;
    check(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), "capture");
    size_t at = 0;
    for (const size_t b : sizes) {
        read_deep<<<blocks, 256, 0, s>>>(reinterpret_cast<const uint4*>(base + at), b / 16, sink);
        at += (b + 255) / 256 * 256;
    }
    check(cudaStreamEndCapture(s, &g), "capture");
    cudaGraphExec_t e;
    check(cudaGraphInstantiate(&e, g, 0), "instantiate");
    cudaGraphDestroy(g);
    return e;
}

struct Launches {
    std::vector<std::pair<double, double>> per_size;  // (MB, µs a launch)
    double fixed_us = 0, rate_gbs = 0;                // the least-squares fit
    double step_launches_us = 0, step_one_us = 0, step_bytes = 0;
};

// What launches cost a stream of weights (see the file's head); false when the device lacks the
// memory for a decode step's weights.
bool launch_figures(int sms, int reps, Launches& out) {
    const std::vector<double> layer_mb = {25.2, 8.4, 24.1, 69.2, 46.1};
    size_t step = 0;
    std::vector<size_t> step_sizes;
    for (int l = 0; l < 28; ++l)
        for (const double mb : layer_mb) {
            step_sizes.push_back(static_cast<size_t>(mb * 1e6) / 256 * 256);
            step += step_sizes.back();
        }
    char* base = nullptr;
    unsigned* sink = nullptr;
    if (cudaMalloc(&base, step + (size_t(1) << 20)) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    check(cudaMalloc(&sink, 4), "alloc");
    check(cudaMemset(base, 0x3c, step), "fill");
    cudaStream_t s;
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
    const int blocks = sms * 8;
    // Reads of one size, 24 launches over distinct bytes (more than L2 holds from 4 MB on).
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const double mb : {2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0}) {
        const size_t b = static_cast<size_t>(mb * (1 << 20));
        const int n = static_cast<int>(std::min<size_t>(24, step / b));
        const cudaGraphExec_t g = reads_graph(base, std::vector<size_t>(static_cast<size_t>(n), b), blocks, sink, s);
        const double us = replay_seconds(g, s, reps) / n * 1e6;
        cudaGraphExecDestroy(g);
        out.per_size.emplace_back(mb, us);
        const double x = static_cast<double>(b);
        sx += x;
        sy += us;
        sxx += x * x;
        sxy += x * us;
    }
    const double k = static_cast<double>(out.per_size.size());
    const double slope = (k * sxy - sx * sy) / (k * sxx - sx * sx);  // µs per byte
    out.fixed_us = (sy - slope * sx) / k;
    out.rate_gbs = 1e-3 / slope;
    // A decode step's reads: 140 launches, and one.
    const cudaGraphExec_t many = reads_graph(base, step_sizes, blocks, sink, s);
    out.step_launches_us = replay_seconds(many, s, reps) * 1e6;
    cudaGraphExecDestroy(many);
    const cudaGraphExec_t one = reads_graph(base, {step}, blocks, sink, s);
    out.step_one_us = replay_seconds(one, s, reps) * 1e6;
    cudaGraphExecDestroy(one);
    out.step_bytes = static_cast<double>(step);
    check(cudaGetLastError(), "reads");
    cudaStreamDestroy(s);
    cudaFree(base);
    cudaFree(sink);
    return true;
}

struct Result {
    std::string name;
    double gbs;
};

template <typename Launch>
double time_gbs(Launch launch, size_t bytes, int reps) {
    cudaEvent_t a, b;
    check(cudaEventCreate(&a), "event");
    check(cudaEventCreate(&b), "event");
    for (int i = 0; i < 3; ++i) launch(i);
    check(cudaEventRecord(a), "record");
    for (int i = 0; i < reps; ++i) launch(i);
    check(cudaEventRecord(b), "record");
    check(cudaEventSynchronize(b), "sync");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "elapsed");
    check(cudaGetLastError(), "launch");
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return static_cast<double>(bytes) * reps / (ms * 1e-3) / 1e9;
}

template <int R, int MINB, bool HINT, bool NORM = false>
void variants(std::vector<Result>& out, const __nv_bfloat16* w, int copies, const float* x, float* y, int rows, int sms,
              int reps, const std::string& shape) {
    const size_t bytes = static_cast<size_t>(rows) * 2048 * 2;
    auto at = [&](int i) { return w + static_cast<size_t>(i % copies) * rows * 2048; };
    const std::string base = shape + " rows=" + std::to_string(R) + " blocks=" + std::to_string(MINB) +
                             (HINT ? " hint=L2_256B" : " hint=none") + (NORM ? " norm=yes" : "");
    const unsigned stay = static_cast<unsigned>(sms * MINB);
    const unsigned full = static_cast<unsigned>((rows + kWarps * R - 1) / (kWarps * R));
    out.push_back({base + " grid=stay", time_gbs([&](int i) { gemv<R, MINB, HINT, NORM><<<stay, kThreads>>>(at(i), x, y, rows); }, bytes, reps)});
    out.push_back({base + " grid=full", time_gbs([&](int i) { gemv<R, MINB, HINT, NORM><<<full, kThreads>>>(at(i), x, y, rows); }, bytes, reps)});
}

}  // namespace

int main(int argc, char** argv) {
    const int reps = argc > 1 ? std::atoi(argv[1]) : 50;
    int sms = 0;
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "device");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "device");
    std::vector<Result> out;
    {
        // The same product with its copies spread over most of the device's memory (as a model's
        // weights are) rather than packed in 400 MB: what the translation of addresses costs.
        size_t free_b = 0, total_b = 0;
        check(cudaMemGetInfo(&free_b, &total_b), "memory");
        const size_t span = free_b / 2 / (size_t(1) << 30) * (size_t(1) << 30);
        const int rows = 6144;
        const size_t n = static_cast<size_t>(rows) * 2048;
        char* big = nullptr;
        float *x = nullptr, *y = nullptr;
        if (span >= (size_t(4) << 30) && cudaMalloc(&big, span) == cudaSuccess) {
            check(cudaMalloc(&x, 2048 * 4), "alloc");
            check(cudaMalloc(&y, static_cast<size_t>(rows) * 4), "alloc");
            check(cudaMemset(x, 0, 2048 * 4), "fill");
            const int copies = 16;
            const size_t step = span / copies / 256 * 256;
            for (int c = 0; c < copies; ++c) check(cudaMemset(big + c * step, 0x3c, n * 2), "fill");
            auto at = [&](int i) { return reinterpret_cast<const __nv_bfloat16*>(big + (i % copies) * step); };
            const unsigned stay = static_cast<unsigned>(sms * 2);
            out.push_back({"qkv 6144x2048 rows=1 blocks=2 hint=none grid=stay spread=" + std::to_string(span >> 30) + "GB",
                           time_gbs([&](int i) { gemv<1, 2, false><<<stay, kThreads>>>(at(i), x, y, rows); }, n * 2, reps)});
            out.push_back({"qkv 6144x2048 rows=1 blocks=2 hint=L2_256B grid=stay spread=" + std::to_string(span >> 30) + "GB",
                           time_gbs([&](int i) { gemv<1, 2, true><<<stay, kThreads>>>(at(i), x, y, rows); }, n * 2, reps)});
            cudaFree(big);
            cudaFree(x);
            cudaFree(y);
        }
    }
    for (const int rows : {6144, 6 * 2816}) {
        const std::string shape = rows == 6144 ? "qkv 6144x2048" : "experts 16896x2048";
        // Copies of the matrix read in turn, 400 MB or more in all: none is still in L2 when read again.
        __nv_bfloat16* w = nullptr;
        float *x = nullptr, *y = nullptr;
        unsigned* sink = nullptr;
        const size_t n = static_cast<size_t>(rows) * 2048;
        const int copies = static_cast<int>((size_t(400) << 20) / (n * 2) + 1);
        check(cudaMalloc(&w, n * 2 * copies), "alloc");
        check(cudaMalloc(&x, 2048 * 4), "alloc");
        check(cudaMalloc(&y, static_cast<size_t>(rows) * 4), "alloc");
        check(cudaMalloc(&sink, 4), "alloc");
        check(cudaMemset(w, 0x3c, n * 2 * copies), "fill");
        check(cudaMemset(x, 0, 2048 * 4), "fill");
        out.push_back({shape + " read only", time_gbs([&](int i) { read_only<<<sms * 8, 256>>>(reinterpret_cast<const uint4*>(w + (i % copies) * n), n / 8, sink); }, n * 2, reps)});
        for (const bool with_norm : {false, true}) {
            float* norm = nullptr;
            check(cudaMalloc(&norm, 2048 * 4), "alloc");
            check(cudaMemset(norm, 0, 2048 * 4), "fill");
            out.push_back({shape + " engine fused_gemv" + (with_norm ? " norm=yes" : ""), time_gbs([&](int i) {
                               moe::cuda::launch::GemvPart part;
                               part.w = w + static_cast<size_t>(i % copies) * n;
                               part.rows = rows;
                               part.y = y;
                               part.ldy = rows;
                               moe::cuda::launch::fused_gemv(x, 1, 2048, with_norm ? norm : nullptr, 1e-6f, nullptr, &part, 1, nullptr);
                           }, n * 2, reps)});
            cudaFree(norm);
        }
        variants<1, 2, false>(out, w, copies, x, y, rows, sms, reps, shape);
        variants<1, 2, true>(out, w, copies, x, y, rows, sms, reps, shape);
        variants<1, 2, false, true>(out, w, copies, x, y, rows, sms, reps, shape);
        variants<1, 2, true, true>(out, w, copies, x, y, rows, sms, reps, shape);
        variants<1, 4, false>(out, w, copies, x, y, rows, sms, reps, shape);
        variants<1, 4, true>(out, w, copies, x, y, rows, sms, reps, shape);
        variants<2, 2, false>(out, w, copies, x, y, rows, sms, reps, shape);
        variants<2, 2, true>(out, w, copies, x, y, rows, sms, reps, shape);
        variants<4, 1, false>(out, w, copies, x, y, rows, sms, reps, shape);
        variants<4, 1, true>(out, w, copies, x, y, rows, sms, reps, shape);
        cudaFree(w);
        cudaFree(x);
        cudaFree(y);
        cudaFree(sink);
    }
    Launches l;
    const bool have_launches = launch_figures(sms, std::max(3, reps / 10), l);
    std::printf("{\n  \"device\": \"%s\",\n  \"results\": [\n", prop.name);
    for (size_t i = 0; i < out.size(); ++i)
        std::printf("    {\"variant\": \"%s\", \"gb_s\": %.1f}%s\n", out[i].name.c_str(), out[i].gbs, i + 1 < out.size() ? "," : "");
    std::printf("  ]");
    if (have_launches) {
        // Per size: µs a launch and GB/s; the fit; a decode step's reads as launches and as one.
        std::printf(",\n  \"launches\": {\n    \"per_size\": [\n");
        for (size_t i = 0; i < l.per_size.size(); ++i) {
            const auto [mb, us] = l.per_size[i];
            std::printf("      {\"mib\": %.0f, \"us_per_launch\": %.2f, \"gb_s\": %.1f}%s\n", mb, us,
                        mb * (1 << 20) / (us * 1e-6) / 1e9, i + 1 < l.per_size.size() ? "," : "");
        }
        std::printf("    ],\n    \"fixed_us_per_launch\": %.2f,\n    \"streaming_gb_s\": %.1f,\n", l.fixed_us,
                    l.rate_gbs);
        std::printf("    \"decode_step_bytes\": %.0f,\n    \"decode_step_as_140_launches_us\": %.1f,\n", l.step_bytes,
                    l.step_launches_us);
        std::printf("    \"decode_step_as_one_launch_us\": %.1f\n  }", l.step_one_us);
    }
    std::printf("\n}\n");
    return 0;
}
