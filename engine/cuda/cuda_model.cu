// The DeepSeekMoE forward pass on the device; see cuda_model.h. The step mirrors the CPU
// backend (engine/models/deepseek_moe.cpp, engine/cpu/moe_block.cpp) operation by operation:
// the same RMSNorm, rotary tables, router (engine/router_core.h), dispatch order and combine
// order; the products run on cuBLAS with activations rounded to the weights' 16-bit type.
#include "engine/cuda/cuda_model.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/cpu/ops.h"
#include "engine/cuda/device.h"
#include "engine/cuda/device_weights.h"
#include "engine/cuda/expert_kernels.h"
#include "engine/cuda/launch.h"
#include "engine/cuda/routing_buffer.h"
#include "engine/error.h"
#include "engine/models/deepseek_common.h"
#include "engine/models/deepseek_names.h"
#include "engine/random_weights.h"
#include "engine/router.h"

namespace moe::cuda {

namespace {

namespace names = deepseek_names;

// cudaMalloc, refused with the bytes needed and free when the device has too little.
void* device_alloc_for(std::size_t bytes, const std::string& what) {
    if (!bytes) return nullptr;
    require_device_memory(bytes, "backend cuda", what);
    void* p = nullptr;
    check(cudaMalloc(&p, bytes), ("allocating device memory for " + what).c_str());
    return p;
}

struct DeviceDeleter {
    void operator()(void* p) const { cudaFree(p); }
};
struct PinnedDeleter {
    void operator()(void* p) const { cudaFreeHost(p); }
};
using DeviceMem = std::unique_ptr<void, DeviceDeleter>;
using PinnedMem = std::unique_ptr<void, PinnedDeleter>;

// Bump allocation inside one block of memory, 256-byte aligned pieces.
class Carver {
public:
    explicit Carver(void* base) : base_(static_cast<unsigned char*>(base)) {}
    template <typename T>
    T* take(std::size_t n) {
        T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
        used_ += (n * sizeof(T) + 255) / 256 * 256;
        return p;
    }
    std::size_t used() const { return used_; }

private:
    unsigned char* base_;
    std::size_t used_ = 0;
};

struct Linear {
    const void* w = nullptr;
    DType type = DType::bf16;
    int64_t out = 0, in = 0;
};
struct Ffn {
    Linear gate, up, down;
};
struct MoeLayer {
    int64_t index = 0;               // position among the MoE layers
    const float* router = nullptr;   // [E, H] f32
    std::vector<Ffn> experts;
    DType expert_type = DType::bf16;
    const void* const* gate_table = nullptr;  // [E] device pointers
    const void* const* up_table = nullptr;
    const void* const* down_table = nullptr;
    bool has_shared = false;
    Ffn shared;
};
struct Layer {
    const float* attn_norm = nullptr;  // [H] f32
    const float* ffn_norm = nullptr;
    Linear q, k, v, o;
    bool is_moe = false;
    Ffn mlp;
    MoeLayer moe;
};

// The KV cache of one sequence on the device: per layer keys then values, [capacity, kv_dim].
struct DeviceCache : KvCache::BackendState {
    DeviceMem mem;
    int64_t capacity = 0, n_layers = 0, kv_dim = 0;
    std::shared_ptr<std::atomic<std::size_t>> live;  // the model's count of KV bytes held
    std::size_t bytes() const override { return static_cast<std::size_t>(capacity * kv_dim * 2 * n_layers) * sizeof(float); }
    ~DeviceCache() override {
        if (live) *live -= bytes();
    }
    float* keys(int64_t layer) const { return static_cast<float*>(mem.get()) + (2 * layer) * capacity * kv_dim; }
    float* values(int64_t layer) const { return static_cast<float*>(mem.get()) + (2 * layer + 1) * capacity * kv_dim; }
};

// The binder's view of random weights: a matrix still to be made is seen by name, type and
// shape only (its bytes are made on the device); vectors are made on the host as read.
class ShapesFirst : public TensorSource {
public:
    explicit ShapesFirst(const RandomTensors& r) : r_(r) {}
    const TensorView* find(const std::string& name) const override {
        const TensorView* v = r_.shape_of(name);
        if (v && v->shape.size() >= 2 && r_.pending(name)) return v;
        return r_.find(name);
    }
    std::vector<std::string> names() const override { return r_.names(); }
    std::string describe() const override { return r_.describe(); }
    std::string file_of(const std::string& name) const override { return r_.file_of(name); }
    size_t weight_bytes() const override { return r_.weight_bytes(); }

private:
    const RandomTensors& r_;
};

class CudaDeepseekMoe : public Model {
public:
    CudaDeepseekMoe(const ModelConfig& c, std::shared_ptr<TensorSource> t, const LoadOptions& o);
    ~CudaDeepseekMoe() override;
    void forward(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
                 std::vector<float>& logits) const override;
    KvCache make_cache() const override { return KvCache(0, config_.num_key_value_heads * config_.head_dim); }
    Backend backend() const override { return Backend::cuda; }
    bool uses_cuda_graphs() const override {
        std::lock_guard lock(forward_mutex_);
        return use_graphs_ && !graphs_failed_;
    }
    DeviceMemory device_memory() const override {
        std::lock_guard lock(forward_mutex_);
        return {device_name_, weights_->bytes() + aux_bytes_, kv_live_->load(), workspace_bytes_};
    }

private:
    // Pieces of the workspace for a step of T tokens with at most k experts each.
    struct Step {
        float *x, *normed, *branch, *base, *q, *attn, *ffn_g, *ffn_u, *ffn_h, *router_logits;
        void* lowp;
        int32_t* experts;
        float *weights, *entropy, *mass, *margin;
        void* route_scratch;
        uint64_t* keys;
        unsigned long long* counts;
        int64_t *offsets, *rows, *row_slot;
        float *gathered, *eg, *eu, *eh, *results, *logits, *rope_cos, *rope_sin, *k_new, *v_new;
        int32_t* ids;
        int64_t* pos;
    };
    static constexpr int64_t kSmallStep = 64;  // token-expert slots run as per-slot products
    Step carve(void* base, int64_t T, int64_t k, std::size_t* bytes) const;
    void ensure_workspace(int64_t T, int64_t k) const;
    DeviceCache& device_cache(KvCache& cache, int64_t positions) const;
    void upload_mask(const ExpertMask* mask) const;
    struct HostInputs {
        int32_t* ids;
        int64_t* pos;
        float *cos, *sin;
        uint64_t* keys;
        float* logits;
        std::size_t bytes;
    };
    HostInputs carve_inputs(void* base, int64_t T) const;
    bool host_inputs(std::span<const int32_t> ids, int64_t pos0, const ForwardOptions& opt, HostInputs h) const;
    void copy_inputs(const HostInputs& h, int64_t T, const Step& s, bool keys) const;
    void enqueue_layers(int64_t T, int64_t pos0, const Step& s, const DeviceCache& dc, const ForwardOptions& opt,
                        bool device_pos) const;
    bool decode_with_graph(int32_t id, int64_t pos0, const DeviceCache& dc, const ForwardOptions& opt, const Step& s,
                           std::vector<float>& logits) const;
    void record_routing(int64_t layer, const ForwardOptions& opt, const launch::RouteOutputs& routed) const;
    void feed_forward(const Layer& L, int64_t layer, int64_t T, const ForwardOptions& opt, const Step& s,
                      const launch::RouteOutputs& routed) const;
    void ffn(const Ffn& f, const float* x, int64_t T, float* out, const Step& s) const;
    // A few tokens (decode): our matrix-vector kernel, activations in f32; more: cuBLAS.
    static constexpr int64_t kGemvTokens = 4;
    void linear(const Linear& l, const float* x, int64_t T, float* y, int64_t ldy, const Step& s) const {
        if (T <= kGemvTokens)
            launch::gemv(x, T, l.in, l.w, l.type, l.out, y, ldy, stream_);
        else
            blas_->linear(x, T, l.in, l.w, l.type, l.out, y, ldy, s.lowp);
    }

