// cuBLAS BF16 GEMM; see gemm.h and launch.h.
#include "engine/cuda/gemm.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <type_traits>

#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/launch.h"
#include "engine/cuda/row_math.cuh"
#include "engine/error.h"
#include "engine/expert_streams.h"
#include "engine/moe_dispatch.h"

namespace moe::cuda {

namespace {

// The rounding residual: y (holding BF16/F16 x) becomes the rounding of x - y.
__global__ void residual_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* y) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2bfloat16_rn(x[i] - __bfloat162float(y[i]));
}

__global__ void residual_f16_kernel(const float* x, int64_t n, __half* y) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2half_rn(x[i] - __half2float(y[i]));
}

// hi = x rounded; lo (when set) = (x - hi) rounded: x as one or two 16-bit parts.
template <typename L>
__global__ void round_split_kernel(const float* x, int64_t n, L* hi, L* lo) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) launch::store_parts_at(x[i], hi, lo, i);
}

// The same parts of h = silu(g) · u for gu [rows, 2F] (gate and up side by side): h [rows, F].
template <typename L>
__global__ void silu_mul_round_kernel(const float* gu, int64_t rows, int64_t F, L* hi, L* lo) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * F) return;
    const int64_t r = i / F, f = i % F;
    launch::store_parts_at(launch::silu_mul_rn(gu[r * 2 * F + f], gu[r * 2 * F + F + f]), hi, lo, i);
}

// One block per padded row p of a stacked layout: gate and up the sums of its two parts' rows,
// h's parts stored at the same rows of the F-wide layout.
template <typename L>
__global__ void silu_mul_round_stacked_kernel(const float* gu, const int64_t* padded, int64_t n_expert, int64_t F, L* parts) {
    const int64_t p = blockIdx.x;
    const int64_t e = dispatch::segment_of(padded, n_expert, p);
    const int64_t rh = dispatch::stacked_hi(padded, e, p), rl = dispatch::stacked_lo(padded, e, p);
    const float* gh = gu + rh * 2 * F;
    const float* gl = gu + rl * 2 * F;
    for (int64_t f = threadIdx.x; f < F; f += blockDim.x) {
        const float g = __fadd_rn(gh[f], gl[f]), u = __fadd_rn(gh[F + f], gl[F + f]);
        launch::store_parts_at(launch::silu_mul_rn(g, u), parts + rh * F, parts + rl * F, f);
    }
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + 255) / 256); }

}  // namespace

namespace launch {

void check_cublas(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS)
        throw Error(ErrorKind::failure, std::string("cuBLAS: ") + what + ": " + cublasGetStatusString(s));
}

void round_split(const float* x, int64_t n, DType type, void* hi, void* lo, cudaStream_t s) {
    if (n <= 0) return;
    on_sixteen_bit(type, "activations", [&](auto l) {
        using L = decltype(l);
        round_split_kernel<<<blocks_for(n), 256, 0, s>>>(x, n, static_cast<L*>(hi), static_cast<L*>(lo));
    });
    check(cudaGetLastError(), "rounding activations");
}

void silu_mul_round(const float* gu, int64_t rows, int64_t F, DType type, void* hi, void* lo, cudaStream_t s) {
    if (rows <= 0 || F <= 0) return;
    on_sixteen_bit(type, "a SiLU-gated product", [&](auto l) {
        using L = decltype(l);
        silu_mul_round_kernel<<<blocks_for(rows * F), 256, 0, s>>>(gu, rows, F, static_cast<L*>(hi),
                                                                   static_cast<L*>(lo));
    });
    check(cudaGetLastError(), "launching the rounded SiLU-gated product");
}

void silu_mul_round_stacked(const float* gu, const int64_t* padded, int64_t n_expert, int64_t n_padded, int64_t F,
                            DType type, void* hi, cudaStream_t s) {
    if (n_padded <= 0 || F <= 0) return;
    on_sixteen_bit(type, "a SiLU-gated product", [&](auto l) {
        using L = decltype(l);
        silu_mul_round_stacked_kernel<<<static_cast<unsigned>(n_padded), 256, 0, s>>>(gu, padded, n_expert, F,
                                                                                     static_cast<L*>(hi));
    });
    check(cudaGetLastError(), "launching the rounded SiLU-gated product of stacked parts");
}

