// The forward step of the DeepSeekMoE model on the device; see cuda_model.h. The step mirrors
// the CPU backend (engine/models/deepseek_moe.cpp, engine/cpu/moe_block.cpp) operation by
// operation: the same RMSNorm, rotary tables, router definition (engine/router_core.h),
// dispatch order and combine order; decode steps replayed from a CUDA graph.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/cuda/cuda_model_impl.h"
#include "engine/cuda/decode_kernels.h"
#include "engine/cuda/device.h"
#include "engine/cuda/launch_after.h"
#include "engine/error.h"
#include "engine/expert_streams.h"

namespace moe::cuda::detail {

bool CudaDeepseekMoe::adjacent(const Ffn& f) {
    return f.gate.type == f.up.type && f.gate.out == f.up.out && f.gate.in == f.up.in &&
           static_cast<const char*>(f.up.w) ==
               static_cast<const char*>(f.gate.w) + static_cast<size_t>(f.gate.out * f.gate.in) * dtype_size(f.gate.type);
}

bool CudaDeepseekMoe::rounds_once(const Ffn& f) {
    const bool sixteen = f.gate.type == DType::bf16 || f.gate.type == DType::f16;
    return sixteen && f.up.type == f.gate.type && f.gate.out == f.up.out;
}

bool CudaDeepseekMoe::shared_runs(const MoeLayer& m, int64_t layer, const ForwardOptions& opt) {
    const LayerIntervention* li = opt.mask ? opt.mask->layer(layer) : nullptr;
    return m.has_shared && !(li && li->shared_off);
}

void CudaDeepseekMoe::gate_up_rounded(launch::Blas& blas, const Ffn& f, const uint16_t* hi, const uint16_t* lo, int64_t n,
                                      float* y) {
    const int64_t F = f.gate.out, in = f.gate.in;
    if (adjacent(f)) {
        blas.linear_rounded(hi, lo, n, in, f.gate.w, f.gate.type, 2 * F, y, 2 * F);
    } else {
        blas.linear_rounded(hi, lo, n, in, f.gate.w, f.gate.type, F, y, 2 * F);
        blas.linear_rounded(hi, lo, n, in, f.up.w, f.up.type, F, y + F, 2 * F);
    }
}

bool CudaDeepseekMoe::uniform_experts(const MoeLayer& m) {
    if (m.experts.empty()) return false;
    const Ffn& f0 = m.experts.front();
    return std::all_of(m.experts.begin(), m.experts.end(), [&](const Ffn& f) {
        return f.gate.out == f0.gate.out && f.gate.in == f0.gate.in && f.down.in == f0.down.in &&
               f.down.out == f0.down.out && rounds_once(f) && f.gate.type == f0.gate.type &&
               f.down.type == f0.gate.type;
    });
}

bool CudaDeepseekMoe::grouped(const MoeLayer& m) const {
    if (!launch::grouped_expert_products(blas_->split_activations()) || !uniform_experts(m)) return false;
    const Ffn& f0 = m.experts.front();
    const auto E = static_cast<int64_t>(m.experts.size());
    if (!launch::expert_products_fit(m.expert_type, f0.gate.in, f0.gate.out, E) ||
        !launch::expert_products_fit(m.expert_type, f0.down.in, f0.down.out, E))
        return false;
    return experts_aligned(m);
}

bool CudaDeepseekMoe::experts_aligned(const MoeLayer& m) {
    return std::all_of(m.experts.begin(), m.experts.end(),
                       [](const Ffn& f) { return aligned16(f.gate.w) && aligned16(f.up.w) && aligned16(f.down.w); });
}

// The batched products' pointer tables live on the device, where cuBLAS cannot check them:
// every matrix they name starts on 16 bytes (the weights, and rows of widths that are
// multiples of 8).
bool CudaDeepseekMoe::batched(const MoeLayer& m) {
    if (!launch::batched_expert_products() || !uniform_experts(m)) return false;
    const Ffn& f0 = m.experts.front();
    return f0.gate.in % 8 == 0 && f0.gate.out % 8 == 0 && experts_aligned(m);
}

bool CudaDeepseekMoe::all_adjacent(const MoeLayer& m) {
    return std::all_of(m.experts.begin(), m.experts.end(), [](const Ffn& f) { return adjacent(f); });
}

void CudaDeepseekMoe::on_side_streams(const std::vector<std::pair<int64_t, int>>& jobs,
                                      const std::function<void(int64_t, launch::Blas&)>& fn) const {
    if (side_.empty()) {
        for (const auto& job : jobs) fn(job.first, *blas_);
        return;
    }
    check(cudaEventRecord(fork_, stream_), "forking the expert streams");
    for (const SideStream& sd : side_) check(cudaStreamWaitEvent(sd.stream, fork_, 0), "forking the expert streams");
    for (const auto& [i, j] : jobs) fn(i, *side_[static_cast<size_t>(j)].blas);
    for (const SideStream& sd : side_) {
        check(cudaEventRecord(sd.done, sd.stream), "joining the expert streams");
        check(cudaStreamWaitEvent(stream_, sd.done, 0), "joining the expert streams");
    }
}

void CudaDeepseekMoe::for_experts(const std::function<void(int64_t, launch::Blas&)>& fn) const {
    const auto E = static_cast<int64_t>(offsets_host_.size()) - 1;
    std::vector<std::pair<int64_t, int>> jobs =
        dispatch::spread_experts(offsets_host_.data(), E, static_cast<int>(side_.size()));
    // On one stream, in expert order.
    if (side_.empty()) std::sort(jobs.begin(), jobs.end());
    on_side_streams(jobs, fn);
}

void CudaDeepseekMoe::for_batches(
    const dispatch::BatchPlan& plan,
    const std::function<void(const dispatch::ExpertBatch&, int64_t, launch::Blas&)>& fn) const {
    std::vector<int64_t> first(plan.batches.size() + 1, 0), work;
    for (size_t b = 0; b < plan.batches.size(); ++b) {
        const dispatch::ExpertBatch& batch = plan.batches[b];
        first[b + 1] = first[b] + static_cast<int64_t>(batch.experts.size());
        work.push_back(batch.rows * static_cast<int64_t>(batch.experts.size()));
    }
    on_side_streams(dispatch::spread_work(work, static_cast<int>(side_.size())), [&](int64_t b, launch::Blas& blas) {
        fn(plan.batches[static_cast<size_t>(b)], first[static_cast<size_t>(b)], blas);
    });
}

void CudaDeepseekMoe::batch_tables(const MoeLayer& m, const dispatch::BatchPlan& plan, const uint16_t* hi,
                                   const uint16_t* lo, const Step& s) const {
    const auto E = static_cast<int64_t>(m.experts.size());
    const int64_t H = m.experts.front().gate.in, F = m.experts.front().gate.out;
    const bool stacked = stacked_parts_ && lo;
    // The padded layout, then the tables, in the pinned buffer: written again only after the next
    // layer's offsets have come back, when these copies are long done.
    auto* padded = static_cast<int64_t*>(plan_pinned_.get());
    std::copy(plan.padded.begin(), plan.padded.end(), padded);
    check(cudaMemcpyAsync(s.padded, padded, plan.padded.size() * sizeof(int64_t), cudaMemcpyHostToDevice, stream_),
          "copying the padded layout");
    auto* tables = reinterpret_cast<const void**>(padded + E + 1);
    std::fill(tables, tables + kBatchTables * E, nullptr);
    int64_t i = 0;
    for (const dispatch::ExpertBatch& b : plan.batches)
        for (const int64_t e : b.experts) {
            const Ffn& f = m.experts[static_cast<size_t>(e)];
            const int64_t p = plan.padded[static_cast<size_t>(e)];
            // The segment's first row: of the padded layout, or of the stacked one (twice as long).
            const int64_t q = stacked ? 2 * p : p;
            auto set = [&](BatchTable t, const void* v) { tables[t * E + i] = v; };
            set(kGateW, f.gate.w);
            set(kUpW, f.up.w);
            set(kDownW, f.down.w);
            set(kXHi, hi + q * H);
            set(kXLo, lo && !stacked ? lo + p * H : nullptr);
            set(kHHi, hi + q * F);
            set(kHLo, lo && !stacked ? lo + p * F : nullptr);
            set(kGateY, s.eg + q * 2 * F);
            set(kUpY, s.eg + q * 2 * F + F);
            set(kDownY, s.results + q * m.experts.front().down.out);
            ++i;
        }
    check(cudaMemcpyAsync(s.tables, tables, static_cast<size_t>(kBatchTables * E) * sizeof(void*),
                          cudaMemcpyHostToDevice, stream_),
          "copying the batched products' pointers");
}

void CudaDeepseekMoe::ffn(const Ffn& f, const float* x, int64_t T, float* out, const Step& s) const {
    const int64_t W = f.gate.out;
    if (T > kGemvTokens && rounds_once(f)) {
        // x rounded once for both products, gate and up made as one when they lie side by side.
        auto* hi = static_cast<uint16_t*>(s.lowp);
        uint16_t* lo = blas_->split_activations() ? hi + T * f.gate.in : nullptr;
        launch::round_split(x, T * f.gate.in, f.gate.type, hi, lo, stream_);
        gate_up_rounded(*blas_, f, hi, lo, T, s.ffn_g);
        if (f.down.type == f.gate.type) {
            // The hidden rows rounded as they are made, for the down product.
            lo = blas_->split_activations() ? hi + T * W : nullptr;
            launch::silu_mul_round(s.ffn_g, T, W, f.down.type, hi, lo, stream_);
            blas_->linear_rounded(hi, lo, T, W, f.down.w, f.down.type, f.down.out, out, f.down.out);
            return;
        }
        launch::silu_mul_pairs(s.ffn_g, T, W, s.ffn_h, stream_);
        linear(f.down, s.ffn_h, T, out, f.down.out, s);
        return;
    }
    linear(f.gate, x, T, s.ffn_g, W, s);
    linear(f.up, x, T, s.ffn_u, W, s);
    launch::silu_mul(s.ffn_g, s.ffn_u, T * W, s.ffn_h, stream_);
    linear(f.down, s.ffn_h, T, out, f.down.out, s);
}

CudaDeepseekMoe::Routed CudaDeepseekMoe::plan_route(const MoeLayer& m, int64_t layer, int64_t T,
                                                    const ForwardOptions& opt, const Step& s,
                                                    const launch::RouteOutputs& routed, router_core::Args& args,
                                                    const uint64_t*& keys) const {
    const ModelConfig& c = config_;
    const int64_t E = c.n_routed_experts;
    const LayerIntervention* li = opt.mask ? opt.mask->layer(layer) : nullptr;
    const MaskMode mode = opt.mask ? opt.mask->mode() : MaskMode::reroute;
    const bool reroute = li && mode == MaskMode::reroute && li->n_disabled > 0;
    const bool drop = li && mode == MaskMode::drop && li->n_disabled > 0;
    const uint8_t* layer_disabled = disabled_ + m.index * E;
    Routed r;
    r.k = li ? li->k : c.num_experts_per_tok;
    r.dropped = drop ? layer_disabled : nullptr;
    RouterParams rp;
    rp.n_expert = E;
    rp.k = r.k;
    rp.norm_topk_prob = c.norm_topk_prob;
    rp.excluded = reroute ? layer_disabled : nullptr;
    rp.skip_top = li ? li->skip_top : 0;
    rp.skip_random = li ? li->skip_random : 0;
    rp.scoring = c.scoring_func;
    rp.method = c.topk_method;
    rp.n_group = c.n_group;
    rp.topk_group = c.topk_group;
    rp.routed_scaling_factor = static_cast<float>(c.routed_scaling_factor);
    keys = rp.skip_random > 0 ? s.keys + m.index * T : nullptr;
    args = launch::router_args(rp);
    // Observed: the router writes straight into this layer's part of the routing buffer.
    r.out = routed;
    if (opt.observer && routing_) r.out = routing_->slot(layer);
    return r;
}

CudaDeepseekMoe::Routed CudaDeepseekMoe::route_layer(const MoeLayer& m, int64_t layer, int64_t T,
                                                     const ForwardOptions& opt, const Step& s,
                                                     const launch::RouteOutputs& routed) const {
    router_core::Args args;
    const uint64_t* keys = nullptr;
    const Routed r = plan_route(m, layer, T, opt, s, routed, args, keys);
    launch::route(s.router_logits, T, args, keys, s.route_scratch, r.out, stream_);
    if (opt.observer) record_routing(layer, opt, r.out);
    return r;
}

void CudaDeepseekMoe::feed_forward(const Layer& L, int64_t layer, int64_t T, const ForwardOptions& opt, const Step& s,
                                   const launch::RouteOutputs& routed) const {
    const ModelConfig& c = config_;
    const int64_t H = c.hidden_size;
    if (!L.is_moe) {
        ffn(L.mlp, s.normed, T, s.branch, s);
        return;
    }
    const MoeLayer& m = L.moe;
    const int64_t E = c.n_routed_experts, F = c.moe_intermediate_size;

    // 1. Router logits in f32 (the router weights widened, as the CPU computes them), routing.
    linear(Linear{m.router, DType::f32, E, H}, s.normed, T, s.router_logits, E, s);
    const Routed r = route_layer(m, layer, T, opt, s, routed);
    stage("router+route");
    const launch::RouteOutputs& routed_here = r.out;
    const int64_t k = r.k;

    // 2. A large step's dispatch. The grouped launches (one a product for all experts) read the
    //    experts' counts on the device, sized for the most rows and tiles the step can have: the
    //    host enqueues them without waiting for the routing. For the others the offsets go to
    //    the host (pinned memory) while the device runs the shared experts, so that the host
    //    enqueues the routed experts' products before the device runs out of work.
    const uint8_t* dropped = r.dropped;
    const int64_t n_slots = T * k;
    const bool batched_here = batched(m);
    const bool counts_on_device = n_slots > kSmallStep && !batched_here && grouped(m);
    if (n_slots > kSmallStep) {
        launch::dispatch(routed_here.experts, n_slots, dropped, E, s.counts, s.offsets, s.rows, s.row_slot, stream_);
        if (!counts_on_device) {
            check(cudaMemcpyAsync(offsets_pinned_.get(), s.offsets, static_cast<size_t>(E + 1) * sizeof(int64_t),
                                  cudaMemcpyDeviceToHost, stream_),
                  "reading the expert offsets");
            check(cudaEventRecord(offsets_ready_, stream_), "reading the expert offsets");
        }
    }

    // 3. The shared experts, the combine's base.
    const bool shared_on = shared_runs(m, layer, opt);
    if (shared_on) ffn(m.shared, s.normed, T, s.base, s);
    stage(n_slots > kSmallStep ? "dispatch+shared" : "shared experts");

    // 4. The routed experts.
    const int64_t* rows_lo = nullptr;  // with stacked parts: each slot's lo part's row
    if (n_slots <= kSmallStep) {
        launch::expert_gate_up(s.normed, T, H, k, routed_here.experts, dropped, m.gate_table, m.up_table, m.expert_type, F, s.eh,
                               stream_);
        launch::expert_down(s.eh, n_slots, F, routed_here.experts, dropped, m.down_table, m.expert_type, H, s.results, stream_);
        launch::slot_rows(routed_here.experts, dropped, n_slots, s.rows, stream_);
    } else {
        if (!counts_on_device) {
            check(cudaEventSynchronize(offsets_ready_), "reading the expert offsets");
            const auto* offsets = static_cast<const int64_t*>(offsets_pinned_.get());
            offsets_host_.assign(offsets, offsets + E + 1);
        }
        // The rows routed (fewer than the slots where a mask drops some); with the counts on
        // the device, the slots: the launches past the rows routed find nothing to do or
        // compute rows nothing reads.
        const int64_t n_rows = counts_on_device ? n_slots : offsets_host_[static_cast<size_t>(E)];
        // The experts' rows rounded to 16-bit parts (hi, and lo with exact activations), room
        // for every row of the step each: the gathered rows, then the hidden rows.
        auto* hi = static_cast<uint16_t*>(s.lowp);
        uint16_t* lo = blas_->split_activations() ? hi + expert_rows_capacity(n_slots, E) * std::max(H, F) : nullptr;
        auto rows_of = [&](int64_t e) {
            const int64_t r0 = offsets_host_[static_cast<size_t>(e)];
            return std::pair<int64_t, int64_t>(r0, offsets_host_[static_cast<size_t>(e + 1)] - r0);
        };
        if (batched_here) {
            // Each expert's rows padded to a multiple of expert_row_pad() (rows of zeros after them);
            // the experts of one padded count in one cuBLAS batched product, gate and up, then
            // down. The slots' rows move to the padded layout for the combine.
            // With stacked parts (exact activations), each expert's hi and lo parts are the rows of
            // one product, twice the segment's rows (dispatch::stacked_hi), summed after it.
            const dispatch::BatchPlan plan = dispatch::plan_batches(offsets_host_.data(), E, launch::expert_row_pad());
            const int64_t n_pad = plan.padded.back();
            const bool stacked = stacked_parts_ && lo;
            if (stacked) rows_lo = s.rows_lo;
            batch_tables(m, plan, hi, lo, s);  // s.padded and s.tables
            launch::pad_rows(routed_here.experts, n_slots, s.offsets, s.padded, s.rows, stacked ? s.rows_lo : nullptr, stream_);
            launch::gather_padded_rounded(s.normed, H, k, s.row_slot, s.offsets, s.padded, E, n_pad, m.expert_type, hi,
                                          lo, stream_, stacked);
            const bool one = all_adjacent(m);
            auto table = [&](BatchTable t, int64_t first) { return s.tables + t * E + first; };
            auto outputs = [&](BatchTable t, int64_t first) {
                return reinterpret_cast<float* const*>(table(t, first));
            };
            const int64_t per_row = stacked ? 2 : 1;  // rows of a product per padded row
            const bool add_lo = lo && !stacked;       // a second product for the lo parts
            for_batches(plan, [&](const dispatch::ExpertBatch& b, int64_t i, launch::Blas& blas) {
                const auto n = static_cast<int64_t>(b.experts.size());
                const void* const* x_lo = add_lo ? table(kXLo, i) : nullptr;
                if (one) {
                    blas.linear_rounded_batched(table(kXHi, i), x_lo, per_row * b.rows, H, table(kGateW, i),
                                                m.expert_type, 2 * F, outputs(kGateY, i), 2 * F, n);
                } else {
                    blas.linear_rounded_batched(table(kXHi, i), x_lo, per_row * b.rows, H, table(kGateW, i),
                                                m.expert_type, F, outputs(kGateY, i), 2 * F, n);
                    blas.linear_rounded_batched(table(kXHi, i), x_lo, per_row * b.rows, H, table(kUpW, i),
                                                m.expert_type, F, outputs(kUpY, i), 2 * F, n);
                }
            });
            if (stacked)
                launch::silu_mul_round_stacked(s.eg, s.padded, E, n_pad, F, m.expert_type, hi, stream_);
            else
                launch::silu_mul_round(s.eg, n_pad, F, m.expert_type, hi, lo, stream_);
            stage("experts gate+up");
            for_batches(plan, [&](const dispatch::ExpertBatch& b, int64_t i, launch::Blas& blas) {
                blas.linear_rounded_batched(table(kHHi, i), add_lo ? table(kHLo, i) : nullptr, per_row * b.rows, F,
                                            table(kDownW, i), m.expert_type, H, outputs(kDownY, i), H,
                                            static_cast<int64_t>(b.experts.size()));
            });
        } else if (counts_on_device) {
            // All experts in one launch per product: gate and up (one product of 2F outputs when
            // they lie side by side), then down; on a grid of the most tiles the step can have.
            const int64_t tiles = launch::max_expert_row_tiles(n_slots, E);
            launch::gather_rows_rounded(s.normed, H, k, s.row_slot, s.offsets + E, n_rows, m.expert_type, hi, lo,
                                        stream_);
            // (On the Hopper kernel where the weights have tensor maps: m.gate_maps.)
            auto maps = [&](const void* w) { return launch::ExpertMaps{w, n_rows}; };
            if (all_adjacent(m)) {
                launch::expert_products(hi, lo, H, m.gate_table, m.expert_type, 2 * F, s.offsets, E, tiles, s.eg, 2 * F,
                                        stream_, maps(m.gate_maps));
            } else {
                launch::expert_products(hi, lo, H, m.gate_table, m.expert_type, F, s.offsets, E, tiles, s.eg, 2 * F,
                                        stream_, maps(m.gate_maps));
                launch::expert_products(hi, lo, H, m.up_table, m.expert_type, F, s.offsets, E, tiles, s.eg + F, 2 * F,
                                        stream_, maps(m.up_maps));
            }
            launch::silu_mul_round(s.eg, n_rows, F, m.expert_type, hi, lo, stream_);
            stage("experts gate+up");
            launch::expert_products(hi, lo, F, m.down_table, m.expert_type, H, s.offsets, E, tiles, s.results, H,
                                    stream_, maps(m.down_maps));
        } else if (rounds_once(m.experts.front())) {
            // The gathered rows rounded once for all experts; each expert's gate and up as one
            // product; the hidden rows rounded once for the down products.
            launch::gather_rows_rounded(s.normed, H, k, s.row_slot, s.offsets + E, n_rows, m.expert_type, hi, lo,
                                        stream_);
            for_experts([&](int64_t e, launch::Blas& blas) {
                const auto [r0, n] = rows_of(e);
                gate_up_rounded(blas, m.experts[static_cast<size_t>(e)], hi + r0 * H, lo ? lo + r0 * H : nullptr, n, s.eg + r0 * 2 * F);
            });
            launch::silu_mul_round(s.eg, n_rows, F, m.expert_type, hi, lo, stream_);
            stage("experts gate+up");
            for_experts([&](int64_t e, launch::Blas& blas) {
                const auto [r0, n] = rows_of(e);
                const Linear& d = m.experts[static_cast<size_t>(e)].down;
                blas.linear_rounded(hi + r0 * F, lo ? lo + r0 * F : nullptr, n, F, d.w, d.type, H, s.results + r0 * H, H);
            });
        } else {
            launch::gather_rows(s.normed, H, k, s.row_slot, s.offsets + E, n_rows, s.gathered, stream_);
            for (int64_t e = 0; e < E; ++e) {
                const auto [r0, n] = rows_of(e);
                if (n == 0) continue;
                const Ffn& f = m.experts[static_cast<size_t>(e)];
                linear(f.gate, s.gathered + r0 * H, n, s.eg + r0 * F, F, s);
                linear(f.up, s.gathered + r0 * H, n, s.eu + r0 * F, F, s);
            }
            launch::silu_mul(s.eg, s.eu, n_rows * F, s.eh, stream_);
            stage("experts gate+up");
            for (int64_t e = 0; e < E; ++e) {
                const auto [r0, n] = rows_of(e);
                if (n) linear(m.experts[static_cast<size_t>(e)].down, s.eh + r0 * F, n, s.results + r0 * H, H, s);
            }
        }
    }
    // 5. out[t] = shared[t] + Σ_rank w · expert[t], in rank order.
    launch::combine_rows(s.results, H, T, k, s.rows, routed_here.weights, shared_on ? s.base : nullptr, s.branch, stream_,
                         rows_lo);
}

void CudaDeepseekMoe::record_routing(int64_t layer, const ForwardOptions& opt, const launch::RouteOutputs& routed) const {
    const ModelConfig& c = config_;
    const LayerIntervention* li = opt.mask ? opt.mask->layer(layer) : nullptr;
    const int64_t k = li ? li->k : c.num_experts_per_tok;
    routing_->record(layer, k, routed.experts, routed.weights, routed.entropy, routed.mass, routed.margin,
                     (c.norm_topk_prob && k > 1) ? GateWeightKind::renormalized : GateWeightKind::router_prob,
                     li && li->shared_off, static_cast<float>(c.routed_scaling_factor), stream_);
}

void CudaDeepseekMoe::enqueue_layers(int64_t T, int64_t pos0, const Step& s, const DeviceCache& dc,
                                     const ForwardOptions& opt, bool device_pos) const {
    const ModelConfig& c = config_;
    const int64_t H = c.hidden_size;
    const float eps = static_cast<float>(c.rms_norm_eps);
    const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads, hd = c.head_dim;
    const int64_t qdim = nh * hd, kvdim = nkv * hd;
    const launch::RouteOutputs routed{s.experts, s.weights, s.entropy, s.mass, s.margin};
    launch::embed(embed_, embed_type_, s.ids, T, H, s.x, stream_);
    stage("embed");
    const int64_t first = opt.all_logits ? 0 : T - 1, n_out = T - first;
    if (small_step(T, opt)) {
        if (stream_kernel_ && !layer_kernel_ && T == 1 && dc.type == KvType::f32 && fused_rope_)
            stream_layers(pos0, s, dc, opt, device_pos, routed);
        else
            for (int64_t i = 0; i < c.num_hidden_layers; ++i)
                small_layer(layers_[static_cast<size_t>(i)], i, T, pos0, s, dc, opt, device_pos, routed);
        const launch::GemvPart head = part(head_, s.logits, c.vocab_size);
        launch::fused_gemv(s.x + first * H, n_out, H, final_norm_, eps, nullptr, &head, 1, stream_);
        stage("norm+head");
        if (opt.observer && routing_) routing_->flush(stream_);
        return;
    }
    if (device_pos) throw Error(ErrorKind::failure, "a step at the device's position must be a small step");
    void* attn_scratch = attention_scratch(T, pos0);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const Layer& L = layers_[static_cast<size_t>(i)];
        // After the first layer, the previous layer's residual add made this norm (add_rms_norm).
        if (i == 0) launch::rms_norm(s.x, L.attn_norm, T, H, eps, s.normed, stream_);
        // q, k and v of 16-bit weights of one type on cuBLAS: the normed rows rounded once for
        // the three (what Blas::linear rounds for each).
        const bool once = T > kGemvTokens && L.q.type == L.k.type && L.q.type == L.v.type &&
                          (L.q.type == DType::bf16 || L.q.type == DType::f16);
        auto* hi = static_cast<uint16_t*>(s.lowp);
        uint16_t* lo = blas_->split_activations() ? hi + T * H : nullptr;
        if (once) launch::round_split(s.normed, T * H, L.q.type, hi, lo, stream_);
        auto project = [&](const Linear& l, float* y, int64_t ldy) {
            if (once)
                blas_->linear_rounded(hi, lo, T, l.in, l.w, l.type, l.out, y, ldy);
            else
                linear(l, s.normed, T, y, ldy, s);
        };
        project(L.q, s.q, qdim);
        // The rotary embedding of queries and keys in one launch (the decode step's kernels: the
        // same rotation, head by head).
        if (dc.type == KvType::bf16) {
            // The new keys and values in f32; the keys rotated, then both rounded into the cache.
            float* kn = s.kv_new;
            float* vn = s.kv_new + T * kvdim;
            project(L.k, kn, kvdim);
            project(L.v, vn, kvdim);
            launch::rope_store_kv(s.q, T, nh, qdim, kn, vn, kvdim, nkv, hd, s.rope_cos, s.rope_sin, dc.keys(i), dc.values(i),
                                  nullptr, pos0, stream_);
        } else {
            auto* kc = static_cast<float*>(dc.at(i, 0, pos0));
            project(L.k, kc, kvdim);  // straight into the cache
            project(L.v, static_cast<float*>(dc.at(i, 1, pos0)), kvdim);
            launch::rope_qk(s.q, T, nh, qdim, kc, nullptr, nkv, kvdim, hd, s.rope_cos, s.rope_sin, stream_);
        }
        stage("norm+qkv+rope");
        launch::attention(s.q, dc.keys(i), dc.values(i), T, nh, nkv, hd, pos0, s.attn, stream_, nullptr, 0,
                          attn_partials_, attention_math_, decode_attention_, dc.type, prefill_attention_,
                          attn_scratch);
        stage("attention");
        linear(L.o, s.attn, T, s.branch, H, s);
        launch::add_rms_norm(s.x, s.branch, L.ffn_norm, T, H, eps, s.normed, stream_);
        stage("o+residual+norm");
        feed_forward(L, i, T, opt, s, routed);
        if (i + 1 < c.num_hidden_layers)
            launch::add_rms_norm(s.x, s.branch, layers_[static_cast<size_t>(i + 1)].attn_norm, T, H, eps, s.normed, stream_);
        else
            launch::add(s.x, s.branch, T * H, stream_);
        stage(L.is_moe ? "experts+combine" : "dense mlp");
    }
    launch::rms_norm(s.x + first * H, final_norm_, n_out, H, eps, s.normed, stream_);
    linear(head_, s.normed, n_out, s.logits, c.vocab_size, s);
    stage("norm+head");
    if (opt.observer && routing_) routing_->flush(stream_);
}

