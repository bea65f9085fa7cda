// The DeepSeekMoE model on the device, loading and memory; see cuda_model.h. The forward step
// is in cuda_forward.cu, the class and its pieces in cuda_model_impl.h.
#include "engine/cuda/cuda_model.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "engine/cuda/attention_mma.h"
#include "engine/cuda/cuda_model_impl.h"
#include "engine/cuda/device.h"
#include "engine/cuda/launch_after.h"
#include "engine/error.h"
#include "engine/random_weights.h"

namespace moe::cuda {

namespace detail {

CudaDeepseekMoe::CudaDeepseekMoe(const ModelConfig& c, std::shared_ptr<TensorSource> t, const LoadOptions& o)
    : Model(c, std::move(t), o) {
    std::string why;
    const auto dev = first_device(&why);
    if (!dev) throw_input_error("backend cuda", why);
    device_name_ = dev->name;
    check(cudaSetDevice(0), "selecting device 0");
    if (c.arch != Architecture::deepseek_moe)
        throw_input_error(c.source, "model_type " + c.model_type +
                                        ": the CUDA backend runs DeepSeekMoE (model_type deepseek); this model runs on the CPU backend");

    // Bind and check every tensor as the CPU backend does (names, shapes, types). Random
    // weights' matrices are bound by shape only: DeviceWeights makes them on the device.
    std::optional<ShapesFirst> shapes_first;
    if (const auto* r = dynamic_cast<const RandomTensors*>(tensors_.get())) shapes_first.emplace(*r);
    deepseek::WeightBinder b(shapes_first ? static_cast<const TensorSource&>(*shapes_first) : *tensors_, c);
    const int64_t H = c.hidden_size, V = c.vocab_size, hd = c.head_dim, E = c.n_routed_experts;
    const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads;
    std::vector<std::string> upload;
    auto need_matrix = [&](const std::string& name, int64_t rows, int64_t cols) {
        const cpu::WeightMatrix m = b.matrix(name, rows, cols);
        if (m.dtype == DType::f8_e4m3)
            throw_input_error(tensors_->file_of(name), "tensor '" + name + "' is F8_E4M3; the CUDA backend runs BF16, F16 and F32 weights");
        upload.push_back(name);
    };
    b.embedding(names::embed, V, H);
    upload.push_back(names::embed);
    if (!c.tie_word_embeddings) need_matrix(names::lm_head, V, H);
    std::vector<std::vector<float>> host_f32;  // norms and routers, in aux order
    host_f32.push_back(b.vector_f32(names::final_norm, H));
    layers_.resize(static_cast<size_t>(c.num_hidden_layers));
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        Layer& L = layers_[static_cast<size_t>(i)];
        host_f32.push_back(b.vector_f32(names::attn_norm(i), H));
        host_f32.push_back(b.vector_f32(names::ffn_norm(i), H));
        need_matrix(names::attn(i, "q_proj"), nh * hd, H);
        need_matrix(names::attn(i, "k_proj"), nkv * hd, H);
        need_matrix(names::attn(i, "v_proj"), nkv * hd, H);
        need_matrix(names::attn(i, "o_proj"), H, nh * hd);
        L.is_moe = c.is_moe_layer(i);
        auto need_ffn = [&](const std::function<std::string(const char*)>& name, int64_t width) {
            need_matrix(name("gate_proj"), width, H);
            need_matrix(name("up_proj"), width, H);
            need_matrix(name("down_proj"), H, width);
        };
        if (!L.is_moe) {
            need_ffn([&](const char* p) { return names::mlp(i, p); }, c.intermediate_size);
            max_width_ = std::max(max_width_, c.intermediate_size);
            continue;
        }
        L.moe.index = static_cast<int64_t>(moe_layers_.size());
        moe_layers_.push_back(i);
        const cpu::WeightMatrix r = b.matrix(names::router(i), E, H);
        std::vector<float> router(static_cast<size_t>(E * H));
        if (r.dtype == DType::f8_e4m3)
            throw_input_error(tensors_->file_of(names::router(i)), "the router weight is F8_E4M3; the CUDA backend runs BF16, F16 and F32 weights");
        tensor_to_f32(*tensors_->find(names::router(i)), 0, E * H, router.data());
        host_f32.push_back(std::move(router));
        for (int64_t e = 0; e < E; ++e)
            need_ffn([&](const char* p) { return names::expert(i, e, p); }, c.moe_intermediate_size);
        L.moe.has_shared = c.n_shared_experts > 0;
        if (L.moe.has_shared) {
            need_ffn([&](const char* p) { return names::shared(i, p); }, c.shared_width());
            max_width_ = std::max(max_width_, c.shared_width());
        }
    }
    b.check_all_used([](const std::string&) { return false; });
    max_width_ = std::max(max_width_, c.moe_intermediate_size);
    max_in_ = std::max({H, nh * hd, max_width_});

