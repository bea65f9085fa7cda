// A decoder layer of a one-token step as one cooperative launch; see decode_kernels.h
// (launch::decode_layer). The stages are the device functions of the launches they stand for
// (decode_bodies.cuh, decode_attention.cuh, route_warp.cuh), run by blocks that stay for the
// layer, with a grid-wide barrier between each stage and the next.
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>

#include "engine/cuda/attention_kernels.h"
#include "engine/cuda/decode_attention.cuh"
#include "engine/cuda/decode_bodies.cuh"
#include "engine/cuda/decode_kernels.h"
#include "engine/cuda/device.h"
#include "engine/cuda/launch_after.h"
#include "engine/cuda/route_warp.cuh"
#include "engine/cuda/row_math.cuh"
#include "engine/error.h"

namespace moe::cuda::launch {

namespace {

namespace cg = cooperative_groups;
using decode_body::kWarps;
using decode_body::Parts;

constexpr int kLayerMinBlocks = 2;  // blocks of kNormThreads per multiprocessor
// Positions a warp (or values a thread) of an attention item loads at once
// (decode_attn::split_item's U): a block has several items in turn, so each must keep more
// loads in flight than the split kernel's blocks, of which many run at once.
constexpr int kAttentionDepth = 4;

// The layer as the kernel takes it (by value).
struct LayerArgs : decode_body::LayerInputs {
    Parts qkv;
    Parts o;
    Parts ffn;
    Parts dense_down;
    int64_t inter;
    int64_t per_slot;
    const void* shared_down;
    int64_t Fs;
    float* shared_y;
};

const char* const kDenseStages[] = {"qkv", "attention", "merge", "o", "ffn in", "down"};
const char* const kMoeStages[] = {"qkv", "attention", "merge", "o", "ffn in", "route", "gate+up", "down"};

// Blocks (b of nb) of kNormThreads threads, all resident (a cooperative launch). Dynamic
// shared memory: layer_shared_floats floats. W: the experts' weight type.
template <typename W>
__global__ void __launch_bounds__(kNormThreads, kLayerMinBlocks) decode_layer_kernel(LayerArgs a) {
    extern __shared__ __align__(16) float sm[];
    cg::grid_group grid = cg::this_grid();
    const int64_t b = blockIdx.x, nb = gridDim.x;
    const int64_t qdim = a.nh * a.hd;

    const int64_t pos0 = a.d_pos ? *a.d_pos : a.pos0;
    const int64_t n_splits = a.nh * decode_attn::kSplits;
    int stage = 0;  // with stamps: block 0's thread 0 notes when each stage starts
    auto next_stage = [&] {
        grid.sync();
        if (a.stamps && b == 0 && threadIdx.x == 0) a.stamps[stage] = global_ns();
        ++stage;
    };
    if (a.stamps && b == 0 && threadIdx.x == 0) a.stamps[stage] = global_ns();
    ++stage;

    // 1. RMSNorm, q, k, v (q and k rotated; k and v into the cache). Then the keys and values of
    // the block's first attention item into L2 (all but the step's own are there already).
    decode_body::gemv_rows<false, kLayerMinBlocks, true>(a.x, a.H, a.attn_norm, a.eps, nullptr, a.qkv, b, nb, 0, sm);
    if (b < n_splits)
        decode_attn::split_prefetch(a.kc, a.vc, a.nh, a.nkv, a.hd, pos0, b / decode_attn::kSplits,
                                    b % decode_attn::kSplits);
    next_stage();

    // 2. Attention's splits: items (head, split). The first rows of the output projection and of
    // the feed-forward's products into L2 first: attention waits on its reads more than it
    // streams.
    decode_body::gemv_prefetch(a.o, qdim, b);
    decode_body::gemv_prefetch(a.ffn, a.H, b);
    float* scratch = sm;                     // [kNormThreads]
    float* item_shared = sm + kNormThreads;  // the item's own
    for (int64_t item = b; item < n_splits; item += nb) {
        // The next item's keys and values on their way to L2 while this one is worked on.
        if (item + nb < n_splits)
            decode_attn::split_prefetch(a.kc, a.vc, a.nh, a.nkv, a.hd, pos0, (item + nb) / decode_attn::kSplits,
                                        (item + nb) % decode_attn::kSplits);
        decode_attn::split_item<float, kAttentionDepth>(a.q, a.kc, a.vc, a.nh, a.nkv, a.hd, pos0, item / decode_attn::kSplits,
                                                        item % decode_attn::kSplits, a.scale, a.partials, item_shared,
                                                        scratch);
        __syncthreads();  // the item's shared memory is read before the next one writes it
    }
    next_stage();

    // 3. The merge: items (head, 32 dimensions).
    const int64_t chunks = (a.hd + 31) / 32;
    auto& merge = *reinterpret_cast<decode_attn::MergeShared*>(item_shared);
    for (int64_t item = b; item < a.nh * chunks; item += nb) {
        decode_attn::merge_item(a.partials, a.hd, a.attn, item / chunks, item % chunks, scratch, merge);
        __syncthreads();
    }
    decode_body::gemv_prefetch(a.o, qdim, b);
    next_stage();

    // 4. The output projection added to the residual.
    decode_body::gemv_rows<false, kLayerMinBlocks, true>(a.attn, qdim, nullptr, 0.0f, nullptr, a.o, b, nb, 0, sm);
    decode_body::gemv_prefetch(a.ffn, a.H, b);
    next_stage();

    // 5. RMSNorm, the router and the shared experts' gated product (or the dense MLP's).
    decode_body::gemv_rows<false, kLayerMinBlocks, true>(a.x, a.H, a.ffn_norm, a.eps, a.normed, a.ffn, b, nb, 0, sm);
    if (!a.moe) {
        decode_body::gemv_prefetch(a.dense_down, a.inter, b);
        next_stage();
        // 6. The dense MLP's down product added to the residual.
        decode_body::gemv_rows<false, kLayerMinBlocks, true>(a.ffn_h, a.inter, nullptr, 0.0f, nullptr, a.dense_down, b, nb, 0,
                                                       sm);
        if (a.stamps) next_stage();  // the end of the last stage
        return;
    }
    const W* shared_down = static_cast<const W*>(a.shared_down);
    // With more than one block the others compute the shared experts' down products while the
    // first routes (into shared_y; the down stage then takes them from there).
    const float* shared_y = shared_down && a.shared_y && nb > 1 ? a.shared_y : nullptr;
    if (b > 0) decode_body::down_prefetch(shared_down, a.Fs, a.H, b - 1);
    next_stage();

    // 6. The routing, by the first warp; the shared experts' down products, by the other blocks.
    if (b == 0 && threadIdx.x < 32)
        route_warp::token(a.logits, 0, a.route, sm, a.out.experts, a.out.weights, a.out.entropy, a.out.mass,
                          a.out.margin);
    if (shared_y && b > 0)
        decode_body::shared_down_rows<W, false, kLayerMinBlocks>(shared_down, a.ffn_h, a.Fs, a.H, a.shared_y, b - 1,
                                                                 nb - 1, 0);
    next_stage();

    // 7. The routed experts' gate and up: items (share of the rows, slot).
    for (int64_t item = b; item < a.k * a.per_slot; item += nb) {
        decode_body::gate_up_rows<W, false, kLayerMinBlocks, true>(a.normed, a.H, a.k, a.out.experts, a.dropped, a.gate, a.up,
                                                             a.F, a.eh, item % a.per_slot, a.per_slot,
                                                             item / a.per_slot, sm);
        __syncthreads();
    }
    decode_body::down_prefetch_routed<W>(a.out.experts, a.dropped, a.down, a.k, a.F, a.H, b, 0);
    next_stage();

    // 8. The down products, the shared experts' and the weighted combine, added to the residual.
    decode_body::down_rows<W, false, kLayerMinBlocks, true>(a.eh, a.k, a.F, a.out.experts, a.dropped, a.out.weights, a.down,
                                                      shared_down, a.ffn_h, a.Fs, a.H, a.x, b, nb, 0, shared_y);
    if (a.stamps) next_stage();  // the end of the last stage
}

// The dynamic shared memory (floats) the kernel needs for L: the most any stage takes.
int64_t layer_shared_floats(const DecodeLayer& L) {
    const int64_t positions = L.d_pos ? L.max_positions : L.pos0 + 1;
    int64_t n = std::max(L.H, L.nh * L.hd);
    n = std::max(n, kNormThreads + decode_attn::split_floats(L.hd, positions));
    n = std::max(n, kNormThreads + static_cast<int64_t>(sizeof(decode_attn::MergeShared) / sizeof(float)));
    if (!L.moe) return std::max(n, L.inter);
    return std::max(n, route_warp::shared_floats(L.route.n_expert));
}

// Blocks of the kernel for W that a multiprocessor holds with `shared` bytes each (0: the
// kernel cannot run so), asked once per (type, size).
int resident_per_multiprocessor(DType type, size_t shared) {
    static std::mutex mu;
    static std::map<std::pair<int, size_t>, int> known;
    const std::lock_guard<std::mutex> lock(mu);
    const auto key = std::make_pair(static_cast<int>(type), shared);
    if (const auto it = known.find(key); it != known.end()) return it->second;
    int n = 0;
    auto ask = [&](auto kernel) {
        if (shared > 48 * 1024 && cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                       static_cast<int>(shared)) != cudaSuccess) {
            (void)cudaGetLastError();
            return;
        }
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kNormThreads, shared) != cudaSuccess) {
            (void)cudaGetLastError();
            n = 0;
        }
    };
    switch (type) {
        case DType::bf16:
            ask(decode_layer_kernel<__nv_bfloat16>);
            break;
        case DType::f16:
            ask(decode_layer_kernel<__half>);
            break;
        case DType::f32:
            ask(decode_layer_kernel<float>);
            break;
        default:
            break;
    }
    known[key] = n;
    return n;
}