// The step's host inputs: token ids, the rotary tables of its positions, and the per-token
// keys of skip-random (layer-major, [n_moe, T]) into `h`; whether any key was needed.
bool CudaDeepseekMoe::host_inputs(std::span<const int32_t> ids, int64_t pos0, const ForwardOptions& opt, HostInputs h) const {
    const int64_t T = static_cast<int64_t>(ids.size());
    const cpu::RopeTables rope = deepseek::mha_rope_tables(config_, pos0, T);
    std::memcpy(h.ids, ids.data(), ids.size() * sizeof(int32_t));
    std::memcpy(h.cos, rope.cos.data(), rope.cos.size() * sizeof(float));
    std::memcpy(h.sin, rope.sin.data(), rope.sin.size() * sizeof(float));
    *h.pos = pos0;
    bool any_random = false;
    for (size_t m = 0; opt.mask && m < moe_layers_.size(); ++m) {
        const LayerIntervention* li = opt.mask->layer(moe_layers_[m]);
        if (!li || li->skip_random <= 0) continue;
        any_random = true;
        for (int64_t t = 0; t < T; ++t)
            h.keys[m * static_cast<size_t>(T) + static_cast<size_t>(t)] =
                router_random_key(li->random_seed, moe_layers_[m], opt.random_stream, pos0 + t);
    }
    return any_random;
}