    weights_ = std::make_unique<DeviceWeights>(*tensors_, upload);
    auto lin = [&](const std::string& name) {
        const DeviceTensor& dt = weights_->tensor(name);
        return Linear{weights_->data(name), dt.dtype, dt.shape[0], dt.shape[1]};
    };
    embed_ = weights_->data(names::embed);
    embed_type_ = weights_->tensor(names::embed).dtype;
    head_ = c.tie_word_embeddings ? Linear{embed_, embed_type_, V, H} : lin(names::lm_head);

    // aux: the f32 vectors, then per MoE layer three pointer tables [E] (and, for the Hopper
    // experts' kernel, three tables of tensor maps), then the mask [n_moe, E].
    const bool maps_wanted = launch::expert_wgmma_asked();
    std::size_t f32_count = 0;
    for (const auto& v : host_f32) f32_count += v.size();
    Carver sizing(nullptr);
    for (const auto& v : host_f32) sizing.take<float>(v.size());
    for (size_t m = 0; m < moe_layers_.size(); ++m)
        for (int j = 0; j < 3; ++j) {
            sizing.take<const void*>(static_cast<size_t>(E));
            if (maps_wanted) sizing.take<unsigned char>(launch::expert_maps_bytes(static_cast<size_t>(E)));
        }
    sizing.take<uint8_t>(moe_layers_.size() * static_cast<size_t>(E));
    sizing.take<float>(static_cast<size_t>(launch::attention_partial_floats(nh, hd)));
    const auto n_layers = static_cast<size_t>(c.num_hidden_layers);
    const bool streamed = launch::stream_kernel_asked();
    const size_t stream_table_bytes = streamed ? 2 * n_layers * launch::decode_stream_args_bytes() : 0;
    sizing.take<unsigned>(launch::kStreamCounters * n_layers);
    sizing.take<unsigned char>(stream_table_bytes);
    aux_bytes_ = sizing.used();
    aux_.reset(device_alloc_for(aux_bytes_, "the norms, routers and expert tables"));
    Carver carve(aux_.get());
    std::vector<const float*> f32_dev;
    for (const auto& v : host_f32) {
        float* d = carve.take<float>(v.size());
        check(cudaMemcpy(d, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice), "copying norms and routers");
        f32_dev.push_back(d);
    }
    size_t next_f32 = 0;
    final_norm_ = f32_dev[next_f32++];
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        Layer& L = layers_[static_cast<size_t>(i)];
        L.attn_norm = f32_dev[next_f32++];
        L.ffn_norm = f32_dev[next_f32++];
        L.q = lin(names::attn(i, "q_proj"));
        L.k = lin(names::attn(i, "k_proj"));
        L.v = lin(names::attn(i, "v_proj"));
        L.o = lin(names::attn(i, "o_proj"));
        auto ffn_of = [&](const std::function<std::string(const char*)>& name) {
            return Ffn{lin(name("gate_proj")), lin(name("up_proj")), lin(name("down_proj"))};
        };
        if (!L.is_moe) {
            L.mlp = ffn_of([&](const char* p) { return names::mlp(i, p); });
            continue;
        }
        L.moe.router = f32_dev[next_f32++];
        std::vector<const void*> tables[3];
        for (int64_t e = 0; e < E; ++e) {
            L.moe.experts.push_back(ffn_of([&](const char* p) { return names::expert(i, e, p); }));
            const Ffn& f = L.moe.experts.back();
            if (f.gate.type != L.moe.experts[0].gate.type || f.up.type != f.gate.type || f.down.type != f.gate.type)
                throw_input_error(tensors_->file_of(names::expert(i, e, "gate_proj")),
                                  "the experts of layer " + std::to_string(i) + " are stored in different types; the CUDA backend needs one");
            tables[0].push_back(f.gate.w);
            tables[1].push_back(f.up.w);
            tables[2].push_back(f.down.w);
        }
        L.moe.expert_type = L.moe.experts[0].gate.type;
        if (L.moe.has_shared) L.moe.shared = ffn_of([&](const char* p) { return names::shared(i, p); });
    }
    for (int64_t i : moe_layers_) {
        MoeLayer& m = layers_[static_cast<size_t>(i)].moe;
        const void** t3[3];
        const void* maps[3] = {};
        bool all_maps = maps_wanted && m.expert_type == DType::bf16;
        const Ffn& f0 = m.experts.front();
        for (int j = 0; j < 3; ++j) {
            t3[j] = carve.take<const void*>(static_cast<size_t>(E));
            std::vector<const void*> host;
            for (const Ffn& f : m.experts) host.push_back(j == 0 ? f.gate.w : j == 1 ? f.up.w : f.down.w);
            check(cudaMemcpy(t3[j], host.data(), host.size() * sizeof(void*), cudaMemcpyHostToDevice), "copying expert tables");
            if (!maps_wanted) continue;
            unsigned char* to = carve.take<unsigned char>(launch::expert_maps_bytes(static_cast<size_t>(E)));
            const Linear& l = j == 0 ? f0.gate : j == 1 ? f0.up : f0.down;
            const int64_t rows = j == 0 && all_adjacent(m) ? 2 * l.out : l.out;  // gate and up as one product
            all_maps = all_maps && launch::write_expert_maps(host, l.in, rows, to);
            maps[j] = to;
        }
        m.gate_table = t3[0];
        m.up_table = t3[1];
        m.down_table = t3[2];
        if (all_maps) {
            m.gate_maps = maps[0];
            m.up_maps = maps[1];
            m.down_maps = maps[2];
        }
    }
    disabled_ = carve.take<uint8_t>(moe_layers_.size() * static_cast<size_t>(E));
    attn_partials_ = carve.take<float>(static_cast<size_t>(launch::attention_partial_floats(nh, hd)));
    check(cudaMemset(attn_partials_, 0, static_cast<size_t>(launch::attention_partial_floats(nh, hd)) * sizeof(float)),
          "clearing the decode splits' counters");
    stream_sync_ = carve.take<unsigned>(launch::kStreamCounters * n_layers);
    check(cudaMemset(stream_sync_, 0, launch::kStreamCounters * n_layers * sizeof(unsigned)),
          "clearing the stream kernel's counters");
    stream_table_ = carve.take<unsigned char>(stream_table_bytes);
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating the stream");
    try {  // a constructor that throws runs no destructor: the stream goes here
        blas_ = std::make_unique<launch::Blas>(stream_);
        blas_->set_split_activations(!o.cuda_bf16_activations);
        bf16_activations_ = o.cuda_bf16_activations;
        const DType attn_type = layers_.empty() ? DType::f32 : layers_.front().q.type;
        attention_math_ = attn_type == DType::f32 || launch::f32_attention_asked() ? AttentionMath::f32
                          : bf16_activations_                  ? AttentionMath::bf16
                                                               : AttentionMath::split_bf16;
        prefill_attention_ = launch::prefill_attention_asked();
        decode_attention_ = launch::decode_attention_asked();
        kv_type_ = launch::kv_cache_asked();
        fused_rope_ = launch::fused_rope_asked();
        layer_kernel_ = launch::layer_kernel_asked();
        stream_kernel_ = streamed;
        stream_step_ = streamed && launch::stream_step_asked();
        route_in_experts_ = launch::route_in_experts_asked();
        stacked_parts_ = launch::stacked_expert_parts() && launch::batched_expert_products() && !bf16_activations_;
        create_side_streams(launch::expert_streams());
        check(cudaEventCreateWithFlags(&offsets_ready_, cudaEventDisableTiming), "creating an event");
        void* offsets = nullptr;
        check(cudaMallocHost(&offsets, static_cast<size_t>(std::max<int64_t>(E, 0) + 1) * sizeof(int64_t)),
              "allocating pinned host memory");
        offsets_pinned_.reset(offsets);
        void* plan = nullptr;
        check(cudaMallocHost(&plan,
                             static_cast<size_t>((std::max<int64_t>(E, 0) + 1) * (1 + kBatchTables)) * sizeof(int64_t)),
              "allocating pinned host memory");
        plan_pinned_.reset(plan);
        use_graphs_ = o.cuda_graphs && !stages_.on();
        void* p = nullptr;
        check(cudaMallocHost(&p, carve_inputs(nullptr, 1, 1).bytes), "allocating pinned host memory");
        decode_pinned_.reset(p);
        if (stream_table_bytes > 0) {
            void* t = nullptr;
            check(cudaMallocHost(&t, stream_table_bytes), "allocating pinned host memory");
            stream_table_host_.reset(t);
        }
        // The uploads and clears above ran on the legacy default stream, which stream_ (non-blocking)
        // does not wait for: done before the first step.
        check(cudaDeviceSynchronize(), "finishing the model's upload");
    } catch (...) {
        release_stream();
        throw;
    }
}

