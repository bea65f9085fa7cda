// Causal attention on the device; see attention_kernels.h.
#include "engine/cuda/attention_kernels.h"

#include <cuda_runtime.h>

#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/launch.h"
#include "engine/error.h"

namespace moe::cuda {

namespace {

constexpr int kThreads = 128;

__device__ float block_reduce(float v, float* scratch, bool take_max) {
    scratch[threadIdx.x] = v;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride) {
            const float o = scratch[threadIdx.x + stride];
            scratch[threadIdx.x] = take_max ? fmaxf(scratch[threadIdx.x], o) : scratch[threadIdx.x] + o;
        }
        __syncthreads();
    }
    const float r = scratch[0];
    __syncthreads();
    return r;
}

// Block (t, h). Dynamic shared memory: scores [visible] + q [hd]. The first position is pos0,
// or *d_pos when given (a step replayed from a CUDA graph).
__global__ void attention_kernel(const float* q, const float* k, const float* v, int64_t n_heads, int64_t n_kv_heads,
                                 int64_t hd, int64_t pos0, const int64_t* d_pos, float scale, float* out) {
    extern __shared__ float shared[];
    __shared__ float scratch[kThreads];
    if (d_pos) pos0 = *d_pos;
    const int64_t t = blockIdx.x / n_heads, h = blockIdx.x % n_heads, kvh = h / (n_heads / n_kv_heads);
    const int64_t visible = pos0 + t + 1;
    float* scores = shared;
    float* qs = shared + visible;
    const float* qrow = q + (t * n_heads + h) * hd;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) qs[d] = qrow[d];
    __syncthreads();
    float local_max = -INFINITY;
    for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) {
        const float* krow = k + (j * n_kv_heads + kvh) * hd;
        float s = 0;
        for (int64_t d = 0; d < hd; ++d) s += qs[d] * krow[d];
        s *= scale;
        scores[j] = s;
        local_max = fmaxf(local_max, s);
    }
    const float m = block_reduce(local_max, scratch, true);
    float local_sum = 0;
    for (int64_t j = threadIdx.x; j < visible; j += blockDim.x) {
        const float p = expf(scores[j] - m);
        scores[j] = p;
        local_sum += p;
    }
    const float inv = 1.0f / block_reduce(local_sum, scratch, false);
    __syncthreads();
    float* orow = out + (t * n_heads + h) * hd;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0;
        for (int64_t j = 0; j < visible; ++j) acc += scores[j] * v[(j * n_kv_heads + kvh) * hd + d];
        orow[d] = acc * inv;
    }
}

// One block: row *d_pos of cache (rows of n) = src.
__global__ void append_row_kernel(const float* src, int64_t n, float* cache, const int64_t* d_pos) {
    float* dst = cache + *d_pos * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
}

}  // namespace

void launch::append_row(const float* src, int64_t n, float* cache, const int64_t* d_pos, cudaStream_t s) {
    append_row_kernel<<<1, 256, 0, s>>>(src, n, cache, d_pos);
    check(cudaGetLastError(), "launching a KV cache append");
}

void launch::attention(const float* q, const float* k, const float* v, int64_t T, int64_t n_heads, int64_t n_kv_heads,
                       int64_t head_dim, int64_t pos0, float* out, cudaStream_t s, const int64_t* d_pos,
                       int64_t max_positions) {
    if (T <= 0) return;
    const int64_t positions = d_pos ? max_positions : pos0 + T;
    const size_t shared = static_cast<size_t>(positions + head_dim) * sizeof(float);
    // The opt-in limit is read once per process (device 0).
    static const int max_shared = [] {
        int device = 0, m = 0;
        check(cudaGetDevice(&device), "attention: device");
        check(cudaDeviceGetAttribute(&m, cudaDevAttrMaxSharedMemoryPerBlockOptin, device), "attention: shared memory");
        return m;
    }();
    if (shared > static_cast<size_t>(max_shared) - kThreads * sizeof(float))
        throw Error(ErrorKind::input, "attention on the device: " + std::to_string(positions) +
                                          " positions need more shared memory than the device has per block");
    if (shared > 48 * 1024)
        check(cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)),
              "attention: shared memory size");
    attention_kernel<<<static_cast<unsigned>(T * n_heads), kThreads, shared, s>>>(
        q, k, v, n_heads, n_kv_heads, head_dim, pos0, d_pos, 1.0f / sqrtf(static_cast<float>(head_dim)), out);
    check(cudaGetLastError(), "launching attention");
}

std::vector<float> causal_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, int64_t T, int64_t P, int64_t n_heads,
                                    int64_t n_kv_heads, int64_t head_dim, int64_t pos0) {
    if (n_kv_heads <= 0 || n_heads % n_kv_heads || pos0 + T > P ||
        static_cast<int64_t>(q.size()) != T * n_heads * head_dim ||
        static_cast<int64_t>(k.size()) != P * n_kv_heads * head_dim || k.size() != v.size())
        throw Error(ErrorKind::input, "causal_attention: inconsistent shapes");
    Buffer<float> d_q(q.size()), d_k(k.size()), d_v(v.size()), d_out(q.size());
    upload(d_q, q.data(), q.size());
    upload(d_k, k.data(), k.size());
    upload(d_v, v.data(), v.size());
    launch::attention(d_q.ptr, d_k.ptr, d_v.ptr, T, n_heads, n_kv_heads, head_dim, pos0, d_out.ptr, nullptr);
    check(cudaDeviceSynchronize(), "running attention");
    std::vector<float> out;
    download(out, d_out, q.size());
    return out;
}

}  // namespace moe::cuda
