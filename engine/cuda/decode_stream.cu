// Decoder layers of a one-token step as one launch whose blocks stream the layers' weights
// through a ring in shared memory; see decode_kernels.h (launch::decode_stream). The values are
// the launches' (decode_bodies.cuh, decode_attention.cuh, route_warp.cuh): the same sums in the
// same order, bit for bit. The arguments, planned on the host: decode_stream_plan.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <mutex>

#include "engine/cuda/decode_attention.cuh"
#include "engine/cuda/decode_bodies.cuh"
#include "engine/cuda/decode_kernels.h"
#include "engine/cuda/decode_stream_args.cuh"
#include "engine/cuda/device.h"
#include "engine/cuda/launch_after.h"
#include "engine/cuda/mbarrier.cuh"
#include "engine/cuda/route_warp.cuh"
#include "engine/cuda/row_math.cuh"
#include "engine/cuda/stream_plan.h"

namespace moe::cuda::launch {

namespace stream_kernel {

namespace {

// The counters' accesses, ordered at the device's scope (members: each compilation for an
// architecture before 9.0 leaves them unused). A wait polls with relaxed loads and orders
// itself once it sees the value (an acquire on every poll would drop the L1's lines each time).
struct Ordered {
    __device__ static unsigned load_relaxed(const unsigned* p) {
        unsigned v;
        asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
        return v;
    }
    // After a relaxed load saw what a release wrote: what was written before it is seen too.
    __device__ static void acquire() { asm volatile("fence.acq_rel.gpu;\n" ::: "memory"); }
    __device__ static unsigned add_acq_rel(unsigned* p) {
        unsigned old;
        asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], 1;\n" : "=r"(old) : "l"(p) : "memory");
        return old;
    }
    __device__ static void store_release(unsigned* p, unsigned v) {
        asm volatile("st.release.gpu.global.u32 [%0], %1;\n" ::"l"(p), "r"(v) : "memory");
    }
};

// A lane's 16 bytes of 2-byte weights take 32 bytes of inputs from shared memory, two 16-byte
// loads. Lanes 4 to 7 of each eight would find their first 16 bytes in the banks of lanes 0 to
// 3's: they read their second 16 bytes first, so that neither load of the warp meets a conflict
// (asm volatile, in this order: a compiler could otherwise load both in address order).
__device__ inline void load_inputs8(const float* xs, int lane, float4 (&x)[2]) {
    const uint32_t at = static_cast<uint32_t>(__cvta_generic_to_shared(xs));
    const uint32_t later = (static_cast<uint32_t>(lane) >> 2) & 1u;
    float4 a, b;
    asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n"
                 : "=f"(a.x), "=f"(a.y), "=f"(a.z), "=f"(a.w)
                 : "r"(at + 16u * later)
                 : "memory");
    asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];\n"
                 : "=f"(b.x), "=f"(b.y), "=f"(b.z), "=f"(b.w)
                 : "r"(at + 16u * (later ^ 1u))
                 : "memory");
    x[0] = later ? b : a;
    x[1] = later ? a : b;
}

// The warp's dot product of a row in shared memory with xs [n] (shared memory): dot_row's sum,
// chunk c of the row into partial sum c mod 4, in order (dot_vec_of's products).
template <typename W>
__device__ inline float smem_dot_of(const W* row, const float* xs, int64_t n, int lane) {
    using K = Chunking<W>;
    float s[4] = {0, 0, 0, 0};
    for (int64_t base = 0; base < n; base += 4 * K::kStep) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int64_t i = base + j * K::kStep + lane * K::kVec;
            if (i < n) {
                const uint4 raw = *reinterpret_cast<const uint4*>(row + i);  // one 16-byte load
                float4 x[K::kVec / 4];
                if constexpr (K::kVec == 8)
                    load_inputs8(xs + i, lane, x);
                else
                    x[0] = *reinterpret_cast<const float4*>(xs + i);
                s[j] += dot_vec_of<W>(raw, x);
            }
        }
    }
    return warp_sum((s[0] + s[1]) + (s[2] + s[3]));
}
__device__ inline float smem_dot(const void* row, WType t, const float* xs, int64_t n, int lane) {
    switch (t) {
        case WType::bf16:
            return smem_dot_of(static_cast<const __nv_bfloat16*>(row), xs, n, lane);
        case WType::f16:
            return smem_dot_of(static_cast<const __half*>(row), xs, n, lane);
        default:
            return smem_dot_of(static_cast<const float*>(row), xs, n, lane);
    }
}

