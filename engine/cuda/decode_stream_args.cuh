// The decode stream kernel's arguments (decode_stream.cu, launch::decode_stream) as the host
// plans them (decode_stream_plan.cu): a layer's inputs, its ring stages' parts and tiling, and
// where each piece of the kernel's shared memory lies. For the .cu files.
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/cuda/decode_bodies.cuh"
#include "engine/cuda/decode_kernels.h"
#include "engine/cuda/stream_plan.h"

namespace moe::cuda::launch::stream_kernel {

namespace sp = stream_plan;
using decode_body::Parts;
using decode_body::WType;

constexpr int kThreads = kNormThreads;
constexpr int kWarps = kThreads / 32;
static_assert(kWarps == sp::kTileWarps, "a warp a row of a tile");
constexpr int kMaxSlots = 8;  // of the ring; also the most routed slots a token (k ≤ kWarps)

// A layer's grid-wide counters (DecodeLayer::sync): each block adds one as it leaves a stage;
// kRoute is set once the routing is written; the last block out of a launch sets those of every
// layer it ran back to 0.
enum Counter : int {
    kQkvDone,
    kAttnDone,
    kMergeDone,
    kODone,
    kFfnDone,
    kDown1Done,
    kGateUpDone,
    kDownDone,
    kRoute,
    kExit
};
static_assert(kExit + 1 <= kStreamCounters, "room for the counters");

// The stages whose weights go through the ring, in order.
enum RingStage : int { rQkv, rO, rFfn, rDown1, rGateUp, rDown, kRingStages };

// Byte offsets of the shared memory's pieces (the ring at 0), the same for every layer of a launch.
struct Layout {
    uint32_t xa, xb, scratch, exch, weights, info, bars, route, merge, flag, issue, args, total;
};

// What the block's issuing thread keeps of a layer's routing once it has seen it (shared
// memory), so that a routed tile's copies are asked for without reads of global memory: each
// slot's expert (-1: dropped) and its rows, and the slots present (bit i: slot i).
struct RouteCache {
    const void* gate[kMaxSlots];
    const void* up[kMaxSlots];
    const void* down[kMaxSlots];
    int32_t expert[kMaxSlots];
    int32_t present;
};

// One layer's arguments, planned on the host (decode_stream_plan) into a table the launch reads
// from global memory; each block copies its current layer's into shared memory.
struct alignas(16) StreamArgs : decode_body::LayerInputs {
    int64_t ffn_width;  // of ffn_h, what the ffn stage's gated part makes: the down1 stage's input
    WType et;
    float* shared_y;  // null: the shared experts do not run
    Parts parts[4];   // the ring stages rQkv .. rDown1 (rDown1: the shared down into shared_y, or the dense down)
    int64_t in[kRingStages];  // each ring stage's input width
    sp::Stage plan[kRingStages];
    unsigned* sync;  // the layer's counters
};

// A launch: layers [0, n) of the table, one after another, through one ring.
struct Launch {
    const StreamArgs* layers;
    int n;
    int slots;
    Layout lay;
};

__host__ __device__ inline int64_t elem_bytes(WType t) {
    return t == WType::f32 ? 4 : 2;
}

// The counter every block has added to once it is done with layer a.
__host__ __device__ inline Counter last_stage(const StreamArgs& a) {
    return a.moe ? kDownDone : kDown1Done;
}

// The host's side (decode_stream_plan.cu).
// The shared memory a launch of layers a [n] takes besides the ring (room for the widest of
// each piece), and where each piece lies past it.
Layout layout_of(const StreamArgs* a, int n, int slots);
// The ring's slots that fit beside the rest of a launch of layers a [n] (0: fewer than two).
int slots_for(const StreamArgs* a, int n);
// The kernel's arguments for L in a; false where it cannot run L (alone, or beside others).
bool planned(const DecodeLayer& L, StreamArgs& a);
// The kernel's static shared memory (decode_stream.cu).
std::size_t static_shared();

}  // namespace moe::cuda::launch::stream_kernel
