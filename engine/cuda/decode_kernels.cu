// Fused launches of a small step; see decode_kernels.h.
#include "engine/cuda/decode_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <vector>

#include "engine/cuda/decode_bodies.cuh"
#include "engine/cuda/device.h"
#include "engine/cuda/device_buffer.h"
#include "engine/cuda/gemm.h"
#include "engine/cuda/launch_after.h"
#include "engine/cuda/row_math.cuh"
#include "engine/error.h"
#include "engine/moe_dispatch.h"

namespace moe::cuda::launch {

namespace {

using decode_body::kWarps;
using decode_body::Parts;
using decode_body::WType;
using decode_body::wtype;

// Blocks (b, token), a few per multiprocessor, that stay for all rows (decode_body::gemv_rows).
// A warp's first row is asked into L2 before the kernel before has finished (launch_after);
// its input is read once, after that kernel, from L2.
template <bool S, int MINB>
__global__ void __launch_bounds__(kNormThreads, MINB) fused_gemv_kernel(const float* x, int64_t in, const float* norm, float eps,
                                                                 float* normed, Parts p) {
    extern __shared__ __align__(16) float xs[];
    let_next_start(p.let_next);
    decode_body::gemv_prefetch(p, in, blockIdx.x);
    wait_for_previous();
    decode_body::gemv_rows<S, MINB>(x, in, norm, eps, normed, p, blockIdx.x, gridDim.x, blockIdx.y, xs);
}

// One block per (token, head) of the queries and then the keys: as launch::rope_halves.
__global__ void rope_qk_kernel(float* q, int64_t nh, int64_t qld, float* k, const int64_t* k_row0, int64_t nkv, int64_t kld,
                               int64_t hd, const float* cos_t, const float* sin_t) {
    wait_for_previous();  // launched early with early_trigger()
    const int64_t t = blockIdx.x / (nh + nkv), h = blockIdx.x % (nh + nkv), half = hd / 2;
    float* v = h < nh ? q + t * qld + h * hd : k + ((k_row0 ? *k_row0 : 0) + t) * kld + (h - nh) * hd;
    rope_head(v, cos_t + t * half, sin_t + t * half, half);
}

// One block per (token, head) of the queries and then the new keys: as rope_qk_kernel, then a
// key head and its value head stored rounded to BF16 at the cache's row for the token.
__global__ void rope_store_kv_kernel(float* q, int64_t nh, int64_t qld, float* kn, const float* vn, int64_t ld_new,
                                     int64_t nkv, int64_t hd, const float* cos_t, const float* sin_t, __nv_bfloat16* kc,
                                     __nv_bfloat16* vc, const int64_t* row0, int64_t pos0) {
    wait_for_previous();  // launched early with early_trigger()
    const int64_t t = blockIdx.x / (nh + nkv), h = blockIdx.x % (nh + nkv), half = hd / 2;
    if (h < nh) {
        rope_head(q + t * qld + h * hd, cos_t + t * half, sin_t + t * half, half);
        return;  // the whole block
    }
    const int64_t kh = h - nh, kvdim = nkv * hd, row = (row0 ? *row0 : pos0) + t;
    float* k = kn + t * ld_new + kh * hd;
    rope_head(k, cos_t + t * half, sin_t + t * half, half);
    __syncthreads();  // every rotated element is in
    const float* v = vn + t * ld_new + kh * hd;
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
        kc[row * kvdim + kh * hd + d] = __float2bfloat16_rn(k[d]);
        vc[row * kvdim + kh * hd + d] = __float2bfloat16_rn(v[d]);
    }
}

// Blocks (b, token), a few per multiprocessor, that stay for all output rows
// (decode_body::down_rows).
template <typename W, bool S, int MINB>
__global__ void __launch_bounds__(kNormThreads, MINB) moe_down_kernel(const float* h, int64_t k, int64_t F, const int32_t* experts,
                                                               const uint8_t* dropped, const float* weights,
                                                               const void* const* down, const W* shared_down,
                                                               const float* shared_h, int64_t Fs, int64_t H, float* x,
                                                               bool let_next) {
    let_next_start(let_next);
    decode_body::down_prefetch(shared_down, Fs, H, blockIdx.x);
    wait_for_previous();
    decode_body::down_rows<W, S, MINB>(h, k, F, experts, dropped, weights, down, shared_down, shared_h, Fs, H, x,
                                       blockIdx.x, gridDim.x, blockIdx.y);
}

unsigned tiles(int64_t rows) { return static_cast<unsigned>((rows + kWarps - 1) / kWarps); }

// Blocks of kNormThreads that stay for all rows: as many as the device runs at once.
unsigned resident_blocks(int64_t rows, unsigned per_token_share) {
    const unsigned all = static_cast<unsigned>(std::max(1, multiprocessors()) * 2);
    return std::max(1u, std::min(tiles(rows), std::max(1u, all / std::max(1u, per_token_share))));
}

}  // namespace