void CudaDeepseekMoe::copy_inputs(const HostInputs& h, int64_t T, const Step& s, bool keys) const {
    const auto t = static_cast<size_t>(T), half = static_cast<size_t>(config_.head_dim / 2);
    check(cudaMemcpyAsync(s.ids, h.ids, t * sizeof(int32_t), cudaMemcpyHostToDevice, stream_), "copying token ids");
    check(cudaMemcpyAsync(s.pos, h.pos, sizeof(int64_t), cudaMemcpyHostToDevice, stream_), "copying the position");
    check(cudaMemcpyAsync(s.rope_cos, h.cos, t * half * sizeof(float), cudaMemcpyHostToDevice, stream_), "copying rope tables");
    check(cudaMemcpyAsync(s.rope_sin, h.sin, t * half * sizeof(float), cudaMemcpyHostToDevice, stream_), "copying rope tables");
    if (keys)
        check(cudaMemcpyAsync(s.keys, h.keys, t * moe_layers_.size() * sizeof(uint64_t), cudaMemcpyHostToDevice, stream_),
              "copying router keys");
}

CudaDeepseekMoe::HostInputs CudaDeepseekMoe::carve_inputs(void* base, int64_t T, int64_t logit_rows) const {
    Carver pin(base);
    HostInputs h;
    h.ids = pin.take<int32_t>(static_cast<size_t>(T));
    h.pos = pin.take<int64_t>(1);
    h.cos = pin.take<float>(static_cast<size_t>(T * (config_.head_dim / 2)));
    h.sin = pin.take<float>(static_cast<size_t>(T * (config_.head_dim / 2)));
    h.keys = pin.take<uint64_t>(static_cast<size_t>(T) * std::max<size_t>(moe_layers_.size(), 1));
    h.logits = pin.take<float>(static_cast<size_t>(logit_rows * config_.vocab_size));
    h.targets = pin.take<int32_t>(static_cast<size_t>(T));
    h.scores = pin.take<launch::DeviceRowScore>(static_cast<size_t>(T));
    h.bytes = pin.used();
    return h;
}