    std::string device_name_;
    cudaStream_t stream_ = nullptr;
    std::unique_ptr<launch::Blas> blas_;
    std::unique_ptr<DeviceWeights> weights_;
    DeviceMem aux_;  // f32 norms and router weights, expert pointer tables, mask arrays, attention splits
    std::size_t aux_bytes_ = 0;
    const void* embed_ = nullptr;
    DType embed_type_ = DType::bf16;
    Linear head_;
    const float* final_norm_ = nullptr;
    std::vector<Layer> layers_;
    std::vector<int64_t> moe_layers_;  // checkpoint indices
    int64_t max_width_ = 0;            // widest feed-forward (dense, shared)
    int64_t max_in_ = 0;               // widest product input
    uint8_t* disabled_ = nullptr;      // [n_moe, E] device: the mask's switched-off experts
    float* attn_partials_ = nullptr;   // a decode step's attention splits (launch::attention)
    std::shared_ptr<std::atomic<std::size_t>> kv_live_ = std::make_shared<std::atomic<std::size_t>>(0);

    // Grown on demand, never shrunk; a step no larger than an earlier one allocates nothing.
    mutable DeviceMem workspace_;
    mutable std::size_t workspace_bytes_ = 0;
    mutable int64_t ws_tokens_ = 0, ws_k_ = 0;
    mutable PinnedMem pinned_;  // ids, rope tables, random keys of a step
    mutable std::unique_ptr<RoutingBuffer> routing_;
    mutable int64_t routing_tokens_ = 0;
    mutable std::string mask_uploaded_ = "";  // spec + mode of the mask in disabled_
    mutable std::vector<int64_t> offsets_host_;
    // Decode (one token) replayed from a CUDA graph, captured again when what it is bound to
    // changes; if capture fails, steps run launch by launch from then on.
    bool use_graphs_ = true;
    PinnedMem decode_pinned_;  // the graph's host inputs and logits
    mutable cudaGraphExec_t graph_exec_ = nullptr;
    mutable std::string graph_key_;
    mutable bool graphs_failed_ = false;
};

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