void fused_gemv(const float* x, int64_t T, int64_t in, const float* norm, float eps, float* normed, const GemvPart* parts,
                int n_parts, cudaStream_t s) {
    Parts p = decode_body::make_parts(parts, n_parts);
    if (T <= 0 || n_parts == 0) return;
    const int64_t rows = decode_body::items(p);
    p.let_next = early_trigger();
    const size_t shared = static_cast<size_t>(in) * sizeof(float);
    // With a norm and its output asked for, block 0 writes it: at least one block runs.
    const dim3 grid(resident_blocks(rows, static_cast<unsigned>(T)), static_cast<unsigned>(T));
    const bool three = decode_blocks() == 3;
    const auto kernel = stream_weight_loads() ? (three ? fused_gemv_kernel<true, 3> : fused_gemv_kernel<true, 2>)
                                              : (three ? fused_gemv_kernel<false, 3> : fused_gemv_kernel<false, 2>);
    allow_shared(kernel, shared, "fused matrix-vector products: shared memory size");
    launch_after(kernel, grid, dim3(kNormThreads), shared, s, "launching fused matrix-vector products", x, in, norm, eps, normed,
                 p);
}

void rope_qk(float* q, int64_t T, int64_t nh, int64_t qld, float* k, const int64_t* k_row0, int64_t nkv, int64_t kld,
             int64_t hd, const float* cos, const float* sin, cudaStream_t s) {
    if (T <= 0 || nh + nkv <= 0) return;
    const dim3 grid(static_cast<unsigned>(T * (nh + nkv))), block(64);
    const char* what = "launching the rotary embedding of queries and keys";
    launch_early_if(early_trigger(), rope_qk_kernel, grid, block, 0, s, what, q, nh, qld, k, k_row0, nkv, kld, hd, cos, sin);
}

void rope_store_kv(float* q, int64_t T, int64_t nh, int64_t qld, float* k_new, const float* v_new, int64_t ld_new,
                   int64_t nkv, int64_t hd, const float* cos, const float* sin, void* k_cache, void* v_cache,
                   const int64_t* row0, int64_t pos0, cudaStream_t s) {
    if (T <= 0 || nh + nkv <= 0) return;
    const dim3 grid(static_cast<unsigned>(T * (nh + nkv))), block(64);
    const char* what = "launching the rotary embedding and the BF16 store of keys and values";
    auto* kc = static_cast<__nv_bfloat16*>(k_cache);
    auto* vc = static_cast<__nv_bfloat16*>(v_cache);
    launch_early_if(early_trigger(), rope_store_kv_kernel, grid, block, 0, s, what, q, nh, qld, k_new, v_new, ld_new, nkv, hd,
                    cos, sin, kc, vc, row0, pos0);
}

void moe_down_combine(const float* h, int64_t T, int64_t k, int64_t F, const int32_t* experts, const uint8_t* dropped,
                      const float* weights, const void* const* down, DType type, const void* shared_down, DType shared_type,
                      const float* shared_h, int64_t Fs, int64_t H, float* x, cudaStream_t s) {
    if (T <= 0 || H <= 0) return;
    if (shared_down && shared_type != type)
        throw Error(ErrorKind::input, std::string("the CUDA backend's experts are of one type: routed ") + dtype_name(type) +
                                          ", shared " + dtype_name(shared_type));
    const dim3 grid(resident_blocks(H, static_cast<unsigned>(T)), static_cast<unsigned>(T));
    const size_t shared = 0;
    const char* what = "launching the experts' down products and combine";
    auto go = [&](auto w) {
        using W = decltype(w);
        const bool three = decode_blocks() == 3;
        const auto kernel = stream_weight_loads() ? (three ? moe_down_kernel<W, true, 3> : moe_down_kernel<W, true, 2>)
                                                  : (three ? moe_down_kernel<W, false, 3> : moe_down_kernel<W, false, 2>);
        launch_after(kernel, grid, dim3(kNormThreads), shared, s, what, h, k, F, experts, dropped, weights, down,
                     static_cast<const W*>(shared_down), shared_h, Fs, H, x, early_trigger());
    };
    switch (wtype(type, "expert product")) {
    case WType::bf16: go(__nv_bfloat16{}); break;
    case WType::f16: go(__half{}); break;
    case WType::f32: go(float{}); break;
    }
}

}  // namespace moe::cuda::launch

