// A small step's layers (decode: a few tokens) in fused launches (engine/cuda/decode_kernels.h),
// or, with MOEWB_CUDA_DECODE_KERNEL=layer, each layer of a one-token step as one cooperative
// launch (launch::decode_layer), with =stream or =step in the stream kernel's launches
// (launch::decode_stream); part of the forward step of cuda_forward.cu.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "engine/cuda/cuda_model_impl.h"
#include "engine/cuda/decode_kernels.h"
#include "engine/cuda/expert_kernels.h"
#include "engine/cuda/launch_after.h"
#include "engine/cuda/route_warp.cuh"
#include "engine/error.h"

namespace moe::cuda::detail {

int64_t CudaDeepseekMoe::k_max(const ForwardOptions& opt) const {
    int64_t k = config_.num_experts_per_tok;
    if (opt.mask)
        for (const auto& [layer, li] : opt.mask->layers()) k = std::max(k, li.k);
    return k;
}

bool CudaDeepseekMoe::small_step(int64_t T, const ForwardOptions& opt) const {
    return T <= kGemvTokens && T * k_max(opt) <= kSmallStep;
}

launch::GemvPart CudaDeepseekMoe::part(const Linear& l, float* y, int64_t ldy, bool accumulate) {
    launch::GemvPart p;
    p.w = l.w;
    p.type = l.type;
    p.rows = l.out;
    p.y = y;
    p.ldy = ldy;
    p.accumulate = accumulate;
    return p;
}

launch::GemvPart CudaDeepseekMoe::gated_part(const Ffn& f, float* y) {
    if (f.gate.type != f.up.type || f.gate.out != f.up.out)
        throw Error(ErrorKind::input, "a feed-forward's gate and up projections differ in type or shape");
    launch::GemvPart p = part(f.gate, y, f.gate.out);
    p.w2 = f.up.w;
    return p;
}

// A layer of a small step (decode) in fused launches (engine/cuda/decode_kernels.h): the
// attention's RMSNorm and projections, the rotary embedding of queries and keys, attention,
// the output projection added to the residual; the feed-forward's RMSNorm with the router (or
// the dense MLP's gate and up) and the shared experts' gate and up, routing, the routed
// experts' gate and up (one launch with the routing when route_in_experts_ asks and the
// router is plain), and their down products combined with the shared experts' and added.
// Keys and values go straight into an f32 cache, at the device's position with device_pos (the
// q and k products rotate their heads themselves unless MOEWB_CUDA_ROPE=separate: no rope launch);
// into a BF16 cache through the step's f32 scratch, rotated and rounded by one launch.
void CudaDeepseekMoe::small_layer(const Layer& L, int64_t layer, int64_t T, int64_t pos0, const Step& s,
                                  const DeviceCache& dc, const ForwardOptions& opt, bool device_pos,
                                  const launch::RouteOutputs& routed) const {
    const ModelConfig& c = config_;
    const int64_t H = c.hidden_size;
    const float eps = static_cast<float>(c.rms_norm_eps);
    const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads, hd = c.head_dim;
    const int64_t qdim = nh * hd, kvdim = nkv * hd;
    if (layer_in_one_launch(L, layer, T, pos0, s, dc, opt, device_pos, routed)) {
        stage("layer");
        return;
    }
    const int64_t* row0 = device_pos ? s.pos : nullptr;
    const int64_t at = device_pos ? 0 : pos0;  // the step's first row in the cache (else *row0)
    if (dc.type == KvType::bf16) {
        // The new keys and values in f32 first; rotated and rounded into the cache by one launch.
        float* kn = s.kv_new;
        float* vn = s.kv_new + T * kvdim;
        const launch::GemvPart qkv[3] = {part(L.q, s.q, qdim), part(L.k, kn, kvdim), part(L.v, vn, kvdim)};
        launch::fused_gemv(s.x, T, H, L.attn_norm, eps, nullptr, qkv, 3, stream_);
        stage("norm+qkv");
        launch::rope_store_kv(s.q, T, nh, qdim, kn, vn, kvdim, nkv, hd, s.rope_cos, s.rope_sin, dc.keys(layer),
                              dc.values(layer), row0, pos0, stream_);
        stage("rope");
    } else {
        auto* k_at = static_cast<float*>(dc.at(layer, 0, at));
        launch::GemvPart qkv[3] = {part(L.q, s.q, qdim), part(L.k, k_at, kvdim),
                                   part(L.v, static_cast<float*>(dc.at(layer, 1, at)), kvdim)};
        qkv[1].row0 = qkv[2].row0 = row0;
        if (fused_rope_)
            for (int j = 0; j < 2; ++j) {
                qkv[j].rope_cos = s.rope_cos;
                qkv[j].rope_sin = s.rope_sin;
                qkv[j].head_dim = hd;
            }
        launch::fused_gemv(s.x, T, H, L.attn_norm, eps, nullptr, qkv, 3, stream_);
        stage("norm+qkv");
        if (!fused_rope_) {
            launch::rope_qk(s.q, T, nh, qdim, k_at, row0, nkv, kvdim, hd, s.rope_cos, s.rope_sin, stream_);
            stage("rope");
        }
    }
    if (device_pos)
        launch::attention(s.q, dc.keys(layer), dc.values(layer), 1, nh, nkv, hd, 0, s.attn, stream_, s.pos, dc.capacity,
                          attn_partials_, AttentionMath::f32, decode_attention_, dc.type);
    else
        launch::attention(s.q, dc.keys(layer), dc.values(layer), T, nh, nkv, hd, pos0, s.attn, stream_, nullptr, 0,
                          attn_partials_, AttentionMath::f32, decode_attention_, dc.type);
    stage("attention");
    const launch::GemvPart o = part(L.o, s.x, H, true);
    launch::fused_gemv(s.attn, T, qdim, nullptr, 0, nullptr, &o, 1, stream_);
    stage("o+residual");

    if (!L.is_moe) {
        const launch::GemvPart gu = gated_part(L.mlp, s.ffn_h);
        launch::fused_gemv(s.x, T, H, L.ffn_norm, eps, nullptr, &gu, 1, stream_);
        const launch::GemvPart down = part(L.mlp.down, s.x, H, true);
        launch::fused_gemv(s.ffn_h, T, L.mlp.down.in, nullptr, 0, nullptr, &down, 1, stream_);
        stage("dense mlp");
        return;
    }
    const MoeLayer& m = L.moe;
    const int64_t E = c.n_routed_experts, F = c.moe_intermediate_size;
    const bool shared_on = shared_runs(m, layer, opt);
    launch::GemvPart in[2] = {part(Linear{m.router, DType::f32, E, H}, s.router_logits, E), {}};
    if (shared_on) in[1] = gated_part(m.shared, s.ffn_h);
    launch::fused_gemv(s.x, T, H, L.ffn_norm, eps, s.normed, in, shared_on ? 2 : 1, stream_);
    stage("norm+router+shared up");
    Routed r;
    router_core::Args args;
    const uint64_t* keys = nullptr;
    bool in_experts = false;  // the routing done by the experts' launch (route_in_experts_)
    if (route_in_experts_) {
        r = plan_route(m, layer, T, opt, s, routed, args, keys);
        in_experts = !keys && route_warp::takes(args);
    }
    if (in_experts) {
        launch::routed_expert_gate_up(s.router_logits, args, r.out, s.normed, T, H, r.dropped, m.gate_table, m.up_table,
                                      m.expert_type, F, s.eh, stream_);
        if (opt.observer) record_routing(layer, opt, r.out);
        stage("route+experts gate+up");
    } else {
        r = route_layer(m, layer, T, opt, s, routed);
        stage("route");
        launch::expert_gate_up(s.normed, T, H, r.k, r.out.experts, r.dropped, m.gate_table, m.up_table, m.expert_type,
                               F, s.eh, stream_);
        stage("experts gate+up");
    }
    launch::moe_down_combine(s.eh, T, r.k, F, r.out.experts, r.dropped, r.out.weights, m.down_table, m.expert_type,
                             shared_on ? m.shared.down.w : nullptr, m.shared.down.type, s.ffn_h, m.shared.down.in, H,
                             s.x, stream_);
    stage("experts down+combine");
}

bool CudaDeepseekMoe::layer_in_one_launch(const Layer& L, int64_t layer, int64_t T, int64_t pos0, const Step& s,
                                          const DeviceCache& dc, const ForwardOptions& opt, bool device_pos,
                                          const launch::RouteOutputs& routed) const {
    if (!layer_kernel_ || T != 1 || dc.type != KvType::f32 || !fused_rope_) return false;
    launch::DecodeLayer d;
    launch::RouteOutputs out{};
    if (!one_launch_args(L, layer, pos0, s, dc, opt, device_pos, routed, d, out) || !launch::decode_layer_runs(d))
        return false;
    // With the stage profile on, the kernel times its own stages ("layer: qkv", …).
    const char* const* names = nullptr;
    const int n_stages = launch::decode_layer_stages(L.is_moe, &names);
    d.stamps = stages_.inside("layer: ", names, n_stages);
    launch::decode_layer(d, stream_);
    if (L.is_moe && opt.observer) record_routing(layer, opt, out);
    return true;
}

void CudaDeepseekMoe::upload_stream_table(bool graph, int n) const {
    const size_t half = graph ? static_cast<size_t>(config_.num_hidden_layers) * launch::decode_stream_args_bytes() : 0;
    launch::decode_stream_upload(static_cast<unsigned char*>(stream_table_host_.get()) + half, stream_table_ + half, n,
                                 stream_);
}

void CudaDeepseekMoe::stream_layers(int64_t pos0, const Step& s, const DeviceCache& dc, const ForwardOptions& opt,
                                    bool device_pos, const launch::RouteOutputs& routed) const {
    const int64_t n = config_.num_hidden_layers;
    // The graph's half of the table stays as its capture wrote it; the other is written anew
    // each step (the step before has been waited for).
    const size_t half = static_cast<size_t>(n) * launch::decode_stream_args_bytes();
    void* table = static_cast<unsigned char*>(stream_table_host_.get()) + (device_pos ? half : 0);
    void* device = stream_table_ + (device_pos ? half : 0);
    std::vector<char> planned(static_cast<size_t>(n), 0);
    std::vector<launch::RouteOutputs> outs(static_cast<size_t>(n));
    int last = -1;
    for (int64_t i = 0; i < n; ++i) {
        const Layer& L = layers_[static_cast<size_t>(i)];
        launch::DecodeLayer d;
        const int at = static_cast<int>(i);
        if (!one_launch_args(L, i, pos0, s, dc, opt, device_pos, routed, d, outs[static_cast<size_t>(i)]) ||
            !launch::decode_stream_plan(d, table, at))
            continue;
        if (stages_.on()) {  // the kernel times its own stages ("stream: qkv", …)
            const char* const* names = nullptr;
            const int n_stages = launch::decode_stream_stages(L.is_moe, &names);
            d.stamps = stages_.inside("stream: ", names, n_stages);
            launch::decode_stream_plan(d, table, at);
        }
        planned[static_cast<size_t>(i)] = 1;
        last = at;
    }
    // A captured step's table goes to the device once, after the capture (decode_with_graph),
    // not with every replay.
    if (last >= 0 && device_pos)
        stream_table_pending_ = last + 1;
    else if (last >= 0)
        upload_stream_table(false, last + 1);
    for (int64_t i = 0; i < n;) {
        if (!planned[static_cast<size_t>(i)]) {
            small_layer(layers_[static_cast<size_t>(i)], i, 1, pos0, s, dc, opt, device_pos, routed);
            ++i;
            continue;
        }
        int64_t j = i + 1;
        while (stream_step_ && j < n && planned[static_cast<size_t>(j)]) ++j;
        launch::decode_stream(table, device, static_cast<int>(i), static_cast<int>(j - i), stream_);
        for (; i < j; ++i)
            if (layers_[static_cast<size_t>(i)].is_moe && opt.observer)
                record_routing(i, opt, outs[static_cast<size_t>(i)]);
        stage("stream");
    }
}

bool CudaDeepseekMoe::one_launch_args(const Layer& L, int64_t layer, int64_t pos0, const Step& s, const DeviceCache& dc,
                                      const ForwardOptions& opt, bool device_pos, const launch::RouteOutputs& routed,
                                      launch::DecodeLayer& d, launch::RouteOutputs& out) const {
    const ModelConfig& c = config_;
    const int64_t H = c.hidden_size, nh = c.num_attention_heads, nkv = c.num_key_value_heads, hd = c.head_dim;
    const int64_t qdim = nh * hd, kvdim = nkv * hd;
    d = launch::DecodeLayer{};
    d.x = s.x;
    d.H = H;
    d.eps = static_cast<float>(c.rms_norm_eps);
    d.attn_norm = L.attn_norm;
    const int64_t at = device_pos ? 0 : pos0;
    d.qkv[0] = part(L.q, s.q, qdim);
    d.qkv[1] = part(L.k, static_cast<float*>(dc.at(layer, 0, at)), kvdim);
    d.qkv[2] = part(L.v, static_cast<float*>(dc.at(layer, 1, at)), kvdim);
    d.qkv[1].row0 = d.qkv[2].row0 = device_pos ? s.pos : nullptr;
    for (int j = 0; j < 2; ++j) {
        d.qkv[j].rope_cos = s.rope_cos;
        d.qkv[j].rope_sin = s.rope_sin;
        d.qkv[j].head_dim = hd;
    }
    d.q = s.q;
    d.k_cache = static_cast<const float*>(dc.keys(layer));
    d.v_cache = static_cast<const float*>(dc.values(layer));
    d.nh = nh;
    d.nkv = nkv;
    d.hd = hd;
    d.pos0 = pos0;
    d.d_pos = device_pos ? s.pos : nullptr;
    d.max_positions = dc.capacity;
    d.partials = attn_partials_;
    d.attn = s.attn;
    d.o = part(L.o, s.x, H, true);
    d.ffn_norm = L.ffn_norm;
    d.moe = L.is_moe;
    Routed r;
    if (!L.is_moe) {
        d.ffn[0] = gated_part(L.mlp, s.ffn_h);
        d.n_ffn = 1;
        d.dense_down = part(L.mlp.down, s.x, H, true);
        d.inter = L.mlp.down.in;
        d.ffn_h = s.ffn_h;
    } else {
        const MoeLayer& m = L.moe;
        const int64_t E = c.n_routed_experts;
        const bool shared_on = shared_runs(m, layer, opt);
        d.ffn[0] = part(Linear{m.router, DType::f32, E, H}, s.router_logits, E);
        d.n_ffn = 1;
        if (shared_on) d.ffn[d.n_ffn++] = gated_part(m.shared, s.ffn_h);
        d.normed = s.normed;
        d.router_logits = s.router_logits;
        const uint64_t* keys = nullptr;
        r = plan_route(m, layer, 1, opt, s, routed, d.route, keys);
        if (keys) return false;
        d.out = r.out;
        d.dropped = r.dropped;
        d.k = r.k;
        d.F = c.moe_intermediate_size;
        d.gate = m.gate_table;
        d.up = m.up_table;
        d.down = m.down_table;
        d.expert_type = m.expert_type;
        d.eh = s.eh;
        d.ffn_h = s.ffn_h;
        if (shared_on) {
            d.shared_down = m.shared.down.w;
            d.shared_y = s.branch;
            d.shared_type = m.shared.down.type;
            d.Fs = m.shared.down.in;
        }
    }
    d.sync = stream_sync_ + layer * launch::kStreamCounters;
    out = r.out;
    return true;
}

}  // namespace moe::cuda::detail
