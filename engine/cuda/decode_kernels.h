// Fused launches of a small step (decode: a few tokens), each standing for several of the
// general launches, so that a decode layer is a handful of kernels that read the weights once
// at full bandwidth: RMSNorm fused into the matrix-vector products that read its output,
// several products with one input in one launch, SiLU-gated pairs, residual adds as the
// products' epilogue, the rotary embedding of queries and keys in one launch, and the routed
// and shared experts' down products with the weighted combine and the residual add.
// Every value is rounded as the CPU backend rounds it. For the .cu files.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "engine/cuda/route_outputs.h"
#include "engine/router_core.h"
#include "engine/tensor.h"

namespace moe::cuda::launch {

// Rows of one weight matrix W [rows, in] (BF16, F16 or F32) applied to the step's input.
//   plain:     y[t, o] = W[o] · x[t]
//   gated:     y[t, o] = silu(W[o] · x[t]) · (W2[o] · x[t])       (w2 set)
//   residual:  y[t, o] = y[t, o] + W[o] · x[t]                    (accumulate)
// y's rows have leading dimension ldy; with row0 (a device value) y starts *row0 rows on: a
// decode step's key and value straight into the cache at the position the device holds.
// With rope_cos set (plain parts only), the rotary embedding of the halves layout is applied
// to each head of head_dim rows as launch::rope_qk would after the product, with token t's
// rope_cos, rope_sin [T, head_dim/2]: a warp computes rows o and o + head_dim/2 of a head and
// writes them rotated, rounded as the CPU rotates them.
struct GemvPart {
    const void* w = nullptr;
    const void* w2 = nullptr;
    DType type = DType::bf16;
    int64_t rows = 0;
    float* y = nullptr;
    int64_t ldy = 0;
    bool accumulate = false;
    const int64_t* row0 = nullptr;
    const float* rope_cos = nullptr;
    const float* rope_sin = nullptr;
    int64_t head_dim = 0;
};
constexpr int kMaxGemvParts = 4;

// The parts (at most kMaxGemvParts, one input width `in`) over T tokens of x [T, in], in one
// launch. With norm (RMSNorm weights [in], eps), each token's x is normalised first as
// launch::rms_norm does and, when normed is set, written there too.
void fused_gemv(const float* x, int64_t T, int64_t in, const float* norm, float eps, float* normed,
                const GemvPart* parts, int n_parts, cudaStream_t s);

// The rotary embedding (halves layout) of T tokens' queries q [T, nh·hd] (rows qld) and keys
// [T, nkv·hd] (rows kld) starting *k_row0 rows (when set) after k: cos, sin [T, hd/2].
void rope_qk(float* q, int64_t T, int64_t nh, int64_t qld, float* k, const int64_t* k_row0, int64_t nkv, int64_t kld,
             int64_t hd, const float* cos, const float* sin, cudaStream_t s);

// The same rotation of T tokens' queries q (in place) and new keys k_new [T, nkv·hd] (rows
// ld_new; rotated in place), then each key head and its value head of v_new (same layout)
// stored rounded to BF16 into a BF16 cache (k_cache, v_cache [capacity, nkv·hd]) at row
// (*row0 when set, else pos0) + t: a small step's keys and values into a BF16 cache.
void rope_store_kv(float* q, int64_t T, int64_t nh, int64_t qld, float* k_new, const float* v_new, int64_t ld_new,
                   int64_t nkv, int64_t hd, const float* cos, const float* sin, void* k_cache, void* v_cache,
                   const int64_t* row0, int64_t pos0, cudaStream_t s);

// The MoE block's output added to the residual stream, for T tokens with k slots each:
//   x[t] += shared[t] + Σ_r weights[t·k+r] · (down_{experts[t·k+r]} · h[t·k+r])
// in rank order, dropped slots skipped (rounded as launch::combine_rows, then the add);
// shared[t] = shared_down · shared_h[t] (width Fs) when shared_down is set, else 0.
// down: [E] device pointers to [H, F]; h [T·k, F].
void moe_down_combine(const float* h, int64_t T, int64_t k, int64_t F, const int32_t* experts, const uint8_t* dropped,
                      const float* weights, const void* const* down, DType type, const void* shared_down, DType shared_type,
                      const float* shared_h, int64_t Fs, int64_t H, float* x, cudaStream_t s);

// A decoder layer of a one-token step (decode at batch 1) as one cooperative launch
// (MOEWB_CUDA_DECODE_KERNEL=layer, launch::layer_kernel_asked): blocks that stay for the whole
// layer (two per multiprocessor) go through its stages with a grid-wide barrier between each
// and the next —
//   1. the attention's RMSNorm and the q, k, v products, q and k rotated, k and v into the
//      f32 cache at the step's row (qkv, as fused_gemv);
//   2. the decode split of attention over the cache; 3. its merge (as launch::attention);
//   4. the output projection added to the residual (o);
//   5. the feed-forward's RMSNorm with the router and the shared experts' gated product, or
//      the dense MLP's gated product (ffn);
//   6. dense: its down product added to the residual; MoE: the routing (one warp, plain
//      routes: route_warp), then 7. the routed experts' gate and up products, then 8. their
//      down products with the shared experts' and the weighted combine added to the residual
//      (as launch::expert_gate_up and moe_down_combine);
// — each block asking what its first rows of a later stage read into L2 before it waits at a
// barrier (the keys and values of its first attention item; at the start of attention, the
// output projection's and the feed-forward's first rows; the first routed experts' down rows
// once the routing is known), and, while the first warp routes, the other blocks computing the
// shared experts' down products into shared_y. Every value is computed as those launches
// compute it: the same logits, bit for bit (attention for up to 16,384 positions; beyond, its
// softmax sums in another order).
struct DecodeLayer {
    float* x = nullptr;  // [H] the residual stream
    int64_t H = 0;
    float eps = 0;
    const float* attn_norm = nullptr;
    GemvPart qkv[3];
    const float* q = nullptr;  // the rotated query [nh·hd] qkv[0] writes
    const float* k_cache = nullptr;
    const float* v_cache = nullptr;
    int64_t nh = 0, nkv = 0, hd = 0;
    int64_t pos0 = 0;                // the step's position, unless d_pos
    const int64_t* d_pos = nullptr;  // on the device (a step replayed from a CUDA graph)
    int64_t max_positions = 0;       // with d_pos: the cache's capacity
    float* partials = nullptr;       // attention_partial_floats(nh, hd)
    float* attn = nullptr;           // [nh·hd]
    GemvPart o;
    const float* ffn_norm = nullptr;
    float* normed = nullptr;  // MoE: the normalised input, written for the experts
    GemvPart ffn[2];
    int n_ffn = 0;
    bool moe = false;
    // Dense: the down product (input ffn_h of width inter).
    GemvPart dense_down;
    int64_t inter = 0;
    const float* ffn_h = nullptr;  // dense: the gated product; MoE: the shared experts' (width Fs)
    // MoE.
    const float* router_logits = nullptr;
    router_core::Args route{};
    RouteOutputs out{};
    const uint8_t* dropped = nullptr;
    int64_t k = 0, F = 0;
    const void* const* gate = nullptr;
    const void* const* up = nullptr;
    const void* const* down = nullptr;
    DType expert_type = DType::bf16;
    float* eh = nullptr;                // [k, F]
    float* shared_y = nullptr;          // [H] scratch: the shared experts' down products, made while routing
    const void* shared_down = nullptr;  // null: the shared experts do not run
    DType shared_type = DType::bf16;
    int64_t Fs = 0;
    // decode_stream: the layer's kStreamCounters counters, zero before the launch (it leaves them so).
    unsigned* sync = nullptr;
    // Set (MOEWB_CUDA_STAGES=1): room for decode_layer_stages + 1 time stamps (ns, block 0
    // as it leaves each barrier: the start of each stage, then the end, after a barrier added
    // for it).
    unsigned long long* stamps = nullptr;
};

// The stages decode_layer times into DecodeLayer::stamps (their names, static), for a dense
// or a MoE layer.
int decode_layer_stages(bool moe, const char* const** names);

// Whether decode_layer can run L on the current device: cooperative launches, a plain route,
// experts of one type, the shared memory it needs.
bool decode_layer_runs(const DecodeLayer& L);
void decode_layer(const DecodeLayer& L, cudaStream_t s);

// The same layers in cooperative launches that stream their weights
// (MOEWB_CUDA_DECODE_KERNEL=stream: a launch a layer; =step: one launch for a run of consecutive
// layers, decode_stream.cu): one block of 256 threads a multiprocessor, all resident. Thread 0
// of each block asks the bulk copier (cp.async.bulk) for the weight rows of the block's tiles
// (engine/cuda/stream_plan.h: up to eight rows, 32 KB) into a ring of slots in shared memory,
// as soon as a slot is free and whatever stage the block is in — the next stages' rows, the
// next layer's too, arrive while the block waits for the rest of the grid or works on
// attention — and the warps make each tile's rows from there. Stages as decode_layer's, each
// block leaving one by adding to a counter of the layer's in global memory and waiting for the
// grid's blocks on the counter it needs (L.sync): the q, k, v products; attention's splits (a
// warp an item, split_item's values); their merge; the output projection; the feed-forward's
// norm with the router and the shared experts' (or the dense MLP's) gated product, after which
// the last block out routes the token; the shared experts' (or dense) down product; the routed
// experts' gate and up (their rows asked for once the routing is known); their down products
// with the combine; the next layer once every block is done with this one. Every value as the
// launches compute it, bit for bit. Compute capability 9.0 on.
//
// The layers' arguments are planned on the host into a table (decode_stream_plan, pinned
// memory of decode_stream_args_bytes() a layer), copied to the device's copy of the table
// (decode_stream_upload: one copy a step) and launched from there (decode_stream).
std::size_t decode_stream_args_bytes();
// Plans L into entry i of table; false (the entry untouched) where the kernel cannot run L.
bool decode_stream_plan(const DecodeLayer& L, void* table, int i);
// Copies entries [0, n) of table to device_table (16-byte aligned) on s.
void decode_stream_upload(const void* table, void* device_table, int n, cudaStream_t s);
// Entries [first, first + n) (planned, uploaded) as one launch (a layer a launch where their
// widest pieces leave no room for the ring).
void decode_stream(const void* table, const void* device_table, int first, int n, cudaStream_t s);
// The counters DecodeLayer::sync holds (a layer's).
constexpr int kStreamCounters = 16;
// The stages decode_stream times into DecodeLayer::stamps (as decode_layer_stages).
int decode_stream_stages(bool moe, const char* const** names);

}  // namespace moe::cuda::launch
