// Row-wise and elementwise operations on the device; see ops_kernels.h.
#include "engine/cuda/ops_kernels.h"

#include <cuda_runtime.h>

#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/launch.h"
#include "engine/cuda/row_math.cuh"

namespace moe::cuda {

namespace {

constexpr int kThreads = 256;

// One block of launch::kNormThreads per row: the sum of squares in double (as the CPU), then
// y = (x · scale) · w.
__global__ void rms_norm_kernel(const float* x, const float* w, int64_t n, float eps, float* y) {
    const float* xr = x + blockIdx.x * n;
    const float scale = launch::block_rms_scale(xr, n, eps);
    float* yr = y + blockIdx.x * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = launch::rms_apply(xr[i], scale, w[i]);
}

// The same row after the residual branch b is added to it (x updated in place).
__global__ void add_rms_norm_kernel(float* x, const float* b, const float* w, int64_t n, float eps, float* y) {
    float* xr = x + blockIdx.x * n;
    const float* br = b + blockIdx.x * n;
    // Each thread adds the elements it reads again below: no barrier needed before the norm.
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) xr[i] = __fadd_rn(xr[i], br[i]);
    const float scale = launch::block_rms_scale(xr, n, eps);
    float* yr = y + blockIdx.x * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = launch::rms_apply(xr[i], scale, w[i]);
}

// One block per (token, head): out = x·cos(emb) + rotate_half(x)·sin(emb), no fused multiply-add.
__global__ void rope_halves_kernel(float* x, int64_t n_heads, int64_t hd, int64_t ld, const float* cos_t,
                                   const float* sin_t) {
    const int64_t t = blockIdx.x / n_heads, h = blockIdx.x % n_heads, half = hd / 2;
    float* v = x + t * ld + h * hd;
    launch::rope_head(v, cos_t + t * half, sin_t + t * half, half);
}

__global__ void silu_mul_kernel(const float* g, const float* u, int64_t n, float* h) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) h[i] = launch::silu_mul_rn(g[i], u[i]);
}

__global__ void silu_mul_pairs_kernel(const float* gu, int64_t rows, int64_t F, float* h) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * F) return;
    const int64_t r = i / F, f = i % F;
    h[i] = launch::silu_mul_rn(gu[r * 2 * F + f], gu[r * 2 * F + F + f]);
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = __fadd_rn(x[i], y[i]);
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

void finish(const char* what) {
    check(cudaGetLastError(), what);
    check(cudaDeviceSynchronize(), what);
}

}  // namespace

namespace launch {

void rms_norm(const float* x, const float* w, int64_t T, int64_t n, float eps, float* y, cudaStream_t s) {
    if (T <= 0) return;
    rms_norm_kernel<<<static_cast<unsigned>(T), launch::kNormThreads, 0, s>>>(x, w, n, eps, y);
    check(cudaGetLastError(), "launching RMSNorm");
}

void add_rms_norm(float* x, const float* b, const float* w, int64_t T, int64_t n, float eps, float* y, cudaStream_t s) {
    if (T <= 0) return;
    add_rms_norm_kernel<<<static_cast<unsigned>(T), launch::kNormThreads, 0, s>>>(x, b, w, n, eps, y);
    check(cudaGetLastError(), "launching the residual add and RMSNorm");
}

void rope_halves(float* x, int64_t T, int64_t n_heads, int64_t hd, int64_t ld, const float* cos, const float* sin,
                 cudaStream_t s) {
    if (T <= 0 || n_heads <= 0) return;
    rope_halves_kernel<<<static_cast<unsigned>(T * n_heads), 64, 0, s>>>(x, n_heads, hd, ld, cos, sin);
    check(cudaGetLastError(), "launching the rotary embedding");
}

void silu_mul(const float* g, const float* u, int64_t n, float* h, cudaStream_t s) {
    if (n <= 0) return;
    silu_mul_kernel<<<blocks_for(n), kThreads, 0, s>>>(g, u, n, h);
    check(cudaGetLastError(), "launching the SiLU-gated product");
}

void silu_mul_pairs(const float* gu, int64_t rows, int64_t F, float* h, cudaStream_t s) {
    if (rows <= 0 || F <= 0) return;
    silu_mul_pairs_kernel<<<blocks_for(rows * F), kThreads, 0, s>>>(gu, rows, F, h);
    check(cudaGetLastError(), "launching the SiLU-gated product");
}

void add(float* x, const float* y, int64_t n, cudaStream_t s) {
    if (n <= 0) return;
    add_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, y, n);
    check(cudaGetLastError(), "launching a residual add");
}

}  // namespace launch

std::vector<float> rms_norm(const std::vector<float>& x, const std::vector<float>& w, int64_t T, int64_t n, float eps) {
    Buffer<float> d_x(x.size()), d_w(w.size()), d_y(x.size());
    upload(d_x, x.data(), x.size());
    upload(d_w, w.data(), w.size());
    launch::rms_norm(d_x.ptr, d_w.ptr, T, n, eps, d_y.ptr, nullptr);
    finish("RMSNorm");
    std::vector<float> y;
    download(y, d_y, x.size());
    return y;
}

std::pair<std::vector<float>, std::vector<float>> add_rms_norm(const std::vector<float>& x, const std::vector<float>& b,
                                                              const std::vector<float>& w, int64_t T, int64_t n, float eps) {
    Buffer<float> d_x(x.size()), d_b(b.size()), d_w(w.size()), d_y(x.size());
    upload(d_x, x.data(), x.size());
    upload(d_b, b.data(), b.size());
    upload(d_w, w.data(), w.size());
    launch::add_rms_norm(d_x.ptr, d_b.ptr, d_w.ptr, T, n, eps, d_y.ptr, nullptr);
    finish("residual add and RMSNorm");
    std::pair<std::vector<float>, std::vector<float>> out;
    download(out.first, d_x, x.size());
    download(out.second, d_y, x.size());
    return out;
}

void apply_rope_halves(std::vector<float>& x, int64_t T, int64_t n_heads, int64_t hd, int64_t ld,
                       const cpu::RopeTables& tables) {
    Buffer<float> d_x(x.size()), d_cos(tables.cos.size()), d_sin(tables.sin.size());
    upload(d_x, x.data(), x.size());
    upload(d_cos, tables.cos.data(), tables.cos.size());
    upload(d_sin, tables.sin.data(), tables.sin.size());
    launch::rope_halves(d_x.ptr, T, n_heads, hd, ld, d_cos.ptr, d_sin.ptr, nullptr);
    finish("rotary embedding");
    download(x, d_x, x.size());
}

std::vector<float> silu_mul(const std::vector<float>& g, const std::vector<float>& u) {
    const int64_t n = static_cast<int64_t>(g.size());
    Buffer<float> d_g(g.size()), d_u(u.size()), d_h(g.size());
    upload(d_g, g.data(), g.size());
    upload(d_u, u.data(), u.size());
    launch::silu_mul(d_g.ptr, d_u.ptr, n, d_h.ptr, nullptr);
    finish("SiLU-gated product");
    std::vector<float> h;
    download(h, d_h, g.size());
    return h;
}

}  // namespace moe::cuda