// A wait of seconds on a counter means a bug, not a slow device: it ends the kernel with an
// error (a trap) rather than hang the process, as mbar::wait does.
struct Patience {
    long long start;
    uint32_t n = 0;
    __device__ Patience() { start = clock64(); }
    __device__ void check() {
        if ((++n & 1023u) == 0 && clock64() - start > (20ll << 30)) __trap();
    }
};

// The state of the thread that asks for the ring's copies (thread 0 of each block): it walks
// the launch's layers and their ring stages ahead of the warps.
struct Issuer {
    int layer = 0;        // the layer it is in
    int stage = 0;        // its ring stage
    int64_t j = 0;        // the block's next tile of it
    int64_t mine = -1;    // the block's tiles of it (-1: not yet counted)
    int64_t issued = 0;   // tiles asked for, in the block's order
    int slot = 0;         // the slot of the next (issued mod the ring's slots)
    bool routed = false;  // the layer's routing seen
};

class Block {
public:
    __device__ Block(const Launch& l, unsigned char* sm)
        : l_(l), sm_(sm), a_(reinterpret_cast<const StreamArgs*>(sm + l.lay.args)) {}

    // Every thread: the block moves on to layer li of the launch — once the grid is done with
    // the layer before (the residual complete), its arguments copied into shared memory.
    __device__ void enter(int li) {
        __syncthreads();  // the arguments of the layer before read
        if (li > 0) {
            wait_for(last_stage(*a_));
            mark();  // the end of the layer before
            __syncthreads();  // its stamps read before the arguments are overwritten
        }
        const auto* from = reinterpret_cast<const uint4*>(l_.layers + li);
        auto* to = reinterpret_cast<uint4*>(sm_ + l_.lay.args);
        for (int i = threadIdx.x; i < static_cast<int>(sizeof(StreamArgs) / 16); i += blockDim.x) to[i] = from[i];
        __syncthreads();
        stamp_ = 0;
    }
    __device__ const StreamArgs& args() const { return *a_; }

    // With stamps: block 0's thread 0 notes the time as each stage starts (and at the end).
    __device__ void mark() {
        if (a_->stamps && blockIdx.x == 0 && threadIdx.x == 0) a_->stamps[stamp_] = global_ns();
        ++stamp_;
    }

    // Rows of x (or of v [n]) into shared memory at xs, past the L1 (other blocks write them).
    __device__ void load(float* xs, const float* v, int64_t n) const {
        for (int64_t i = threadIdx.x; i < n; i += blockDim.x) xs[i] = __ldcg(v + i);
    }
    // xs = RMSNorm(x) as gemv_rows computes it; block 0 writes it to normed when set.
    __device__ void load_normed(float* xs, const float* norm, float* normed) const {
        const StreamArgs& a = *a_;
        load(xs, a.x, a.H);
        __syncthreads();
        const float scale = block_rms_scale(xs, a.H, a.eps);
        for (int64_t i = threadIdx.x; i < a.H; i += blockDim.x) {
            const float v = rms_apply(xs[i], scale, norm[i]);
            xs[i] = v;
            if (normed && blockIdx.x == 0) normed[i] = v;
        }
        __syncthreads();
    }