void CudaDeepseekMoe::enqueue_step(std::span<const int32_t> ids, int64_t pos0, const DeviceCache& dc,
                                   const ForwardOptions& opt, const Step& s, const HostInputs& h) const {
    const auto T = static_cast<int64_t>(ids.size());
    const bool keys = host_inputs(ids, pos0, opt, h);
    stages_.begin(stream_, T);
    copy_inputs(h, T, s, keys);
    stage("inputs");
    if (opt.observer && routing_) routing_->begin(pos0, T, opt.source);
    enqueue_layers(T, pos0, s, dc, opt, false);
}

CudaDeepseekMoe::Step CudaDeepseekMoe::begin_step(int64_t T, KvCache& cache, const ForwardOptions& opt,
                                                  int64_t logit_rows, int64_t host_logit_rows, DeviceCache*& dc) const {
    check(cudaSetDevice(0), "selecting device 0");
    ensure_workspace(T, k_max(opt), logit_rows, host_logit_rows);
    upload_mask(opt.mask && !opt.mask->empty() ? opt.mask : nullptr);
    dc = &device_cache(cache, cache.length() + T);
    return carve(workspace_.get(), ws_tokens_, ws_k_, ws_logit_rows_, nullptr);
}

void CudaDeepseekMoe::finish_step(const ForwardOptions& opt, KvCache& cache, int64_t length, const char* what) const {
    check(cudaStreamSynchronize(stream_), what);
    stages_.end();
    if (opt.observer && routing_) routing_->deliver(*opt.observer);
    cache.set_length(length);
}

