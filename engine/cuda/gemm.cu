// cuBLAS BF16 GEMM; see gemm.h.
#include "engine/cuda/gemm.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <string>

#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
#include "engine/error.h"

namespace moe::cuda {

namespace {

void check_cublas(cublasStatus_t s, const char* what) {
    if (s != CUBLAS_STATUS_SUCCESS)
        throw Error(ErrorKind::failure, std::string("cuBLAS: ") + what + ": status " + std::to_string(static_cast<int>(s)));
}

struct Handle {
    cublasHandle_t h = nullptr;
    Handle() { check_cublas(cublasCreate(&h), "creating a handle"); }
    ~Handle() { cublasDestroy(h); }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
};

__global__ void to_bf16_kernel(const float* x, int64_t n, __nv_bfloat16* y) {
    const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2bfloat16_rn(x[i]);
}

}  // namespace

std::vector<float> linear_bf16(const std::vector<float>& x, const std::vector<uint16_t>& w, int64_t T, int64_t in,
                               int64_t out) {
    if (static_cast<int64_t>(x.size()) != T * in || static_cast<int64_t>(w.size()) != out * in)
        throw Error(ErrorKind::input, "linear_bf16: x must be [T, in] and w [out, in]");
    Buffer<float> d_x(x.size()), d_y(static_cast<size_t>(T * out));
    Buffer<__nv_bfloat16> d_xb(x.size()), d_w(w.size());
    upload(d_x, x.data(), x.size());
    if (!w.empty()) check(cudaMemcpy(d_w.ptr, w.data(), w.size() * 2, cudaMemcpyHostToDevice), "copying weights to the device");
    std::vector<float> y;
    if (T > 0 && out > 0 && in > 0) {
        const int64_t n = T * in;
        to_bf16_kernel<<<static_cast<unsigned>((n + 255) / 256), 256>>>(d_x.ptr, n, d_xb.ptr);
        check(cudaGetLastError(), "rounding activations to BF16");
        Handle h;
        const float alpha = 1.0f, beta = 0.0f;
        // Column-major: y [out, T] = Wᵀ-view [out, in] · x-view [in, T]; W's rows are its columns.
        check_cublas(cublasGemmEx(h.h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(out), static_cast<int>(T),
                                  static_cast<int>(in), &alpha, d_w.ptr, CUDA_R_16BF, static_cast<int>(in), d_xb.ptr,
                                  CUDA_R_16BF, static_cast<int>(in), &beta, d_y.ptr, CUDA_R_32F, static_cast<int>(out),
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "BF16 GEMM");
        check(cudaDeviceSynchronize(), "running the GEMM");
    }
    download(y, d_y, static_cast<size_t>(T * out));
    return y;
}

}  // namespace moe::cuda