    // Ring tiles into free slots while their weights are known, in the block's order, this
    // layer's and the next ones' (their arguments read from the launch's table).
    __device__ void top_up(int64_t consumed) {
        const int64_t b = blockIdx.x, nb = gridDim.x;
        while (is_.layer < l_.n && is_.issued < consumed + l_.slots) {
            const StreamArgs& ia = l_.layers[is_.layer];
            if (is_.stage == kRingStages) {
                ++is_.layer;
                is_.stage = 0;
                is_.j = 0;
                is_.mine = -1;
                is_.routed = false;
                continue;
            }
            if (is_.mine < 0) is_.mine = sp::block_tiles(sp::prepared_tiles(ia.plan[is_.stage]), b, nb);
            if (is_.j >= is_.mine) {
                ++is_.stage;
                is_.j = 0;
                is_.mine = -1;
                continue;
            }
            if ((is_.stage == rGateUp || is_.stage == rDown) && !is_.routed) {
                if (Ordered::load_relaxed(ia.sync + kRoute) == 0) return;
                Ordered::acquire();
                cache_routing(ia);
                is_.routed = true;
            }
            issue(ia, is_.stage, b + is_.j * nb, is_.slot);
            ++is_.issued;
            ++is_.j;
            if (++is_.slot == l_.slots) is_.slot = 0;
        }
    }
    // Thread 0: until tile `consumed` of the block is asked for (waiting for the routing).
    __device__ void ensure_issued(int64_t consumed) {
        Patience patience;
        for (;;) {
            top_up(consumed);
            if (is_.issued > consumed) return;
            __nanosleep(64);
            patience.check();
        }
    }
    // Every thread: after thread 0 waited for the layer's counter c to reach the grid's
    // blocks, asking for tiles meanwhile.
    __device__ void wait_for(Counter c) {
        if (threadIdx.x == 0) {
            const unsigned* at = a_->sync + c;
            Patience patience;
            while (Ordered::load_relaxed(at) < gridDim.x) {
                top_up(consumed_);
                __nanosleep(32);
                patience.check();
            }
            Ordered::acquire();
        }
        __syncthreads();
    }
    // Every thread: the block leaves a stage; thread 0 gets how many blocks had before.
    __device__ unsigned leave(Counter c) {
        __syncthreads();
        return threadIdx.x == 0 ? Ordered::add_acq_rel(a_->sync + c) : 0u;
    }

    // Sets the layer's counter c to 1, after what this thread wrote.
    __device__ void publish(Counter c) const { Ordered::store_release(a_->sync + c, 1); }

    // The block's tiles of ring stage r, each waited for, computed with xs as its input, handed back.
    __device__ void run(int r, const float* xs) {
        const int64_t mine = sp::block_tiles(sp::prepared_tiles(a_->plan[r]), blockIdx.x, gridDim.x);
        int64_t& consumed = consumed_;
        for (int64_t jj = 0; jj < mine; ++jj, ++consumed) {
            if (threadIdx.x == 0) ensure_issued(consumed);
            // The slot and its phase: consumed mod the slots, and the parity of its quotient.
            mbar::wait(bar(slot_), phase_);
            compute(r, blockIdx.x + jj * gridDim.x, slot_, xs);
            __syncthreads();  // the slot is read: it may be written again
            if (threadIdx.x == 0) top_up(consumed + 1);
            if (++slot_ == l_.slots) {
                slot_ = 0;
                phase_ ^= 1u;
            }
        }
    }
    // A ring stage on what the grid made before: once counter `after` says it is all there, n
    // floats at `from` into xs, ring stage r on them, and the block leaves through `done`.
    __device__ void streamed(Counter after, int r, float* xs, const float* from, int64_t n, Counter done) {
        wait_for(after);
        mark();
        load(xs, from, n);
        if (r == rDown) load(f32(l_.lay.weights), a_->out.weights, a_->k);  // the combine's
        __syncthreads();
        run(r, xs);
        leave(done);
    }

