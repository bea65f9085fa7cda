// The forward step of the DeepSeekMoE model on the device; see cuda_model.h. The step mirrors
// the CPU backend (engine/models/deepseek_moe.cpp, engine/cpu/moe_block.cpp) operation by
// operation: the same RMSNorm, rotary tables, router definition (engine/router_core.h),
// dispatch order and combine order; decode steps replayed from a CUDA graph.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "engine/cuda/cuda_model_impl.h"
#include "engine/cuda/device.h"
#include "engine/error.h"

namespace moe::cuda::detail {

void CudaDeepseekMoe::ffn(const Ffn& f, const float* x, int64_t T, float* out, const Step& s) const {
    const int64_t W = f.gate.out;
    linear(f.gate, x, T, s.ffn_g, W, s);
    linear(f.up, x, T, s.ffn_u, W, s);
    launch::silu_mul(s.ffn_g, s.ffn_u, T * W, s.ffn_h, stream_);
    linear(f.down, s.ffn_h, T, out, f.down.out, s);
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
    const LayerIntervention* li = opt.mask ? opt.mask->layer(layer) : nullptr;
    const int64_t k = li ? li->k : c.num_experts_per_tok;
    const MaskMode mode = opt.mask ? opt.mask->mode() : MaskMode::reroute;
    const bool reroute = li && mode == MaskMode::reroute && li->n_disabled > 0;
    const bool drop = li && mode == MaskMode::drop && li->n_disabled > 0;
    const uint8_t* layer_disabled = disabled_ + m.index * E;

    // 1. Router logits in f32 (the router weights widened, as the CPU computes them), routing.
    linear(Linear{m.router, DType::f32, E, H}, s.normed, T, s.router_logits, E, s);
    RouterParams rp;
    rp.n_expert = E;
    rp.k = k;
    rp.norm_topk_prob = c.norm_topk_prob;
    rp.excluded = reroute ? layer_disabled : nullptr;
    rp.skip_top = li ? li->skip_top : 0;
    rp.skip_random = li ? li->skip_random : 0;
    rp.scoring = c.scoring_func;
    rp.method = c.topk_method;
    rp.n_group = c.n_group;
    rp.topk_group = c.topk_group;
    rp.routed_scaling_factor = static_cast<float>(c.routed_scaling_factor);
    const uint64_t* keys = rp.skip_random > 0 ? s.keys + m.index * T : nullptr;
    // Observed: the router writes straight into this layer's part of the routing buffer.
    launch::RouteOutputs where = routed;
    if (opt.observer && routing_) where = routing_->slot(layer);
    launch::route(s.router_logits, T, launch::router_args(rp), keys, s.route_scratch, where, stream_);
    if (opt.observer) record_routing(layer, opt, where);
    const launch::RouteOutputs& routed_here = where;

    // 2. The shared experts, the combine's base.
    const bool shared_on = m.has_shared && !(li && li->shared_off);
    if (shared_on) ffn(m.shared, s.normed, T, s.base, s);

    // 3. The routed experts.
    const uint8_t* dropped = drop ? layer_disabled : nullptr;
    const int64_t n_slots = T * k;
    if (n_slots <= kSmallStep) {
        launch::expert_gate_up(s.normed, T, H, k, routed_here.experts, dropped, m.gate_table, m.up_table, m.expert_type, F, s.eh,
                               stream_);
        launch::expert_down(s.eh, n_slots, F, routed_here.experts, dropped, m.down_table, m.expert_type, H, s.results, stream_);
        launch::slot_rows(routed_here.experts, dropped, n_slots, s.rows, stream_);
    } else {
        launch::dispatch(routed_here.experts, n_slots, dropped, E, s.counts, s.offsets, s.rows, s.row_slot, stream_);
        offsets_host_.resize(static_cast<size_t>(E + 1));
        check(cudaMemcpyAsync(offsets_host_.data(), s.offsets, static_cast<size_t>(E + 1) * sizeof(int64_t),
                              cudaMemcpyDeviceToHost, stream_),
              "reading the expert offsets");
        check(cudaStreamSynchronize(stream_), "reading the expert offsets");
        const int64_t n_rows = offsets_host_[static_cast<size_t>(E)];
        launch::gather_rows(s.normed, H, k, s.row_slot, s.offsets + E, n_rows, s.gathered, stream_);
        for (int64_t e = 0; e < E; ++e) {
            const int64_t r0 = offsets_host_[static_cast<size_t>(e)], n = offsets_host_[static_cast<size_t>(e + 1)] - r0;
            if (n == 0) continue;
            const Ffn& f = m.experts[static_cast<size_t>(e)];
            linear(f.gate, s.gathered + r0 * H, n, s.eg + r0 * F, F, s);
            linear(f.up, s.gathered + r0 * H, n, s.eu + r0 * F, F, s);
        }
        launch::silu_mul(s.eg, s.eu, n_rows * F, s.eh, stream_);
        for (int64_t e = 0; e < E; ++e) {
            const int64_t r0 = offsets_host_[static_cast<size_t>(e)], n = offsets_host_[static_cast<size_t>(e + 1)] - r0;
            if (n == 0) continue;
            linear(m.experts[static_cast<size_t>(e)].down, s.eh + r0 * F, n, s.results + r0 * H, H, s);
        }
    }
    // 4. out[t] = shared[t] + Σ_rank w · expert[t], in rank order.
    launch::combine_rows(s.results, H, T, k, s.rows, routed_here.weights, shared_on ? s.base : nullptr, s.branch, stream_);
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
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const Layer& L = layers_[static_cast<size_t>(i)];
        launch::rms_norm(s.x, L.attn_norm, T, H, eps, s.normed, stream_);
        float* kc = dc.keys(i);
        float* vc = dc.values(i);
        linear(L.q, s.normed, T, s.q, qdim, s);
        launch::rope_halves(s.q, T, nh, hd, qdim, s.rope_cos, s.rope_sin, stream_);
        if (device_pos) {
            // One token at the position the device holds (*s.pos): the same launches at
            // every position, as a CUDA graph replays them.
            linear(L.k, s.normed, 1, s.k_new, kvdim, s);
            linear(L.v, s.normed, 1, s.v_new, kvdim, s);
            launch::rope_halves(s.k_new, 1, nkv, hd, kvdim, s.rope_cos, s.rope_sin, stream_);
            launch::append_row(s.k_new, kvdim, kc, s.pos, stream_);
            launch::append_row(s.v_new, kvdim, vc, s.pos, stream_);
            launch::attention(s.q, kc, vc, 1, nh, nkv, hd, 0, s.attn, stream_, s.pos, dc.capacity, attn_partials_);
        } else {
            linear(L.k, s.normed, T, kc + pos0 * kvdim, kvdim, s);  // straight into the cache
            linear(L.v, s.normed, T, vc + pos0 * kvdim, kvdim, s);
            launch::rope_halves(kc + pos0 * kvdim, T, nkv, hd, kvdim, s.rope_cos, s.rope_sin, stream_);
            launch::attention(s.q, kc, vc, T, nh, nkv, hd, pos0, s.attn, stream_, nullptr, 0, attn_partials_);
        }
        linear(L.o, s.attn, T, s.branch, H, s);
        launch::add(s.x, s.branch, T * H, stream_);
        launch::rms_norm(s.x, L.ffn_norm, T, H, eps, s.normed, stream_);
        feed_forward(L, i, T, opt, s, routed);
        launch::add(s.x, s.branch, T * H, stream_);
    }
    const int64_t first = opt.all_logits ? 0 : T - 1, n_out = T - first;
    launch::rms_norm(s.x + first * H, final_norm_, n_out, H, eps, s.normed, stream_);
    linear(head_, s.normed, n_out, s.logits, c.vocab_size, s);
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

CudaDeepseekMoe::HostInputs CudaDeepseekMoe::carve_inputs(void* base, int64_t T) const {
    Carver pin(base);
    HostInputs h;
    h.ids = pin.take<int32_t>(static_cast<size_t>(T));
    h.pos = pin.take<int64_t>(1);
    h.cos = pin.take<float>(static_cast<size_t>(T * (config_.head_dim / 2)));
    h.sin = pin.take<float>(static_cast<size_t>(T * (config_.head_dim / 2)));
    h.keys = pin.take<uint64_t>(static_cast<size_t>(T) * std::max<size_t>(moe_layers_.size(), 1));
    h.logits = pin.take<float>(static_cast<size_t>(T * config_.vocab_size));
    h.bytes = pin.used();
    return h;
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
    check(cudaSetDevice(0), "selecting device 0");
    int64_t k_max = c.num_experts_per_tok;
    if (opt.mask)
        for (const auto& [layer, li] : opt.mask->layers()) k_max = std::max(k_max, li.k);
    ensure_workspace(T, k_max);
    upload_mask(opt.mask && !opt.mask->empty() ? opt.mask : nullptr);
    DeviceCache& dc = device_cache(cache, pos0 + T);
    const Step s = carve(workspace_.get(), ws_tokens_, ws_k_, nullptr);
    if (T == 1 && use_graphs_ && !graphs_failed_ && k_max <= kSmallStep) {
        if (decode_with_graph(ids[0], pos0, dc, opt, s, logits)) {
            cache.set_length(pos0 + 1);
            return;
        }
    }

    const HostInputs h = carve_inputs(pinned_.get(), T);
    const bool keys = host_inputs(ids, pos0, opt, h);
    copy_inputs(h, T, s, keys);
    if (opt.observer && routing_) routing_->begin(pos0, T, opt.source);
    enqueue_layers(T, pos0, s, dc, opt, false);
    const int64_t n_out = opt.all_logits ? T : 1;
    check(cudaMemcpyAsync(h.logits, s.logits, static_cast<size_t>(n_out * V) * sizeof(float), cudaMemcpyDeviceToHost, stream_),
          "copying logits to the host");
    check(cudaStreamSynchronize(stream_), "running the forward step");
    logits.assign(h.logits, h.logits + n_out * V);
    if (opt.observer && routing_) routing_->deliver(*opt.observer);
    cache.set_length(pos0 + T);
}

bool CudaDeepseekMoe::decode_with_graph(int32_t id, int64_t pos0, const DeviceCache& dc, const ForwardOptions& opt,
                                        const Step& s, std::vector<float>& logits) const {
    const int64_t V = config_.vocab_size;
    const HostInputs h = carve_inputs(decode_pinned_.get(), 1);
    const bool keys = host_inputs(std::span<const int32_t>(&id, 1), pos0, opt, h);
    // A graph is bound to the buffers it was captured with (addresses and the sizes that place
    // the pieces in them) and to the mask's launches.
    const std::string key = mask_uploaded_ + "|" + (opt.observer ? "observed" : "") + "|" + (keys ? "keys" : "") + "|" +
                            (opt.all_logits ? "all" : "last") + "|" + std::to_string(reinterpret_cast<uintptr_t>(dc.mem.get())) +
                            "|" + std::to_string(dc.capacity) + "|" + std::to_string(reinterpret_cast<uintptr_t>(workspace_.get())) +
                            "|" + std::to_string(reinterpret_cast<uintptr_t>(routing_.get())) + "|" +
                            std::to_string(ws_tokens_) + "x" + std::to_string(ws_k_) + "|" + std::to_string(routing_tokens_);
    if (opt.observer && routing_) routing_->begin(pos0, 1, opt.source);
    if (key != graph_key_) {
        if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
        graph_exec_ = nullptr;
        graph_key_.clear();
        cudaGraph_t graph = nullptr;
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
            (void)cudaGetLastError();
            graphs_failed_ = true;
            return false;
        }
        graph_key_ = key;
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