DType kernel_type(const DecodeLayer& L) {
    return L.moe ? L.expert_type : DType::bf16;
}

}  // namespace

int decode_layer_stages(bool moe, const char* const** names) {
    if (names) *names = moe ? kMoeStages : kDenseStages;
    return moe ? static_cast<int>(std::size(kMoeStages)) : static_cast<int>(std::size(kDenseStages));
}

bool decode_layer_runs(const DecodeLayer& L) {
    if (!cooperative_launches() || multiprocessors() <= 0) return false;
    if (L.moe) {
        if (!route_warp::takes(L.route) || L.k != L.route.k) return false;
        if (L.shared_down && L.shared_type != L.expert_type) return false;
        if (L.expert_type != DType::bf16 && L.expert_type != DType::f16 && L.expert_type != DType::f32) return false;
    }
    if (L.nh <= 0 || L.nkv <= 0 || L.nh % L.nkv != 0 || L.hd <= 0) return false;
    const size_t shared = static_cast<size_t>(layer_shared_floats(L)) * sizeof(float);
    if (shared > static_cast<size_t>(max_shared_optin())) return false;
    return resident_per_multiprocessor(kernel_type(L), shared) >= 1;
}

void decode_layer(const DecodeLayer& L, cudaStream_t s) {
    if (!decode_layer_runs(L))
        throw Error(ErrorKind::failure, "the decode layer kernel cannot run this layer on this device");
    LayerArgs a{};
    static_cast<decode_body::LayerInputs&>(a) = decode_body::inputs_of(L);
    a.qkv = decode_body::make_parts(L.qkv, 3);
    a.o = decode_body::make_parts(&L.o, 1);
    a.ffn = decode_body::make_parts(L.ffn, L.n_ffn);
    if (!L.moe) a.dense_down = decode_body::make_parts(&L.dense_down, 1);
    a.inter = L.inter;
    a.shared_down = L.shared_down;
    a.Fs = L.Fs;
    a.shared_y = L.shared_y;

    const DType type = kernel_type(L);
    const size_t shared = static_cast<size_t>(layer_shared_floats(L)) * sizeof(float);
    const int per_sm = std::min(resident_per_multiprocessor(type, shared), kLayerMinBlocks);
    const int64_t blocks = static_cast<int64_t>(per_sm) * multiprocessors();
    // The gate and up rows of each slot over an equal share of the blocks (as expert_gate_up).
    const int64_t tiles = (L.F + kWarps - 1) / kWarps;
    a.per_slot = L.moe ? std::max<int64_t>(1, std::min<int64_t>(tiles, blocks / std::max<int64_t>(1, L.k))) : 1;

    const dim3 grid(static_cast<unsigned>(blocks)), block(kNormThreads);
    const char* what = "launching the decode layer kernel";
    switch (type) {
        case DType::bf16:
            launch_cooperative(decode_layer_kernel<__nv_bfloat16>, grid, block, shared, s, what, a);
            break;
        case DType::f16:
            launch_cooperative(decode_layer_kernel<__half>, grid, block, shared, s, what, a);
            break;
        default:
            launch_cooperative(decode_layer_kernel<float>, grid, block, shared, s, what, a);
            break;
    }
    count(Counted::layer);
}

}  // namespace moe::cuda::launch