    template <typename T>
    __device__ T* at(uint32_t off) const {
        return reinterpret_cast<T*>(sm_ + off);
    }
    __device__ float* f32(uint32_t off) const { return at<float>(off); }

private:
    __device__ uint32_t bar(int slot) const { return mbar::address(sm_ + l_.lay.bars) + 8u * slot; }
    __device__ int32_t* info() const { return reinterpret_cast<int32_t*>(sm_ + l_.lay.info); }
    __device__ const unsigned char* slot_at(int slot) const { return sm_ + static_cast<size_t>(slot) * sp::kSlotBytes; }

    __device__ RouteCache& route_cache() const { return *reinterpret_cast<RouteCache*>(sm_ + l_.lay.issue); }
    // Thread 0, once layer a's routing is published: its slots' experts and rows for issue().
    __device__ void cache_routing(const StreamArgs& a) {
        RouteCache& c = route_cache();
        int32_t present = 0;
        for (int64_t i = 0; i < a.k; ++i) {
            const int32_t e = __ldcg(a.out.experts + i);
            const bool off = a.dropped && a.dropped[e];
            c.expert[i] = off ? -1 : e;
            c.gate[i] = off ? nullptr : a.gate[e];
            c.up[i] = off ? nullptr : a.up[e];
            c.down[i] = off ? nullptr : a.down[e];
            if (!off) present |= 1 << i;
        }
        c.present = present;
    }

    // Tile t of ring stage r: its part (j, p) and span.
    struct Tile {
        int j;
        const sp::Part* p;
        sp::Span s;
    };
    __device__ static Tile tile(const StreamArgs& a, int r, int64_t t) {
        Tile tl{};
        int64_t local = 0;
        sp::prepared_locate(a.plan[r], t, tl.j, local);
        tl.p = &a.plan[r].part[tl.j];
        tl.s = sp::prepared_span(*tl.p, local);
        return tl;
    }

    // Asks for tile t of layer a's ring stage r into `slot`: its bytes counted on the slot's barrier.
    __device__ void issue(const StreamArgs& a, int r, int64_t t, int slot) {
        const Tile tl = tile(a, r, t);
        const int j = tl.j;
        const sp::Part& p = *tl.p;
        const sp::Span s = tl.s;
        const int64_t rb = p.row_bytes;
        // The tile's copies (source, bytes, offset in the slot), each given to fn.
        const RouteCache& rc = route_cache();  // a routed stage's (cache_routing)
        auto copies = [&](auto&& fn) {
            auto row = [](const void* w, int64_t at) { return static_cast<const char*>(w) + at; };
            if (r == rGateUp) {
                if (rc.expert[s.slot] < 0) return;
                fn(row(rc.gate[s.slot], s.first * rb), s.count * rb, 0);
                fn(row(rc.up[s.slot], s.first * rb), s.count * rb, s.count * rb);
            } else if (r == rDown) {
                for (int64_t i = 0; i < a.k; ++i)
                    if (rc.present >> i & 1) fn(row(rc.down[i], s.first * rb), rb, i * rb);
            } else if (p.kind == sp::Kind::pairs) {
                const int64_t o = s.first / p.half * 2 * p.half + s.first % p.half;
                fn(row(a.parts[r].w[j], o * rb), s.count * rb, 0);
                fn(row(a.parts[r].w[j], (o + p.half) * rb), s.count * rb, s.count * rb);
            } else {
                fn(row(a.parts[r].w[j], s.first * rb), s.count * rb, 0);
                if (p.kind == sp::Kind::gated) fn(row(a.parts[r].w2[j], s.first * rb), s.count * rb, s.count * rb);
            }
        };
        // What the warps need besides the rows: a routed tile's expert (-1: dropped), a combine
        // tile's slots present (bit i: slot i).
        if (r == rGateUp)
            info()[slot] = rc.expert[s.slot];
        else if (r == rDown)
            info()[slot] = rc.present;
        uint32_t total = 0;
        copies([&](const char*, int64_t bytes, int64_t) { total += static_cast<uint32_t>(bytes); });
        mbar::fence_async_shared();
        const uint32_t b = bar(slot), dst = mbar::address(slot_at(slot));
        mbar::arrive_expect(b, total);
        copies([&](const char* from, int64_t bytes, int64_t at) {
            mbar::bulk_copy(dst + static_cast<uint32_t>(at), from, static_cast<uint32_t>(bytes), b);
        });
    }