namespace moe::cuda {

std::vector<float> fused_gemv_bf16(const std::vector<float>& x, int64_t T, int64_t in, const std::vector<float>& norm,
                                   float eps, const std::vector<uint16_t>& w, const std::vector<uint16_t>& w2, int64_t rows,
                                   const std::vector<float>* residual, std::vector<float>* normed) {
    const size_t n_y = static_cast<size_t>(T * rows);
    Buffer<float> d_x(x.size()), d_norm(norm.size()), d_y(n_y), d_normed(x.size());
    Buffer<uint16_t> d_w(w.size()), d_w2(w2.size());
    upload(d_x, x.data(), x.size());
    upload(d_norm, norm.data(), norm.size());
    upload(d_w, w.data(), w.size());
    upload(d_w2, w2.data(), w2.size());
    if (residual) upload(d_y, residual->data(), n_y);
    launch::GemvPart p;
    p.w = d_w.ptr;
    p.w2 = w2.empty() ? nullptr : d_w2.ptr;
    p.rows = rows;
    p.y = d_y.ptr;
    p.ldy = rows;
    p.accumulate = residual != nullptr;
    launch::fused_gemv(d_x.ptr, T, in, norm.empty() ? nullptr : d_norm.ptr, eps, normed ? d_normed.ptr : nullptr, &p, 1, nullptr);
    check(cudaDeviceSynchronize(), "running fused matrix-vector products");
    std::vector<float> y;
    download(y, d_y, n_y);
    if (normed) download(*normed, d_normed, x.size());
    return y;
}

std::array<std::vector<float>, 3> fused_qkv_bf16(const std::vector<float>& x, int64_t T, int64_t in,
                                                 const std::vector<float>& norm, float eps,
                                                 const std::array<std::vector<uint16_t>, 3>& w,
                                                 const std::array<int64_t, 3>& rows, int64_t head_dim,
                                                 const std::vector<float>& cos, const std::vector<float>& sin) {
    Buffer<float> d_x(x.size()), d_norm(norm.size()), d_cos(cos.size()), d_sin(sin.size());
    upload(d_x, x.data(), x.size());
    upload(d_norm, norm.data(), norm.size());
    upload(d_cos, cos.data(), cos.size());
    upload(d_sin, sin.data(), sin.size());
    std::array<Buffer<uint16_t>, 3> d_w{Buffer<uint16_t>(w[0].size()), Buffer<uint16_t>(w[1].size()), Buffer<uint16_t>(w[2].size())};
    std::array<Buffer<float>, 3> d_y{Buffer<float>(size_t(T * rows[0])), Buffer<float>(size_t(T * rows[1])),
                                     Buffer<float>(size_t(T * rows[2]))};
    launch::GemvPart parts[3];
    for (int j = 0; j < 3; ++j) {
        upload(d_w[j], w[j].data(), w[j].size());
        parts[j].w = d_w[j].ptr;
        parts[j].rows = rows[j];
        parts[j].y = d_y[j].ptr;
        parts[j].ldy = rows[j];
        if (j < 2 && !cos.empty()) {
            parts[j].rope_cos = d_cos.ptr;
            parts[j].rope_sin = d_sin.ptr;
            parts[j].head_dim = head_dim;
        }
    }
    launch::fused_gemv(d_x.ptr, T, in, norm.empty() ? nullptr : d_norm.ptr, eps, nullptr, parts, 3, nullptr);
    check(cudaDeviceSynchronize(), "running fused matrix-vector products");
    std::array<std::vector<float>, 3> y;
    for (int j = 0; j < 3; ++j) download(y[j], d_y[j], size_t(T * rows[j]));
    return y;
}

std::vector<float> moe_down_combine_bf16(const std::vector<float>& x, int64_t T, int64_t H, int64_t k, const std::vector<float>& h,
                                         int64_t F, const std::vector<int32_t>& experts, const std::vector<float>& weights,
                                         const std::vector<std::vector<uint16_t>>& down, const std::vector<uint8_t>& dropped,
                                         const std::vector<uint16_t>& shared_down, const std::vector<float>& shared_h, int64_t Fs) {
    Buffer<float> d_x(x.size()), d_h(h.size()), d_weights(weights.size()), d_shared_h(shared_h.size());
    Buffer<int32_t> d_experts(experts.size());
    Buffer<uint8_t> d_dropped(dropped.size());
    Buffer<uint16_t> d_shared(shared_down.size());
    std::vector<uint16_t> all;
    for (const auto& m : down) all.insert(all.end(), m.begin(), m.end());
    Buffer<uint16_t> d_down(all.size());
    std::vector<const void*> table;
    for (size_t e = 0; e < down.size(); ++e) table.push_back(d_down.ptr + e * static_cast<size_t>(H * F));
    Buffer<const void*> d_table(table.size());
    upload(d_x, x.data(), x.size());
    upload(d_h, h.data(), h.size());
    upload(d_weights, weights.data(), weights.size());
    upload(d_shared_h, shared_h.data(), shared_h.size());
    upload(d_experts, experts.data(), experts.size());
    upload(d_dropped, dropped.data(), dropped.size());
    upload(d_shared, shared_down.data(), shared_down.size());
    upload(d_down, all.data(), all.size());
    upload(d_table, table.data(), table.size());
    launch::moe_down_combine(d_h.ptr, T, k, F, d_experts.ptr, dropped.empty() ? nullptr : d_dropped.ptr, d_weights.ptr,
                             d_table.ptr, DType::bf16, shared_down.empty() ? nullptr : d_shared.ptr, DType::bf16, d_shared_h.ptr,
                             Fs, H, d_x.ptr, nullptr);
    check(cudaDeviceSynchronize(), "running the experts' down products and combine");
    std::vector<float> out;
    download(out, d_x, x.size());
    return out;
}

}  // namespace moe::cuda