void Blas::linear_rounded(const void* hi, const void* lo, int64_t T, int64_t in, const void* w, DType w_type, int64_t out,
                          float* y, int64_t ldy) {
    if (T <= 0 || out <= 0) return;
    if (w_type != DType::bf16 && w_type != DType::f16)
        throw Error(ErrorKind::failure, std::string("a GEMM on rounded activations with ") + dtype_name(w_type) + " weights");
    const cudaDataType_t type = w_type == DType::bf16 ? CUDA_R_16BF : CUDA_R_16F;
    const float alpha = 1.0f, zero = 0.0f, one = 1.0f;
    auto gemm = [&](const void* b, const float* beta) {
        check_cublas(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(T),
                                  static_cast<int>(in), &alpha, w, type, static_cast<int>(in), b, type, static_cast<int>(in),
                                  beta, y, CUDA_R_32F, static_cast<int>(ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "GEMM");
    };
    gemm(hi, &zero);
    if (lo) gemm(lo, &one);
}

void Blas::linear_rounded_batched(const void* const* hi, const void* const* lo, int64_t T, int64_t in,
                                  const void* const* w, DType w_type, int64_t out, float* const* y, int64_t ldy,
                                  int64_t count) {
    if (T <= 0 || out <= 0 || count <= 0) return;
    if (w_type != DType::bf16 && w_type != DType::f16)
        throw Error(ErrorKind::failure,
                    std::string("a batched GEMM on rounded activations with ") + dtype_name(w_type) + " weights");
    const cudaDataType_t type = w_type == DType::bf16 ? CUDA_R_16BF : CUDA_R_16F;
    const float alpha = 1.0f, zero = 0.0f, one = 1.0f;
    auto gemm = [&](const void* const* b, const float* beta) {
        check_cublas(cublasGemmBatchedEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(T),
                                         static_cast<int>(in), &alpha, w, type, static_cast<int>(in), b, type,
                                         static_cast<int>(in), beta, reinterpret_cast<void* const*>(y), CUDA_R_32F,
                                         static_cast<int>(ldy), static_cast<int>(count), CUBLAS_COMPUTE_32F,
                                         CUBLAS_GEMM_DEFAULT),
                     "batched GEMM");
    };
    gemm(hi, &zero);
    if (lo) gemm(lo, &one);
}

Blas::Blas(cudaStream_t s) : stream_(s) {
    constexpr size_t kWorkspace = size_t(32) << 20;
    check_cublas(cublasCreate(&handle_), "creating a handle");
    check_cublas(cublasSetStream(handle_, s), "binding the handle to a stream");
    check(cudaMalloc(&workspace_, kWorkspace), "allocating the cuBLAS workspace");
    check_cublas(cublasSetWorkspace(handle_, workspace_, kWorkspace), "setting the cuBLAS workspace");
}

Blas::~Blas() {
    cublasDestroy(handle_);
    cudaFree(workspace_);
}

void Blas::linear(const float* x, int64_t T, int64_t in, const void* w, DType w_type, int64_t out, float* y, int64_t ldy,
                  void* xq) {
    if (T <= 0 || out <= 0) return;
    if (in <= 0) {
        for (int64_t t = 0; t < T; ++t)
            check(cudaMemsetAsync(y + t * ldy, 0, static_cast<size_t>(out) * sizeof(float), stream_), "clearing a product");
        return;
    }
    cudaDataType_t type = CUDA_R_32F;
    const void* b = x;
    switch (w_type) {
    case DType::bf16: type = CUDA_R_16BF; break;
    case DType::f16: type = CUDA_R_16F; break;
    case DType::f32: break;
    default: throw Error(ErrorKind::input, std::string("the CUDA backend has no GEMM for ") + dtype_name(w_type) + " weights");
    }
    if (w_type != DType::f32) {  // x rounded to the weights' 16-bit type for the tensor cores
        round_split(x, T * in, w_type, xq, nullptr, stream_);
        b = xq;
    }
    const float alpha = 1.0f, zero = 0.0f, one = 1.0f;
    // Column-major: y [out, T] = Wᵀ-view [out, in] · x-view [in, T]; W's rows are its columns.
    auto gemm = [&](const float* beta) {
        check_cublas(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(T),
                                  static_cast<int>(in), &alpha, w, type, static_cast<int>(in), b, type, static_cast<int>(in),
                                  beta, y, CUDA_R_32F, static_cast<int>(ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "GEMM");
    };
    gemm(&zero);
    if (split_ && w_type != DType::f32) {
        // x = hi + lo + O(2⁻¹⁷|x|): the second product adds what rounding x to hi left out.
        const unsigned blocks = blocks_for(T * in);
        if (w_type == DType::bf16)
            residual_bf16_kernel<<<blocks, 256, 0, stream_>>>(x, T * in, static_cast<__nv_bfloat16*>(xq));
        else
            residual_f16_kernel<<<blocks, 256, 0, stream_>>>(x, T * in, static_cast<__half*>(xq));
        check(cudaGetLastError(), "rounding the activations' residual");
        gemm(&one);
    }
}

}  // namespace launch