    // Tile t of ring stage r, its weights in `slot`, input xs: as the launches compute its rows.
    // What a row's result is added to or rotated with is asked for from global memory before the
    // products, so that its latency passes while they are made.
    __device__ void compute(int r, int64_t t, int slot, const float* xs) {
        const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
        const StreamArgs& a = *a_;
        const Tile tl = tile(a, r, t);
        const int j = tl.j;
        const sp::Part& p = *tl.p;
        const sp::Span s = tl.s;
        const int64_t rb = p.row_bytes, in = a.in[r];
        const unsigned char* base = slot_at(slot);
        float* exch = f32(l_.lay.exch);
        if (r == rDown) {
            const int32_t present = info()[slot];
            const int64_t i = s.first;
            float acc = 0.0f, xi = 0.0f;
            if (threadIdx.x == 0) {
                acc = a.shared_y ? __ldcg(a.shared_y + i) : 0.0f;
                xi = __ldcg(a.x + i);
            }
            if (warp < a.k && (present >> warp & 1))
                exch[warp] = smem_dot(base + warp * rb, a.et, xs + warp * a.F, a.F, lane);
            __syncthreads();
            if (threadIdx.x == 0) {
                const float* weights = f32(l_.lay.weights);
                for (int64_t e = 0; e < a.k; ++e)
                    if (present >> e & 1) acc = __fadd_rn(acc, __fmul_rn(weights[e], exch[e]));
                a.x[i] = __fadd_rn(xi, acc);
            }
            return;
        }
        const int64_t c = s.count;
        const bool routed = r == rGateUp;
        const Parts& ps = a.parts[routed ? 0 : r];
        // The output of this lane's row (plain) or item (the others: warp 0), and what it adds to
        // (accumulate) or rotates with (pairs).
        float* y = nullptr;
        float old = 0.0f, cs = 0.0f, sn = 0.0f;
        const bool writes = p.kind == sp::Kind::plain ? warp < c && lane == 0 : warp == 0 && lane < c;
        if (writes && !routed) {
            const int64_t item = s.first + (p.kind == sp::Kind::plain ? warp : lane);
            const int64_t row0 = ps.row0[j] ? *ps.row0[j] : 0;
            if (p.kind == sp::Kind::pairs) {
                const int64_t half = p.half;
                y = ps.y[j] + row0 * ps.ldy[j] + item / half * 2 * half + item % half;
                cs = ps.cos[j][item % half];
                sn = ps.sin[j][item % half];
            } else {
                y = ps.y[j] + row0 * ps.ldy[j] + item;
                if (ps.accumulate[j]) old = __ldcg(y);
            }
        }
        if (p.kind == sp::Kind::plain) {
            if (warp < c) {
                const float v = smem_dot(base + warp * rb, ps.type[j], xs, in, lane);
                if (writes) *y = ps.accumulate[j] ? __fadd_rn(old, v) : v;
            }
            return;
        }
        // Two rows an item (pairs, gated, routed): warp w < c the first of item w, warp c + w its second.
        const bool off = routed && info()[slot] < 0;
        const WType type = routed ? a.et : ps.type[j];
        if (!off && warp < 2 * c) exch[warp] = smem_dot(base + warp * rb, type, xs, in, lane);
        __syncthreads();
        if (off || !writes) return;
        const float x1 = exch[lane], x2 = exch[c + lane];
        if (routed) {
            a.eh[s.slot * a.F + s.first + lane] = silu_mul_rn(x1, x2);
        } else if (p.kind == sp::Kind::pairs) {
            y[0] = __fsub_rn(__fmul_rn(x1, cs), __fmul_rn(x2, sn));
            y[p.half] = __fadd_rn(__fmul_rn(x2, cs), __fmul_rn(x1, sn));
        } else {
            const float v = silu_mul_rn(x1, x2);
            *y = ps.accumulate[j] ? __fadd_rn(old, v) : v;
        }
    }