    // aux: the f32 vectors, then per MoE layer three pointer tables [E], then the mask [n_moe, E].
    std::size_t f32_count = 0;
    for (const auto& v : host_f32) f32_count += v.size();
    Carver sizing(nullptr);
    for (const auto& v : host_f32) sizing.take<float>(v.size());
    for (size_t m = 0; m < moe_layers_.size(); ++m)
        for (int j = 0; j < 3; ++j) sizing.take<const void*>(static_cast<size_t>(E));
    sizing.take<uint8_t>(moe_layers_.size() * static_cast<size_t>(E));
    sizing.take<float>(static_cast<size_t>(launch::attention_partial_floats(nh, hd)));
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
        for (int j = 0; j < 3; ++j) {
            t3[j] = carve.take<const void*>(static_cast<size_t>(E));
            std::vector<const void*> host;
            for (const Ffn& f : m.experts) host.push_back(j == 0 ? f.gate.w : j == 1 ? f.up.w : f.down.w);
            check(cudaMemcpy(t3[j], host.data(), host.size() * sizeof(void*), cudaMemcpyHostToDevice), "copying expert tables");
        }
        m.gate_table = t3[0];
        m.up_table = t3[1];
        m.down_table = t3[2];
    }
    disabled_ = carve.take<uint8_t>(moe_layers_.size() * static_cast<size_t>(E));
    attn_partials_ = carve.take<float>(static_cast<size_t>(launch::attention_partial_floats(nh, hd)));
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating the stream");
    blas_ = std::make_unique<launch::Blas>(stream_);
    blas_->set_split_activations(!o.cuda_bf16_activations);
    use_graphs_ = o.cuda_graphs;
    void* p = nullptr;
    check(cudaMallocHost(&p, carve_inputs(nullptr, 1).bytes), "allocating pinned host memory");
    decode_pinned_.reset(p);
}

CudaDeepseekMoe::~CudaDeepseekMoe() {
    if (stream_) cudaStreamSynchronize(stream_);
    if (graph_exec_) cudaGraphExecDestroy(graph_exec_);
    blas_.reset();
    routing_.reset();
    if (stream_) cudaStreamDestroy(stream_);
}

CudaDeepseekMoe::Step CudaDeepseekMoe::carve(void* base, int64_t T, int64_t k, std::size_t* bytes) const {
    const ModelConfig& c = config_;
    const auto t = static_cast<size_t>(T), tk = static_cast<size_t>(T * k), H = static_cast<size_t>(c.hidden_size);
    const auto E = static_cast<size_t>(c.n_routed_experts), F = static_cast<size_t>(c.moe_intermediate_size);
    const auto qdim = static_cast<size_t>(c.num_attention_heads * c.head_dim), W = static_cast<size_t>(max_width_);
    const auto half = static_cast<size_t>(c.head_dim / 2);
    Carver cv(base);
    Step s{};
    s.x = cv.take<float>(t * H);
    s.normed = cv.take<float>(t * H);
    s.branch = cv.take<float>(t * H);
    s.base = cv.take<float>(t * H);
    s.q = cv.take<float>(t * qdim);
    s.attn = cv.take<float>(t * qdim);
    s.ffn_g = cv.take<float>(t * W);
    s.ffn_u = cv.take<float>(t * W);
    s.ffn_h = cv.take<float>(t * W);
    s.router_logits = cv.take<float>(t * E);
    s.lowp = cv.take<uint16_t>(std::max(t * static_cast<size_t>(max_in_), tk * std::max(H, F)));
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
    s.row_slot = cv.take<int64_t>(tk);
    s.gathered = cv.take<float>(tk * H);
    s.eg = cv.take<float>(tk * F);
    s.eu = cv.take<float>(tk * F);
    s.eh = cv.take<float>(tk * F);
    s.results = cv.take<float>(tk * H);
    s.logits = cv.take<float>(t * static_cast<size_t>(c.vocab_size));
    s.rope_cos = cv.take<float>(t * half);
    s.rope_sin = cv.take<float>(t * half);
    s.ids = cv.take<int32_t>(t);
    s.k_new = cv.take<float>(static_cast<size_t>(c.num_key_value_heads * c.head_dim));
    s.v_new = cv.take<float>(static_cast<size_t>(c.num_key_value_heads * c.head_dim));
    s.pos = cv.take<int64_t>(1);
    if (bytes) *bytes = cv.used();
    return s;
}