CudaDeepseekMoe::~CudaDeepseekMoe() { release_stream(); }

void CudaDeepseekMoe::create_side_streams(int n) {
    if (n <= 0 || moe_layers_.empty()) return;
    check(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming), "creating an event");
    for (int i = 0; i < n; ++i) {
        SideStream& sd = side_.emplace_back();
        check(cudaStreamCreateWithFlags(&sd.stream, cudaStreamNonBlocking), "creating an expert stream");
        check(cudaEventCreateWithFlags(&sd.done, cudaEventDisableTiming), "creating an event");
        sd.blas = std::make_unique<launch::Blas>(sd.stream);
        sd.blas->set_split_activations(blas_->split_activations());
    }
}

void CudaDeepseekMoe::release_stream() noexcept {
    if (stream_) cudaStreamSynchronize(stream_);
    for (SideStream& sd : side_) {
        if (sd.stream) cudaStreamSynchronize(sd.stream);
        sd.blas.reset();
        if (sd.done) cudaEventDestroy(sd.done);
        if (sd.stream) cudaStreamDestroy(sd.stream);
    }
    side_.clear();
    if (fork_) cudaEventDestroy(fork_);
    fork_ = nullptr;
    if (offsets_ready_) cudaEventDestroy(offsets_ready_);
    offsets_ready_ = nullptr;
    if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
    graph_exec_ = nullptr;
    blas_.reset();
    routing_.reset();
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = nullptr;
}