void CudaDeepseekMoe::forward(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
                              std::vector<float>& logits) const {
    const ModelConfig& c = config_;
    const int64_t T = static_cast<int64_t>(ids.size()), V = c.vocab_size;
    const int64_t pos0 = cache.length();
    std::lock_guard<std::mutex> lock(forward_mutex_);
    if (T == 0) {
        logits.clear();
        return;
    }
    const int64_t n_out = opt.all_logits ? T : 1;
    DeviceCache* dc = nullptr;
    const Step s = begin_step(T, cache, opt, n_out, n_out, dc);
    if (T == 1 && use_graphs_ && !graphs_failed_ && small_step(1, opt)) {
        if (decode_with_graph(ids[0], pos0, *dc, opt, s, logits)) {
            cache.set_length(pos0 + 1);
            return;
        }
    }

    const HostInputs h = carve_inputs(pinned_.get(), T, n_out);
    enqueue_step(ids, pos0, *dc, opt, s, h);
    check(cudaMemcpyAsync(h.logits, s.logits, static_cast<size_t>(n_out * V) * sizeof(float), cudaMemcpyDeviceToHost, stream_),
          "copying logits to the host");
    stage("logits out");
    finish_step(opt, cache, pos0 + T, "running the forward step");
    logits.assign(h.logits, h.logits + n_out * V);
}