std::vector<float> linear_bf16(const std::vector<float>& x, const std::vector<uint16_t>& w, int64_t T, int64_t in,
                               int64_t out, bool split) {
    if (static_cast<int64_t>(x.size()) != T * in || static_cast<int64_t>(w.size()) != out * in)
        throw Error(ErrorKind::input, "linear_bf16: x must be [T, in] and w [out, in]");
    Buffer<float> d_x(x.size()), d_y(static_cast<size_t>(T * out));
    Buffer<__nv_bfloat16> d_xb(x.size()), d_w(w.size());
    upload(d_x, x.data(), x.size());
    if (!w.empty()) check(cudaMemcpy(d_w.ptr, w.data(), w.size() * 2, cudaMemcpyHostToDevice), "copying weights to the device");
    std::vector<float> y;
    launch::Blas blas(nullptr);
    blas.set_split_activations(split);
    blas.linear(d_x.ptr, T, in, d_w.ptr, DType::bf16, out, d_y.ptr, out, d_xb.ptr);
    check(cudaDeviceSynchronize(), "running the GEMM");
    download(y, d_y, static_cast<size_t>(T * out));
    return y;
}

Bf16Parts silu_mul_round_bf16(const std::vector<float>& gu, int64_t rows, int64_t F, bool split) {
    if (static_cast<int64_t>(gu.size()) != rows * 2 * F)
        throw Error(ErrorKind::input, "silu_mul_round_bf16: gu must be [rows, 2F]");
    const size_t n = static_cast<size_t>(rows * F);
    Buffer<float> d_gu(gu.size());
    Buffer<uint16_t> d_hi(n), d_lo(split ? n : 0);
    upload(d_gu, gu.data(), gu.size());
    launch::silu_mul_round(d_gu.ptr, rows, F, DType::bf16, d_hi.ptr, d_lo.ptr, nullptr);
    check(cudaDeviceSynchronize(), "running the rounded SiLU-gated product");
    Bf16Parts out;
    download(out.hi, d_hi, n);
    if (split) download(out.lo, d_lo, n);
    return out;
}

std::vector<uint16_t> silu_mul_round_stacked_bf16(const std::vector<float>& gu, const std::vector<int64_t>& padded,
                                                  int64_t F) {
    if (padded.empty() || static_cast<int64_t>(gu.size()) != 2 * padded.back() * 2 * F)
        throw Error(ErrorKind::input, "silu_mul_round_stacked_bf16: gu must be [2·padded[E], 2F]");
    const auto E = static_cast<int64_t>(padded.size()) - 1;
    const size_t n = static_cast<size_t>(2 * padded.back() * F);
    Buffer<float> d_gu(gu.size());
    Buffer<int64_t> d_padded(padded.size());
    Buffer<uint16_t> d_parts(n);
    upload(d_gu, gu.data(), gu.size());
    upload(d_padded, padded.data(), padded.size());
    check(cudaMemset(d_parts.ptr, 0xff, n * 2), "poisoning the output");
    launch::silu_mul_round_stacked(d_gu.ptr, d_padded.ptr, E, padded.back(), F, DType::bf16, d_parts.ptr, nullptr);
    check(cudaDeviceSynchronize(), "running the rounded SiLU-gated product of stacked parts");
    std::vector<uint16_t> out;
    download(out, d_parts, n);
    return out;
}