CudaDeepseekMoe::Step CudaDeepseekMoe::carve(void* base, int64_t T, int64_t k, int64_t logit_rows,
                                             std::size_t* bytes) const {
    const ModelConfig& c = config_;
    const auto t = static_cast<size_t>(T), tk = static_cast<size_t>(T * k), H = static_cast<size_t>(c.hidden_size);
    const auto E = static_cast<size_t>(c.n_routed_experts), F = static_cast<size_t>(c.moe_intermediate_size);
    const auto qdim = static_cast<size_t>(c.num_attention_heads * c.head_dim), W = static_cast<size_t>(max_width_);
    const auto half = static_cast<size_t>(c.head_dim / 2);
    // The experts' products' rows: one per slot, and the padding of batched products.
    const auto rk = static_cast<size_t>(expert_rows_capacity(T * k, c.n_routed_experts));
    Carver cv(base);
    Step s{};
    s.x = cv.take<float>(t * H);
    s.normed = cv.take<float>(t * H);
    s.branch = cv.take<float>(t * H);
    s.base = cv.take<float>(t * H);
    s.q = cv.take<float>(t * qdim);
    s.attn = cv.take<float>(t * qdim);
    s.ffn_g = cv.take<float>(t * 2 * W);  // [T, W] each, or gate and up side by side [T, 2W]
    s.ffn_u = s.ffn_g ? s.ffn_g + t * W : nullptr;
    s.ffn_h = cv.take<float>(t * W);
    s.router_logits = cv.take<float>(t * E);
    s.lowp = cv.take<uint16_t>(2 * std::max(t * static_cast<size_t>(max_in_), rk * std::max(H, F)));  // hi and lo
    s.experts = cv.take<int32_t>(tk);
    s.weights = cv.take<float>(tk);
    s.entropy = cv.take<float>(t);
    s.mass = cv.take<float>(t);
    s.margin = cv.take<float>(t);
    s.route_scratch = cv.take<unsigned char>(static_cast<size_t>(
        launch::route_scratch_bytes(T, c.n_routed_experts, std::max<int64_t>(c.n_group, 1))));
    s.keys = cv.take<uint64_t>(t * std::max<size_t>(moe_layers_.size(), 1));
    s.counts = cv.take<unsigned long long>(E + 1);
    s.offsets = cv.take<int64_t>(E + 1);
    s.rows = cv.take<int64_t>(tk);
    s.rows_lo = cv.take<int64_t>(stacked_parts_ ? tk : 0);
    s.row_slot = cv.take<int64_t>(tk);
    s.padded = cv.take<int64_t>(E + 1);
    s.tables = cv.take<void*>(kBatchTables * E);
    s.gathered = cv.take<float>(rk * H);
    // The experts' outputs: rows of both parts with stacked parts.
    const size_t ro = stacked_parts_ ? 2 * rk : rk;
    s.eg = cv.take<float>(ro * 2 * F);  // [rows, F] each, or gate and up side by side [rows, 2F]
    s.eu = s.eg ? s.eg + rk * F : nullptr;
    s.eh = cv.take<float>(rk * F);
    s.results = cv.take<float>(ro * H);
    s.logits = cv.take<float>(static_cast<size_t>(logit_rows) * static_cast<size_t>(c.vocab_size));
    s.rope_cos = cv.take<float>(t * half);
    s.rope_sin = cv.take<float>(t * half);
    s.kv_new = cv.take<float>(kv_type_ == KvType::bf16 ? 2 * t * static_cast<size_t>(c.num_key_value_heads * c.head_dim) : 0);
    s.ids = cv.take<int32_t>(t);
    s.targets = cv.take<int32_t>(t);
    s.scores = cv.take<launch::DeviceRowScore>(t);
    s.pos = cv.take<int64_t>(1);
    if (bytes) *bytes = cv.used();
    return s;
}