bool CudaDeepseekMoe::decode_with_graph(int32_t id, int64_t pos0, const DeviceCache& dc, const ForwardOptions& opt,
                                        const Step& s, std::vector<float>& logits) const {
    const int64_t V = config_.vocab_size;
    const HostInputs h = carve_inputs(decode_pinned_.get(), 1, 1);
    const bool keys = host_inputs(std::span<const int32_t>(&id, 1), pos0, opt, h);
    // A graph is bound to the buffers it was captured with (addresses and the sizes that place
    // the pieces in them) and to the mask's launches.
    const std::string key =
        mask_uploaded_ + "|" + (opt.observer ? "observed" : "") + "|" + (keys ? "keys" : "") + "|" +
        (opt.all_logits ? "all" : "last") + "|" + std::to_string(reinterpret_cast<uintptr_t>(dc.mem.get())) + "|" +
        std::to_string(dc.capacity) + "|" + std::to_string(reinterpret_cast<uintptr_t>(workspace_.get())) + "|" +
        std::to_string(reinterpret_cast<uintptr_t>(routing_.get())) + "|" + std::to_string(ws_tokens_) + "x" +
        std::to_string(ws_k_) + "x" + std::to_string(ws_logit_rows_) + "|" + std::to_string(routing_tokens_);
    if (opt.observer && routing_) routing_->begin(pos0, 1, opt.source);
    if (key != graph_key_) {
        if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
        graph_exec_ = nullptr;
        graph_key_.clear();
        cudaGraph_t graph = nullptr;
        stream_table_pending_ = 0;
        try {
            check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "capturing a decode step");
            copy_inputs(h, 1, s, keys);
            enqueue_layers(1, pos0, s, dc, opt, true);
            check(cudaMemcpyAsync(h.logits, s.logits, static_cast<size_t>(V) * sizeof(float), cudaMemcpyDeviceToHost, stream_),
                  "copying logits to the host");
            check(cudaStreamEndCapture(stream_, &graph), "capturing a decode step");
            check(cudaGraphInstantiate(&graph_exec_, graph, 0), "instantiating the decode graph");
            cudaGraphDestroy(graph);
        } catch (const Error&) {
            // Not capturable here: this and later steps run launch by launch.
            cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
            if (cudaStreamIsCapturing(stream_, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
                cudaGraph_t g = nullptr;
                cudaStreamEndCapture(stream_, &g);
                if (g) cudaGraphDestroy(g);
            }
            if (graph) cudaGraphDestroy(graph);
            graph_exec_ = nullptr;
            stream_table_pending_ = 0;
            (void)cudaGetLastError();
            graphs_failed_ = true;
            return false;
        }
        graph_key_ = key;
        if (stream_table_pending_ > 0) {  // the graph's half of the stream kernel's table (stream_layers)
            upload_stream_table(true, stream_table_pending_);
            stream_table_pending_ = 0;
        }
    } else if (opt.observer && routing_) {
        // The replay makes the copies the capture recorded; the buffer is told what they hold.
        routing_->set_replay(true);
        for (int64_t layer : moe_layers_) record_routing(layer, opt, {s.experts, s.weights, s.entropy, s.mass, s.margin});
        routing_->set_replay(false);
    }
    check(cudaGraphLaunch(graph_exec_, stream_), "launching the decode graph");
    if (opt.observer && routing_) {
        routing_->set_replay(true);
        routing_->flush(stream_);  // the event after the graph's copy
        routing_->set_replay(false);
    }
    check(cudaStreamSynchronize(stream_), "running the decode graph");
    logits.assign(h.logits, h.logits + V);
    if (opt.observer && routing_) routing_->deliver(*opt.observer);
    return true;
}

}  // namespace moe::cuda::detail