    const Launch& l_;
    unsigned char* sm_;
    const StreamArgs* a_;  // the current layer's arguments (shared memory)
    Issuer is_;
    int64_t consumed_ = 0;  // the block's tiles computed
    int slot_ = 0;          // the slot of the next (consumed_ mod the ring's slots)
    uint32_t phase_ = 0;    // its barrier's phase (the parity of consumed_ / slots)
    int stamp_ = 0;
};

// The block's share of each stage of its current layer (inlined: the block's state stays in
// registers, its shared memory addressed as such).
__device__ __forceinline__ void stream_layer(Block& blk, const Launch& l) {
    const StreamArgs& a = blk.args();
    float* xa = blk.f32(l.lay.xa);
    float* xb = blk.f32(l.lay.xb);
    blk.mark();

    // 1. RMSNorm, q, k, v (q and k rotated; k and v into the cache).
    blk.load_normed(xa, a.attn_norm, nullptr);
    blk.run(rQkv, xa);
    blk.leave(kQkvDone);

    // 2. Attention's splits, a warp an item.
    blk.wait_for(kQkvDone);
    blk.mark();
    const int64_t pos0 = a.d_pos ? *a.d_pos : a.pos0;
    const int64_t items = a.nh * decode_attn::kSplits, warps = static_cast<int64_t>(gridDim.x) * kWarps;
    for (int64_t item = blockIdx.x * kWarps + threadIdx.x / 32; item < items; item += warps)
        decode_attn::split_item_warp(a.q, a.kc, a.vc, a.nh, a.nkv, a.hd, pos0, item / decode_attn::kSplits,
                                     item % decode_attn::kSplits, a.scale, a.partials);
    blk.leave(kAttnDone);

    // 3. Their merge: items (head, 32 dimensions).
    blk.wait_for(kAttnDone);
    blk.mark();
    const int64_t chunks = (a.hd + 31) / 32;
    auto& merge = *blk.at<decode_attn::MergeShared>(l.lay.merge);
    for (int64_t item = blockIdx.x; item < a.nh * chunks; item += gridDim.x) {
        decode_attn::merge_item<true>(a.partials, a.hd, a.attn, item / chunks, item % chunks, blk.f32(l.lay.scratch),
                                      merge);
        __syncthreads();
    }
    blk.leave(kMergeDone);

    // 4. The output projection added to the residual.
    blk.streamed(kMergeDone, rO, xa, a.attn, a.nh * a.hd, kODone);

    // 5. RMSNorm, the router and the shared experts' gated product (or the dense MLP's). The
    // last block to leave routes the token.
    blk.wait_for(kODone);
    blk.mark();
    blk.load_normed(xa, a.ffn_norm, a.normed);
    blk.run(rFfn, xa);
    const unsigned before = blk.leave(kFfnDone);
    if (a.moe) {
        int* last = blk.at<int>(l.lay.flag);
        if (threadIdx.x == 0) *last = before + 1 == gridDim.x;
        __syncthreads();
        if (*last && threadIdx.x < 32) {
            // The selection first, flagged at once (the other blocks wait for it to ask for the
            // experts' rows); then the token's entropy, mass and margin from the weights and
            // ranking it left in shared memory.
            float* scratch = blk.f32(l.lay.route);
            route_warp::token(a.logits, 0, a.route, scratch, a.out.experts, a.out.weights, nullptr, nullptr, nullptr,
                              false);
            __syncwarp();
            if (threadIdx.x == 0) blk.publish(kRoute);
            route_warp::stats_of(a.route, scratch, 0, a.out.entropy, a.out.mass, a.out.margin);
        }
    }

    // 6. The down product of the ffn stage's gated product: the shared experts' into shared_y, or
    // the dense MLP's added to the residual.
    blk.streamed(kFfnDone, rDown1, xb, a.ffn_h, a.ffn_width, kDown1Done);

    if (a.moe) {
        // 7. The routed experts' gate and up (on the normed input still in xa), once thread 0 has
        // seen the routing.
        blk.mark();
        blk.run(rGateUp, xa);
        blk.leave(kGateUpDone);
        // 8. Their down products, with the shared experts' and the weighted combine, added to the
        // residual.
        blk.streamed(kGateUpDone, rDown, xb, a.eh, a.k * a.F, kDownDone);
    }
}