std::vector<float> expert_products_batched_bf16(const std::vector<float>& x, int64_t K,
                                                const std::vector<int64_t>& offsets,
                                                const std::vector<std::vector<uint16_t>>& w, int64_t N, bool split,
                                                int64_t pad, bool stacked) {
    stacked = stacked && split;
    const auto E = static_cast<int64_t>(w.size());
    if (static_cast<int64_t>(offsets.size()) != E + 1 || offsets.front() != 0 ||
        static_cast<int64_t>(x.size()) != offsets.back() * K)
        throw Error(ErrorKind::input,
                    "expert_products_batched_bf16: x must be [offsets.back(), K] with offsets [E + 1] from 0");
    for (const auto& m : w)
        if (static_cast<int64_t>(m.size()) != N * K)
            throw Error(ErrorKind::input, "expert_products_batched_bf16: each W must be [N, K]");
    const dispatch::BatchPlan plan = dispatch::plan_batches(offsets.data(), E, pad);
    const int64_t rows = offsets.back(), padded_rows = plan.padded.back();
    // The padded layout on the host: each expert's rows, then zeros.
    std::vector<float> xp(static_cast<size_t>(padded_rows * K), 0.0f);
    for (int64_t e = 0; e < E; ++e)
        for (int64_t r = offsets[static_cast<size_t>(e)]; r < offsets[static_cast<size_t>(e) + 1]; ++r)
            std::copy_n(x.begin() + r * K, K,
                        xp.begin() + dispatch::padded_row(offsets.data(), plan.padded.data(), e, r) * K);
    const int64_t per_row = stacked ? 2 : 1;  // product rows per padded row
    Buffer<float> d_x(xp.size()), d_y(static_cast<size_t>(per_row * padded_rows * N));
    Buffer<__nv_bfloat16> d_hi(xp.size()), d_lo(xp.size()), d_w(static_cast<size_t>(E * N * K));
    for (int64_t e = 0; e < E; ++e)
        check(cudaMemcpy(d_w.ptr + e * N * K, w[static_cast<size_t>(e)].data(), static_cast<size_t>(N * K) * 2,
                         cudaMemcpyHostToDevice),
              "copying weights to the device");
    upload(d_x, xp.data(), xp.size());
    check(cudaMemset(d_y.ptr, 0xff, static_cast<size_t>(per_row * padded_rows * N) * sizeof(float)), "poisoning the output");
    launch::round_split(d_x.ptr, padded_rows * K, DType::bf16, d_hi.ptr, split ? d_lo.ptr : nullptr, nullptr);
    // The stacked layout: both parts of each padded row moved to their rows of one buffer.
    Buffer<__nv_bfloat16> d_parts(stacked ? 2 * xp.size() : 0);
    if (stacked)
        for (int64_t p = 0; p < padded_rows; ++p) {
            const int64_t e = dispatch::segment_of(plan.padded.data(), E, p);
            const auto bytes = static_cast<size_t>(K) * 2;
            check(cudaMemcpy(d_parts.ptr + dispatch::stacked_hi(plan.padded.data(), e, p) * K, d_hi.ptr + p * K, bytes,
                             cudaMemcpyDeviceToDevice),
                  "stacking the parts");
            check(cudaMemcpy(d_parts.ptr + dispatch::stacked_lo(plan.padded.data(), e, p) * K, d_lo.ptr + p * K, bytes,
                             cudaMemcpyDeviceToDevice),
                  "stacking the parts");
        }
    // Pointer arrays: weights, hi, lo, y; each in the order of the plan's batches.
    std::vector<const void*> wt, ht, lt;
    std::vector<float*> yt;
    for (const dispatch::ExpertBatch& b : plan.batches)
        for (const int64_t e : b.experts) {
            const int64_t p = plan.padded[static_cast<size_t>(e)];
            wt.push_back(d_w.ptr + e * N * K);
            ht.push_back(stacked ? d_parts.ptr + 2 * p * K : d_hi.ptr + p * K);
            lt.push_back(d_lo.ptr + p * K);
            yt.push_back(d_y.ptr + per_row * p * N);
        }
    Buffer<const void*> d_wt(wt.size()), d_ht(ht.size()), d_lt(lt.size());
    Buffer<float*> d_yt(yt.size());
    upload(d_wt, wt.data(), wt.size());
    upload(d_ht, ht.data(), ht.size());
    upload(d_lt, lt.data(), lt.size());
    upload(d_yt, yt.data(), yt.size());
    launch::Blas blas(nullptr);
    int64_t first = 0;
    for (const dispatch::ExpertBatch& b : plan.batches) {
        const auto n = static_cast<int64_t>(b.experts.size());
        blas.linear_rounded_batched(d_ht.ptr + first, split && !stacked ? d_lt.ptr + first : nullptr, per_row * b.rows,
                                    K, d_wt.ptr + first, DType::bf16, N, d_yt.ptr + first, N, n);
        first += n;
    }
    check(cudaDeviceSynchronize(), "running the batched experts' products");
    std::vector<float> yp, y(static_cast<size_t>(rows * N));
    download(yp, d_y, static_cast<size_t>(per_row * padded_rows * N));
    for (int64_t e = 0; e < E; ++e)
        for (int64_t r = offsets[static_cast<size_t>(e)]; r < offsets[static_cast<size_t>(e) + 1]; ++r) {
            const int64_t p = dispatch::padded_row(offsets.data(), plan.padded.data(), e, r);
            if (!stacked) {
                std::copy_n(yp.begin() + p * N, N, y.begin() + r * N);
                continue;
            }
            const int64_t hi = dispatch::stacked_hi(plan.padded.data(), e, p), lo = dispatch::stacked_lo(plan.padded.data(), e, p);
            for (int64_t o = 0; o < N; ++o) y[static_cast<size_t>(r * N + o)] = yp[static_cast<size_t>(hi * N + o)] + yp[static_cast<size_t>(lo * N + o)];
        }
    return y;
}

}  // namespace moe::cuda