int64_t CudaDeepseekMoe::expert_rows_capacity(int64_t n_slots, int64_t n_expert) {
    return launch::batched_expert_products() ? dispatch::padded_capacity(n_slots, n_expert, launch::expert_row_pad())
                                             : n_slots;
}

void CudaDeepseekMoe::ensure_workspace(int64_t T, int64_t k, int64_t logit_rows, int64_t host_logit_rows) const {
    const int64_t n_moe = static_cast<int64_t>(moe_layers_.size());
    if (T > ws_tokens_ || k > ws_k_ || logit_rows > ws_logit_rows_) {
        const int64_t nt = std::max(T, ws_tokens_), nk = std::max(k, ws_k_), nl = std::max(logit_rows, ws_logit_rows_);
        std::size_t bytes = 0;
        carve(nullptr, nt, nk, nl, &bytes);
        if (stream_) check(cudaStreamSynchronize(stream_), "finishing the previous step");
        workspace_.reset();
        workspace_bytes_ = 0;
        workspace_.reset(device_alloc_for(bytes, "a step of " + std::to_string(nt) + " tokens"));
        workspace_bytes_ = bytes;
        ws_tokens_ = nt;
        ws_k_ = nk;
        ws_logit_rows_ = nl;
    }
    // Pinned: the step's host inputs, the logits it hands back, its rows' scores.
    if (T > pin_tokens_ || host_logit_rows > pin_logit_rows_) {
        const int64_t nt = std::max(T, pin_tokens_), nl = std::max(host_logit_rows, pin_logit_rows_);
        if (stream_) check(cudaStreamSynchronize(stream_), "finishing the previous step");
        void* p = nullptr;
        pinned_.reset();
        pin_tokens_ = pin_logit_rows_ = 0;
        check(cudaMallocHost(&p, carve_inputs(nullptr, nt, nl).bytes), "allocating pinned host memory");
        pinned_.reset(p);
        pin_tokens_ = nt;
        pin_logit_rows_ = nl;
    }
    if (T > routing_tokens_ && n_moe > 0) {
        if (stream_) check(cudaStreamSynchronize(stream_), "finishing the previous step");
        routing_ = std::make_unique<RoutingBuffer>(moe_layers_, std::max(T, routing_tokens_), config_.n_routed_experts);
        routing_tokens_ = std::max(T, routing_tokens_);
    }
}

void* CudaDeepseekMoe::attention_scratch(int64_t T, int64_t pos0) const {
    if (prefill_attention_ == PrefillAttention::tiles || attention_math_ == AttentionMath::f32) return nullptr;
    const ModelConfig& c = config_;
    const std::size_t bytes =
        launch::pipelined_attention_scratch(T, c.num_attention_heads, c.num_key_value_heads, c.head_dim, pos0,
                                            attention_math_ == AttentionMath::split_bf16, kv_type_);
    if (bytes > attn_scratch_bytes_) {
        if (stream_) check(cudaStreamSynchronize(stream_), "finishing the previous step");
        attn_scratch_.reset();
        attn_scratch_bytes_ = 0;
        attn_scratch_.reset(device_alloc_for(bytes, "the attention of " + std::to_string(pos0 + T) + " positions"));
        attn_scratch_bytes_ = bytes;
    }
    return attn_scratch_.get();
}

