// The decode stream kernel's arguments planned on the host (decode_stream_args.cuh): a layer's
// parts and their tiles, the shared memory of a launch, whether the kernel can take a layer;
// the table of a step's layers and its copy to the device (decode_kernels.h).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include "engine/cuda/decode_attention.cuh"
#include "engine/cuda/decode_kernels.h"
#include "engine/cuda/decode_stream_args.cuh"
#include "engine/cuda/device.h"
#include "engine/cuda/launch_after.h"
#include "engine/cuda/route_warp.cuh"
#include "engine/error.h"

namespace moe::cuda::launch {

namespace stream_kernel {

namespace {

const char* const kDenseStages[] = {"qkv", "attention", "merge", "o", "ffn in", "down"};
const char* const kMoeStages[] = {"qkv", "attention", "merge", "o", "ffn in", "shared down", "gate+up", "down"};

int64_t round16(int64_t v) {
    return (v + 15) / 16 * 16;
}

sp::Part part_of(const GemvPart& g, int64_t in) {
    sp::Part p;
    p.row_bytes = in * elem_bytes(decode_body::wtype(g.type, "stream kernel"));
    if (g.rope_cos) {
        p.kind = sp::Kind::pairs;
        p.items = g.rows / 2;
        p.half = g.head_dim / 2;
    } else {
        p.kind = g.w2 ? sp::Kind::gated : sp::Kind::plain;
        p.items = g.rows;
    }
    return p;
}

bool aligned16(const void* p) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

bool vectorised(int64_t n, DType t) {
    return n % (t == DType::f32 ? 4 : 8) == 0;
}

// The kernel's arguments for L (and whether it can run them: ok).
StreamArgs args_of(const DecodeLayer& L, bool& ok) {
    ok = true;
    StreamArgs a{};
    static_cast<decode_body::LayerInputs&>(a) = decode_body::inputs_of(L);
    a.sync = L.sync;
    const int64_t qdim = L.nh * L.hd;
    GemvPart down1;
    if (L.moe) {
        a.ffn_width = L.shared_down ? L.Fs : 0;
        a.et = decode_body::wtype(L.expert_type, "stream kernel");
        if (L.shared_down) {
            a.shared_y = L.shared_y;
            down1.w = L.shared_down;
            down1.type = L.shared_type;
            down1.rows = L.H;
            down1.y = L.shared_y;
            down1.ldy = L.H;
            ok = ok && L.shared_y && vectorised(L.Fs, L.shared_type);
        }
    } else {
        a.ffn_width = L.inter;
        down1 = L.dense_down;
        ok = ok && vectorised(L.inter, down1.type);
    }
    const GemvPart* groups[4] = {L.qkv, &L.o, L.ffn, &down1};
    const int counts[4] = {3, 1, L.n_ffn, down1.w ? 1 : 0};
    const int64_t ins[4] = {L.H, qdim, L.H, a.ffn_width};
    for (int r = 0; r < 4; ++r) {
        a.in[r] = ins[r];
        a.parts[r] = decode_body::make_parts(groups[r], counts[r]);
        a.plan[r].n = counts[r];
        for (int j = 0; j < counts[r]; ++j) {
            const GemvPart& g = groups[r][j];
            a.plan[r].part[j] = part_of(g, ins[r]);
            ok = ok && vectorised(ins[r], g.type) && sp::fits(a.plan[r].part[j]) && aligned16(g.w) && aligned16(g.w2);
        }
    }
    if (L.moe) {
        const int64_t eb = elem_bytes(a.et);
        a.in[rGateUp] = L.H;
        a.plan[rGateUp].n = 1;
        a.plan[rGateUp].part[0] = {sp::Kind::routed, L.F, L.H * eb, 0, L.k};
        a.in[rDown] = L.F;
        a.plan[rDown].n = 1;
        a.plan[rDown].part[0] = {sp::Kind::combine, L.H, L.F * eb, 0, L.k};
        ok = ok && vectorised(L.H, L.expert_type) && vectorised(L.F, L.expert_type) &&
             sp::fits(a.plan[rGateUp].part[0]) && sp::fits(a.plan[rDown].part[0]) && L.F % 4 == 0;
    }
    for (sp::Stage& st : a.plan) sp::prepare(st);
    return a;
}

bool hopper() {
    return compute_major() >= 9 && cooperative_launches();
}

}  // namespace

Layout layout_of(const StreamArgs* a, int n, int slots) {
    int64_t xa = 0, xb = 0, experts = 0;
    for (int i = 0; i < n; ++i) {
        xa = std::max({xa, a[i].H, a[i].nh * a[i].hd});
        xb = std::max({xb, a[i].ffn_width, a[i].moe ? a[i].k * a[i].F : 0});
        experts = std::max<int64_t>(experts, a[i].route.n_expert);
    }
    Layout l{};
    int64_t at = static_cast<int64_t>(slots) * sp::kSlotBytes;
    auto take = [&](int64_t bytes) {
        const auto off = static_cast<uint32_t>(at);
        at = round16(at + bytes);
        return off;
    };
    l.xa = take(xa * 4);
    l.xb = take(xb * 4);
    l.scratch = take(kThreads * 4);
    l.exch = take(kWarps * 4);
    l.weights = take(kWarps * 4);
    l.info = take(kMaxSlots * 4);
    l.bars = take(kMaxSlots * 8);
    l.route = take(route_warp::shared_floats(static_cast<int32_t>(experts)) * 4);
    l.merge = take(sizeof(decode_attn::MergeShared));
    l.flag = take(16);
    l.issue = take(sizeof(RouteCache));
    l.args = take(sizeof(StreamArgs));
    l.total = static_cast<uint32_t>(at);
    return l;
}

int slots_for(const StreamArgs* a, int n) {
    const int64_t room = static_cast<int64_t>(max_shared_optin()) - static_cast<int64_t>(static_shared()) -
                         static_cast<int64_t>(layout_of(a, n, 0).total);
    const int64_t slots = std::min<int64_t>(kMaxSlots, room / sp::kSlotBytes);
    return slots >= 2 ? static_cast<int>(slots) : 0;
}

bool planned(const DecodeLayer& L, StreamArgs& a) {
    if (!hopper() || multiprocessors() <= 0 || !L.sync) return false;
    if (L.moe && (!route_warp::takes(L.route) || L.k != L.route.k || L.k > kWarps ||
                  (L.shared_down && L.shared_type != L.expert_type)))
        return false;
    if (L.nh <= 0 || L.nkv <= 0 || L.nh % L.nkv != 0 || L.hd <= 0 || L.hd > 128) return false;
    // At most 64 positions a split (split_item_warp's scores, two a lane).
    const int64_t positions = L.d_pos ? L.max_positions : L.pos0 + 1;
    if (positions > 64 * decode_attn::kSplits) return false;
    try {
        bool ok = false;
        a = args_of(L, ok);
        return ok && slots_for(&a, 1) > 0;
    } catch (const Error&) {  // a weight type the products do not take
        return false;
    }
}

}  // namespace stream_kernel

int decode_stream_stages(bool moe, const char* const** names) {
    if (names) *names = moe ? stream_kernel::kMoeStages : stream_kernel::kDenseStages;
    return moe ? static_cast<int>(std::size(stream_kernel::kMoeStages))
               : static_cast<int>(std::size(stream_kernel::kDenseStages));
}

size_t decode_stream_args_bytes() {
    return sizeof(stream_kernel::StreamArgs);
}

bool decode_stream_plan(const DecodeLayer& L, void* table, int i) {
    stream_kernel::StreamArgs a;
    if (!stream_kernel::planned(L, a)) return false;
    std::memcpy(static_cast<unsigned char*>(table) + static_cast<size_t>(i) * sizeof(stream_kernel::StreamArgs), &a,
                sizeof a);
    return true;
}

void decode_stream_upload(const void* table, void* device_table, int n, cudaStream_t s) {
    check(cudaMemcpyAsync(device_table, table, static_cast<size_t>(n) * sizeof(stream_kernel::StreamArgs),
                          cudaMemcpyHostToDevice, s),
          "copying the decode stream kernel's arguments");
}

}  // namespace moe::cuda::launch
