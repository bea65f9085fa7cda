// The CUDA backend's kernels as launches on device buffers and a stream, for the .cu files
// (the forward pass and the host interfaces the parity tests call). Each returns once the
// launch is enqueued; errors in the launch itself are thrown (moe::Error), errors while it
// runs surface at the next synchronisation.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "engine/cuda/attention_kernels.h"
#include "engine/cuda/launch_after.h"  // expert_gemm_mode
#include "engine/cuda/route_outputs.h"
#include "engine/expert_streams.h"  // dispatch::ExpertBatch
#include "engine/router.h"
#include "engine/router_core.h"
#include "engine/tensor.h"

namespace moe::cuda::launch {

// y[t] = RMSNorm(x[t]) · w for T rows of n (sum of squares in double, as the CPU).
void rms_norm(const float* x, const float* w, int64_t T, int64_t n, float eps, float* y, cudaStream_t s);
// Rotary embedding, halves layout, in place on the first n_heads·hd of each row of x [T, ld];
// cos, sin [T, hd/2] (cpu::make_rope_tables).
void rope_halves(float* x, int64_t T, int64_t n_heads, int64_t hd, int64_t ld, const float* cos, const float* sin,
                 cudaStream_t s);
// h = silu(g) · u, n elements.
void silu_mul(const float* g, const float* u, int64_t n, float* h, cudaStream_t s);
// x += y, n elements.
void add(float* x, const float* y, int64_t n, cudaStream_t s);
// x += b, then y = RMSNorm(x) · w, for T rows of n: add then rms_norm in one launch, the same
// values bit for bit.
void add_rms_norm(float* x, const float* b, const float* w, int64_t T, int64_t n, float eps, float* y, cudaStream_t s);

// Causal attention of queries q [T, nh, hd] at positions pos0.. over keys and values
// [pos0 + T, nkv, hd] -> out [T, nh, hd]. With d_pos, the first position is read on the
// device (*d_pos, at most max_positions - T) and the launch is the same for every position:
// what a CUDA graph replays. One query (T = 1) with `partials` (attention_partial_floats of
// scratch) is split over the positions; several queries with heads of at most 128 run tiled
// (flash-style); other shapes one block per query and head. Throws when the positions need
// more shared memory per block than the device has. `math` chooses the arithmetic of several
// queries at a host-known position (AttentionMath), `decode` the kernel of one query
// (DecodeAttention), `kv` what k and v hold (KvType), `prefill` the tensor-core kernel of
// several (PrefillAttention; pipelined needs `scratch` of pipelined_attention_scratch bytes,
// engine/cuda/attention_mma.h, and takes tiles without it).
void attention(const float* q, const void* k, const void* v, int64_t T, int64_t n_heads, int64_t n_kv_heads,
               int64_t head_dim, int64_t pos0, float* out, cudaStream_t s, const int64_t* d_pos = nullptr,
               int64_t max_positions = 0, float* partials = nullptr, AttentionMath math = AttentionMath::f32,
               DecodeAttention decode = DecodeAttention::scalar, KvType kv = KvType::f32,
               PrefillAttention prefill = PrefillAttention::tiles, void* scratch = nullptr);
// The floats of `partials`: the splits' [nh][kSplits][hd + 2], then a counter a head for
// DecodeAttention::merged (attention_partial_counters; 0 when the buffer is made, and again
// after each launch).
int64_t attention_partial_floats(int64_t n_heads, int64_t head_dim);
unsigned* attention_partial_counters(float* partials, int64_t n_heads, int64_t head_dim);

// The router: RouterParams as the kernel takes them (device pointers for excluded and bias
// are set by the caller).
router_core::Args router_args(const RouterParams& p);
// Scratch bytes route() needs for T tokens.
int64_t route_scratch_bytes(int64_t T, int64_t E, int64_t G);
using RouteOutputs = cuda::RouteOutputs;
// logits [T, E]; keys [T] (skip-random) or null.
void route(const float* logits, int64_t T, const router_core::Args& a, const uint64_t* keys, void* scratch,
           RouteOutputs out, cudaStream_t s);

// The dispatch of T·k slots (engine/moe_dispatch.h): counts [E+1] (scratch), offsets [E+1],
// rows [n_slots] (-1: dropped), row_slot [n_slots] (the first offsets[E] entries are set).
void dispatch(const int32_t* experts, int64_t n_slots, const uint8_t* dropped, int64_t n_expert,
              unsigned long long* counts, int64_t* offsets, int64_t* rows, int64_t* row_slot, cudaStream_t s);
// gathered[r] = x[row_slot[r] / k] for r < *n_rows (a device value); up to max_rows rows.
void gather_rows(const float* x, int64_t H, int64_t k, const int64_t* row_slot, const int64_t* n_rows,
                 int64_t max_rows, float* gathered, cudaStream_t s);
// The same rows rounded as round_split rounds them, into hi and (unless null) lo of `type`
// (BF16 or F16): what the experts' products take, without the rows in f32 between.
void gather_rows_rounded(const float* x, int64_t H, int64_t k, const int64_t* row_slot, const int64_t* n_rows,
                         int64_t max_rows, DType type, void* hi, void* lo, cudaStream_t s);
// The padded layout of dispatch::plan_batches (engine/expert_streams.h): padded [E+1] on the
// device. pad_rows() moves each slot's row (rows, in place) to its padded row — with rows_lo
// (n_slots), to the stacked layout's row of its hi part (dispatch::stacked_hi), rows_lo to its
// lo part's; gather_padded() fills padded rows 0 .. n_padded-1 of `gathered`: a row of zeros
// where dispatch::row_of_padded is -1, x[row_slot[row] / k] where it is a gathered row;
// gather_padded_rounded() the same rounded, as gather_rows_rounded, or with `stacked` both
// parts into hi at the stacked layout's rows (2·n_padded rows; lo unused).
void pad_rows(const int32_t* experts, int64_t n_slots, const int64_t* offsets, const int64_t* padded, int64_t* rows,
              int64_t* rows_lo, cudaStream_t s);
void gather_padded(const float* x, int64_t H, int64_t k, const int64_t* row_slot, const int64_t* offsets,
                   const int64_t* padded, int64_t n_expert, int64_t n_padded, float* gathered, cudaStream_t s);
void gather_padded_rounded(const float* x, int64_t H, int64_t k, const int64_t* row_slot, const int64_t* offsets,
                           const int64_t* padded, int64_t n_expert, int64_t n_padded, DType type, void* hi, void* lo,
                           cudaStream_t s, bool stacked = false);
// out[t] = base[t] + Σ_r weights[t·k+r] · results[rows[t·k+r]] in rank order (rows < 0
// skipped); base may be null. out may be base. With rows_lo, each term's result is
// results[rows[i]] + results[rows_lo[i]] (a stacked layout's two parts), rounded once.
void combine_rows(const float* results, int64_t H, int64_t T, int64_t k, const int64_t* rows, const float* weights,
                  const float* base, float* out, cudaStream_t s, const int64_t* rows_lo = nullptr);

// cuBLAS bound to one stream. linear(): y [T, out] = x [T, in] · Wᵀ with W [out, in] as the
// checkpoint stores it (BF16 or F16: x is rounded to that type, round to nearest even, into
// `xq`, room for T·in of them, for the tensor cores — with split activations, then the
// rounding of the residual x - xq into xq and a second product added, so that x counts to
// about 2⁻¹⁷ of itself, as the CPU's f32 activations; F32: x as it is, no TF32), products
// accumulated in f32, y f32 with leading dimension ldy (≥ out).
class Blas {
public:
    explicit Blas(cudaStream_t s);
    ~Blas();
    Blas(const Blas&) = delete;
    Blas& operator=(const Blas&) = delete;
    void linear(const float* x, int64_t T, int64_t in, const void* w, DType w_type, int64_t out, float* y, int64_t ldy,
                void* xq);
    // The same product on activations rounded already (round_split): hi, and lo unless null
    // (its product added), each [T, in] of w_type (BF16 or F16).
    void linear_rounded(const void* hi, const void* lo, int64_t T, int64_t in, const void* w, DType w_type, int64_t out,
                        float* y, int64_t ldy);
    // `count` such products of the same shape in one batched call (cuBLAS's pointer arrays,
    // device arrays of `count` pointers each): y[i] [T, out] (leading dimension ldy) = x[i] ·
    // w[i]ᵀ with x[i] = hi[i] [T, in] and, unless lo is null, lo[i] added.
    void linear_rounded_batched(const void* const* hi, const void* const* lo, int64_t T, int64_t in,
                                const void* const* w, DType w_type, int64_t out, float* const* y, int64_t ldy,
                                int64_t count);
    cudaStream_t stream() const { return stream_; }
    void set_split_activations(bool on) { split_ = on; }
    bool split_activations() const { return split_; }

private:
    cudaStream_t stream_;
    cublasHandle_t handle_ = nullptr;
    void* workspace_ = nullptr;  // cuBLAS's own, set once so that graph capture allocates nothing
    bool split_ = false;
};
void check_cublas(cublasStatus_t status, const char* what);

// The routed experts' products of a step of many tokens in one launch (engine/cuda/grouped_gemm.cu):
// for each expert e, its rows offsets[e] .. offsets[e+1] (device values, as dispatch() leaves
// them), y[r] = x[r] · W_eᵀ with W_e = w_table[e] [N, K] (BF16) and x its BF16 parts hi, and lo
// unless null (round_split; the products of both summed); y f32 with leading dimension ldy.
// row_tiles: expert_row_tiles() of the host's copy of the offsets, or max_expert_row_tiles() (the launch's size:
// blocks past the last tile do nothing).
// expert_products_fit: the weights' type, K and number of experts it takes (16-byte aligned
// matrices asked of the caller).
// With `maps` (their weights as the TMA's tensor maps, write_expert_maps, and x's rows: x is
// [maps.x_rows, K]) the same products run on Hopper's warpgroup products
// (engine/cuda/grouped_wgmma.h) where expert_wgmma_available() and the shape allows (K a
// multiple of 64); else, and without maps, on the mma.sync kernel. Both take tiles of 128 rows.
struct ExpertMaps {
    const void* w = nullptr;  // [n_expert] tensor maps on the device
    int64_t x_rows = 0;
};
bool expert_products_fit(DType type, int64_t K, int64_t N, int64_t n_expert);
int64_t expert_row_tiles(const int64_t* offsets_host, int64_t n_expert);
// The most row tiles n_rows rows can make over n_expert experts (dispatch::max_expert_tiles):
// row_tiles for a launch sized before the counts reach the host.
int64_t max_expert_row_tiles(int64_t n_rows, int64_t n_expert);
void expert_products(const void* hi, const void* lo, int64_t K, const void* const* w_table, DType type, int64_t N,
                     const int64_t* offsets, int64_t n_expert, int64_t row_tiles, float* y, int64_t ldy, cudaStream_t s,
                     ExpertMaps maps = {});
// The experts' weights w (BF16 [N, K] each, on the device) as the Hopper kernel's tensor maps:
// expert_maps_bytes(w.size()) bytes written to maps_device
// (aligned to 64 bytes). False, writing nothing, where this build or device has no such kernel,
// the driver no tensor maps, or the shapes are not ones it takes.
std::size_t expert_maps_bytes(std::size_t n_expert);
bool write_expert_maps(const std::vector<const void*>& w, int64_t K, int64_t N, void* maps_device);

// hi = x rounded to `type` (BF16 or F16), n elements; lo, unless null, = (x - hi) rounded:
// the activations of several products rounded once (Blas::linear_rounded).
void round_split(const float* x, int64_t n, DType type, void* hi, void* lo, cudaStream_t s);
// h [rows, F] = silu(gu[r, f]) · gu[r, F + f] of gu [rows, 2F]: a gate and up product made as one.
void silu_mul_pairs(const float* gu, int64_t rows, int64_t F, float* h, cudaStream_t s);
// The same h rounded as round_split rounds it, into hi and (unless null) lo [rows, F] of `type`
// (BF16 or F16): what the down product takes, without h in f32 between.
void silu_mul_round(const float* gu, int64_t rows, int64_t F, DType type, void* hi, void* lo, cudaStream_t s);
// The same over a stacked layout (dispatch::stacked_hi, padded [n_expert+1] on the device, its
// n_padded rows): padded row p's gate and up are the sums of its hi and lo parts' rows of gu
// [2·n_padded, 2F], each rounded once, and h's two parts go to hi at the same rows of a
// [2·n_padded, F] layout.
void silu_mul_round_stacked(const float* gu, const int64_t* padded, int64_t n_expert, int64_t n_padded, int64_t F,
                            DType type, void* hi, cudaStream_t s);

}  // namespace moe::cuda::launch