// One block a multiprocessor, all resident (a cooperative launch), kThreads threads; the
// launch's layers one after another.
// (Compiled for every architecture; its bulk copies and byte-counting barriers trap before 9.0,
// where decode_stream_plan keeps it from running.)
__global__ void __launch_bounds__(kThreads, 1) decode_stream_kernel(const __grid_constant__ Launch l) {
    extern __shared__ __align__(128) unsigned char sm[];
    Block blk(l, sm);
    if (threadIdx.x == 0) {
        const uint32_t bars = mbar::address(sm + l.lay.bars);
        for (int s = 0; s < l.slots; ++s) mbar::init(bars + 8u * s, 1);
        mbar::init_fence();
    }
    __syncthreads();
    if (threadIdx.x == 0) blk.top_up(0);
    for (int li = 0; li < l.n; ++li) {
        blk.enter(li);
        stream_layer(blk, l);
    }
    const StreamArgs& a = blk.args();
    if (a.stamps && blockIdx.x == 0 && threadIdx.x == 0) {  // the end: every block's last stage done
        Patience patience;
        while (Ordered::load_relaxed(a.sync + last_stage(a)) < gridDim.x) {
            __nanosleep(32);
            patience.check();
        }
        Ordered::acquire();
        blk.mark();
    }
    // The last block out sets the counters of every layer back for the next launch.
    const unsigned out = blk.leave(kExit);
    if (threadIdx.x == 0 && out + 1 == gridDim.x)
        for (int i = 0; i < l.n; ++i)
            for (int c = 0; c <= kExit; ++c) l.layers[i].sync[c] = 0;
}

}  // namespace

// Its static shared memory (block_rms_scale's), asked once.
size_t static_shared() {
    static const size_t n = [] {
        cudaFuncAttributes attr{};
        if (cudaFuncGetAttributes(&attr, decode_stream_kernel) != cudaSuccess) {
            (void)cudaGetLastError();
            return size_t(0);
        }
        return attr.sharedSizeBytes;
    }();
    return n;
}

namespace {

// Launches layers [0, n) of the device table `on_device`, planned as `planned` [n] on the host.
void launch_layers(const StreamArgs* planned, const StreamArgs* on_device, int n, cudaStream_t s) {
    Launch l{on_device, n, slots_for(planned, n), {}};
    if (l.slots == 0) {  // the widest of each piece leaves no room for a ring: a layer a launch
        for (int i = 0; i < n; ++i) launch_layers(planned + i, on_device + i, 1, s);
        return;
    }
    l.lay = layout_of(planned, n, l.slots);
    static std::once_flag shared_set;
    std::call_once(shared_set, [] {
        check(cudaFuncSetAttribute(decode_stream_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   max_shared_optin() - static_cast<int>(static_shared())),
              "the decode stream kernel's shared memory");
    });
    launch_cooperative(decode_stream_kernel, dim3(static_cast<unsigned>(multiprocessors())), dim3(kThreads),
                       static_cast<size_t>(l.lay.total), s, "launching the decode stream kernel", l);
    count(Counted::stream_launch);
    count(Counted::stream, n);
}

}  // namespace

}  // namespace stream_kernel

void decode_stream(const void* table, const void* device_table, int first, int n, cudaStream_t s) {
    if (n <= 0) return;
    stream_kernel::launch_layers(static_cast<const stream_kernel::StreamArgs*>(table) + first,
                                 static_cast<const stream_kernel::StreamArgs*>(device_table) + first, n, s);
}

}  // namespace moe::cuda::launch