void CudaDeepseekMoe::ensure_workspace(int64_t T, int64_t k) const {
    const int64_t n_moe = static_cast<int64_t>(moe_layers_.size());
    if (T > ws_tokens_ || k > ws_k_) {
        const int64_t nt = std::max(T, ws_tokens_), nk = std::max(k, ws_k_);
        std::size_t bytes = 0;
        carve(nullptr, nt, nk, &bytes);
        if (stream_) check(cudaStreamSynchronize(stream_), "finishing the previous step");
        workspace_.reset();
        workspace_bytes_ = 0;
        workspace_.reset(device_alloc_for(bytes, "a step of " + std::to_string(nt) + " tokens"));
        workspace_bytes_ = bytes;
        ws_tokens_ = nt;
        ws_k_ = nk;
        // Pinned: the step's host inputs and its logits.
        const std::size_t pinned = carve_inputs(nullptr, nt).bytes;
        void* p = nullptr;
        pinned_.reset();
        check(cudaMallocHost(&p, pinned), "allocating pinned host memory");
        pinned_.reset(p);
    }
    if (T > routing_tokens_ && n_moe > 0) {
        if (stream_) check(cudaStreamSynchronize(stream_), "finishing the previous step");
        routing_ = std::make_unique<RoutingBuffer>(moe_layers_, std::max(T, routing_tokens_), config_.n_routed_experts);
        routing_tokens_ = std::max(T, routing_tokens_);
    }
}

DeviceCache& CudaDeepseekMoe::device_cache(KvCache& cache, int64_t positions) const {
    auto* dc = dynamic_cast<DeviceCache*>(cache.backend_state());
    if (!dc) {
        if (cache.length() > 0 || cache.backend_state())
            throw Error(ErrorKind::input, "a KV cache of another backend was given to the CUDA model");
        auto fresh = std::make_unique<DeviceCache>();
        fresh->n_layers = config_.num_hidden_layers;
        fresh->kv_dim = config_.num_key_value_heads * config_.head_dim;
        fresh->live = kv_live_;
        dc = fresh.get();
        cache.set_backend_state(std::move(fresh));
    }
    if (positions <= dc->capacity) return *dc;
    // Grow: room for the context length at once when it fits (decode then never allocates),
    // else doubling.
    int64_t cap = std::max<int64_t>(positions, std::max<int64_t>(256, dc->capacity * 2));
    cap = std::max(cap, std::min<int64_t>(config_.max_position_embeddings, 4096));
    const std::size_t bytes = static_cast<std::size_t>(cap * dc->kv_dim * 2 * dc->n_layers) * sizeof(float);
    DeviceMem grown(device_alloc_for(bytes, "the KV cache (" + std::to_string(cap) + " positions)"));
    const int64_t keep = cache.length();
    for (int64_t l = 0; l < dc->n_layers && keep > 0; ++l)
        for (int kv = 0; kv < 2; ++kv) {
            const float* src = static_cast<float*>(dc->mem.get()) + (2 * l + kv) * dc->capacity * dc->kv_dim;
            float* dst = static_cast<float*>(grown.get()) + (2 * l + kv) * cap * dc->kv_dim;
            check(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(keep * dc->kv_dim) * sizeof(float),
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

std::unique_ptr<Model> factory(const ModelConfig& config, std::shared_ptr<TensorSource> tensors, const LoadOptions& opt) {
    return make_cuda_model(config, std::move(tensors), opt);
}

}  // namespace

void register_backend() { moe::register_backend(Backend::cuda, &factory); }

std::unique_ptr<Model> make_cuda_model(const ModelConfig& config, std::shared_ptr<TensorSource> tensors,
                                       const LoadOptions& opt) {
    LoadOptions o = opt;
    o.threads = 1;  // the host side of a device step is one thread
    return std::make_unique<CudaDeepseekMoe>(config, std::move(tensors), o);
}

}  // namespace moe::cuda