DeviceCache& CudaDeepseekMoe::device_cache(KvCache& cache, int64_t positions) const {
    auto* dc = dynamic_cast<DeviceCache*>(cache.backend_state());
    if (!dc) {
        if (cache.length() > 0 || cache.backend_state())
            throw Error(ErrorKind::input, "a KV cache of another backend was given to the CUDA model");
        auto fresh = std::make_unique<DeviceCache>();
        fresh->n_layers = config_.num_hidden_layers;
        fresh->kv_dim = config_.num_key_value_heads * config_.head_dim;
        fresh->type = kv_type_;
        fresh->live = kv_live_;
        dc = fresh.get();
        cache.set_backend_state(std::move(fresh));
    }
    // A cache another CUDA model made: its layout (and the scratch sized from this model's
    // cache type) would not fit.
    if (dc->type != kv_type_ || dc->n_layers != config_.num_hidden_layers ||
        dc->kv_dim != config_.num_key_value_heads * config_.head_dim)
        throw Error(ErrorKind::input, "a KV cache of another model (or KV cache type) was given to the CUDA model");
    if (positions <= dc->capacity) return *dc;
    // Grow: room for the context length at once when it fits (decode then never allocates),
    // else doubling.
    int64_t cap = std::max<int64_t>(positions, std::max<int64_t>(256, dc->capacity * 2));
    cap = std::max(cap, std::min<int64_t>(config_.max_position_embeddings, 4096));
    const std::size_t bytes = static_cast<std::size_t>(cap * dc->kv_dim * 2 * dc->n_layers) * dc->element();
    DeviceMem grown(device_alloc_for(bytes, "the KV cache (" + std::to_string(cap) + " positions)"));
    const int64_t keep = cache.length();
    for (int64_t l = 0; l < dc->n_layers && keep > 0; ++l)
        for (int kv = 0; kv < 2; ++kv) {
            const std::size_t el = dc->element();
            const char* src = static_cast<const char*>(dc->mem.get()) + (2 * l + kv) * dc->capacity * dc->kv_dim * el;
            char* dst = static_cast<char*>(grown.get()) + (2 * l + kv) * cap * dc->kv_dim * el;
            check(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(keep * dc->kv_dim) * el,
                                  cudaMemcpyDeviceToDevice, stream_),
                  "growing the KV cache");
        }
    check(cudaStreamSynchronize(stream_), "growing the KV cache");
    *kv_live_ -= dc->bytes();
    dc->mem = std::move(grown);
    dc->capacity = cap;
    *kv_live_ += dc->bytes();
    return *dc;
}

void CudaDeepseekMoe::upload_mask(const ExpertMask* mask) const {
    const std::string key = mask && !mask->empty() ? mask->spec() + "|" + mask_mode_name(mask->mode()) : "";
    if (key == mask_uploaded_) return;
    const int64_t E = config_.n_routed_experts;
    std::vector<uint8_t> host(moe_layers_.size() * static_cast<size_t>(E), 0);
    for (size_t m = 0; m < moe_layers_.size(); ++m)
        if (const LayerIntervention* li = mask ? mask->layer(moe_layers_[m]) : nullptr)
            std::copy(li->disabled.begin(), li->disabled.end(), host.begin() + static_cast<std::ptrdiff_t>(m * E));
    check(cudaStreamSynchronize(stream_), "finishing the previous step");
    if (!host.empty()) check(cudaMemcpy(disabled_, host.data(), host.size(), cudaMemcpyHostToDevice), "copying the mask");
    mask_uploaded_ = key;
}

}  // namespace detail

namespace {

std::unique_ptr<Model> factory(const ModelConfig& config, std::shared_ptr<TensorSource> tensors, const LoadOptions& opt) {
    return make_cuda_model(config, std::move(tensors), opt);
}

}  // namespace

void register_backend() { moe::register_backend(Backend::cuda, &factory); }

std::unique_ptr<Model> make_cuda_model(const ModelConfig& config, std::shared_ptr<TensorSource> tensors,
                                       const LoadOptions& opt) {
    LoadOptions o = opt;
    o.threads = 1;  // the host side of a device step is one thread
    return std::make_unique<detail::CudaDeepseekMoe>(config, std::move(tensors), o);
}

}  // namespace moe::cuda

