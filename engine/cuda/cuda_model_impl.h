// The CUDA backend's DeepSeekMoE model, inside: its device-side pieces (weights, KV cache,
// workspace) and the class itself, shared by cuda_model.cu (loading, memory) and
// cuda_forward.cu (the forward step, CUDA graphs). Not for callers: they use cuda_model.h.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/cpu/ops.h"
#include "engine/cuda/cuda_model.h"
#include "engine/cuda/decode_kernels.h"
#include "engine/cuda/device.h"
#include "engine/cuda/device_weights.h"
#include "engine/cuda/expert_kernels.h"
#include "engine/cuda/launch.h"
#include "engine/cuda/routing_buffer.h"
#include "engine/cuda/score_kernels.h"
#include "engine/cuda/stage_clock.h"
#include "engine/error.h"
#include "engine/expert_streams.h"
#include "engine/models/deepseek_common.h"
#include "engine/models/deepseek_names.h"
#include "engine/random_weights.h"
#include "engine/router.h"

namespace moe::cuda::detail {

namespace names = deepseek_names;

// cudaMalloc, refused with the bytes needed and free when the device has too little.
inline void* device_alloc_for(std::size_t bytes, const std::string& what) {
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
    // The same weights as the TMA's tensor maps for the Hopper kernel (launch::write_expert_maps;
    // gate's of 2F rows where gate and up lie side by side), or null.
    const void* gate_maps = nullptr;
    const void* up_maps = nullptr;
    const void* down_maps = nullptr;
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

// The KV cache of one sequence on the device: per layer keys then values, [capacity, kv_dim],
// of f32 or BF16 (KvType, the model's choice).
struct DeviceCache : KvCache::BackendState {
    DeviceMem mem;
    int64_t capacity = 0, n_layers = 0, kv_dim = 0;
    KvType type = KvType::f32;
    std::shared_ptr<std::atomic<std::size_t>> live;  // the model's count of KV bytes held
    std::size_t element() const { return type == KvType::bf16 ? 2 : sizeof(float); }
    std::size_t bytes() const override { return static_cast<std::size_t>(capacity * kv_dim * 2 * n_layers) * element(); }
    ~DeviceCache() override {
        if (live) *live -= bytes();
    }
    // Layer `layer`'s keys (part 0) or values (part 1) from position `row` on.
    void* at(int64_t layer, int part, int64_t row = 0) const {
        return static_cast<char*>(mem.get()) + ((2 * layer + part) * capacity + row) * kv_dim * static_cast<int64_t>(element());
    }
    void* keys(int64_t layer) const { return at(layer, 0); }
    void* values(int64_t layer) const { return at(layer, 1); }
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
    // The rows scored on the device (launch::score_rows), the banks in device memory
    // (cuda_scoring.cu).
    void forward_scored(std::span<const int32_t> ids, KvCache& cache, const ForwardOptions& opt,
                        const ScoreRequest& req, std::vector<RowScore>& scores) const override;
    std::unique_ptr<ScoreBank> make_score_bank(int64_t rows) const override;
    Backend backend() const override { return Backend::cuda; }
    std::string backend_label() const override {
        return std::string(bf16_activations_ ? "cuda-bf16" : "cuda") + (kv_type_ == KvType::bf16 ? "-kv-bf16" : "");
    }
    int64_t step_tokens() const override { return 2048; }
    bool uses_cuda_graphs() const override {
        std::lock_guard lock(forward_mutex_);
        return use_graphs_ && !graphs_failed_;
    }
    DeviceMemory device_memory() const override {
        std::lock_guard lock(forward_mutex_);
        return {device_name_, weights_->bytes() + aux_bytes_, kv_live_->load(), workspace_bytes_ + attn_scratch_bytes_};
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
        int64_t* rows_lo;  // [T·k] each slot's lo part's row of a stacked layout (stacked_parts_)
        int64_t* padded;  // [E+1] the padded layout of batched experts' products (dispatch::plan_batches)
        void** tables;    // [kBatchTables, E] their pointer arrays (batch_tables)
        float *gathered, *eg, *eu, *eh, *results, *logits, *rope_cos, *rope_sin;
        float* kv_new;  // a BF16 cache's new keys then values [2, T, kv_dim] in f32, before they are stored
        int32_t* ids;
        int64_t* pos;
        int32_t* targets;  // a scored step's (forward_scored)
        launch::DeviceRowScore* scores;
    };
    static constexpr int64_t kSmallStep = 64;  // token-expert slots run as per-slot products
    // Batched experts' products (launch::batched_expert_products): each expert's rows padded to
    // a multiple of launch::expert_row_pad(); the step's rows of the experts' products, padding
    // included.
    static int64_t expert_rows_capacity(int64_t n_slots, int64_t n_expert);
    // (logit_rows: the rows of logits the step makes, T or, with the last position's alone, 1;
    // host_logit_rows: those copied back to the host, none for a scored step.)
    Step carve(void* base, int64_t T, int64_t k, int64_t logit_rows, std::size_t* bytes) const;
    void ensure_workspace(int64_t T, int64_t k, int64_t logit_rows, int64_t host_logit_rows) const;
    DeviceCache& device_cache(KvCache& cache, int64_t positions) const;
    void upload_mask(const ExpertMask* mask) const;
    struct HostInputs {
        int32_t* ids;
        int64_t* pos;
        float *cos, *sin;
        uint64_t* keys;
        float* logits;
        int32_t* targets;
        launch::DeviceRowScore* scores;
        std::size_t bytes;
    };
    HostInputs carve_inputs(void* base, int64_t T, int64_t logit_rows) const;
    bool host_inputs(std::span<const int32_t> ids, int64_t pos0, const ForwardOptions& opt, HostInputs h) const;
    void copy_inputs(const HostInputs& h, int64_t T, const Step& s, bool keys) const;
    // The start of a step of T tokens after what `cache` holds (the forward mutex held): the
    // device selected, the workspace (with room for logit_rows rows of logits, host_logit_rows
    // of them in pinned host memory), the mask and the KV cache (dc) ready; the workspace's
    // pieces. And its end: the stream waited for, the stage profile closed, the routing handed
    // to the observer, the cache's length set.
    Step begin_step(int64_t T, KvCache& cache, const ForwardOptions& opt, int64_t logit_rows, int64_t host_logit_rows,
                    DeviceCache*& dc) const;
    void finish_step(const ForwardOptions& opt, KvCache& cache, int64_t length, const char* what) const;
    // A step enqueued launch by launch up to its logits in s.logits: its host inputs made and
    // copied, its stage profile begun, its routing asked for, its layers.
    void enqueue_step(std::span<const int32_t> ids, int64_t pos0, const DeviceCache& dc, const ForwardOptions& opt,
                      const Step& s, const HostInputs& h) const;
    void enqueue_layers(int64_t T, int64_t pos0, const Step& s, const DeviceCache& dc, const ForwardOptions& opt,
                        bool device_pos) const;
    bool decode_with_graph(int32_t id, int64_t pos0, const DeviceCache& dc, const ForwardOptions& opt, const Step& s,
                           std::vector<float>& logits) const;
    void record_routing(int64_t layer, const ForwardOptions& opt, const launch::RouteOutputs& routed) const;
    void feed_forward(const Layer& L, int64_t layer, int64_t T, const ForwardOptions& opt, const Step& s,
                      const launch::RouteOutputs& routed) const;
    // A MoE layer's routing of the router logits in s.router_logits: where the outputs went,
    // the layer's k and its dropped experts (drop mode).
    struct Routed {
        launch::RouteOutputs out;
        int64_t k = 0;
        const uint8_t* dropped = nullptr;
    };
    // Whether the layer's shared experts run in this step (they exist, the mask keeps them).
    static bool shared_runs(const MoeLayer& m, int64_t layer, const ForwardOptions& opt);
    Routed route_layer(const MoeLayer& m, int64_t layer, int64_t T, const ForwardOptions& opt, const Step& s,
                       const launch::RouteOutputs& routed) const;
    // What route_layer launches the router with (args; keys of skip-random or null) and where
    // its outputs go, nothing enqueued.
    Routed plan_route(const MoeLayer& m, int64_t layer, int64_t T, const ForwardOptions& opt, const Step& s,
                      const launch::RouteOutputs& routed, router_core::Args& args, const uint64_t*& keys) const;
    // The most experts per token any layer of the step routes to.
    int64_t k_max(const ForwardOptions& opt) const;
    // Steps of a few tokens run each layer in fused launches (small_layer).
    bool small_step(int64_t T, const ForwardOptions& opt) const;
    void small_layer(const Layer& L, int64_t layer, int64_t T, int64_t pos0, const Step& s, const DeviceCache& dc,
                     const ForwardOptions& opt, bool device_pos, const launch::RouteOutputs& routed) const;
    // A one-token step's layer as one cooperative launch (launch::decode_layer) where
    // layer_kernel_ asks for it and it can run the layer; whether it did.
    bool layer_in_one_launch(const Layer& L, int64_t layer, int64_t T, int64_t pos0, const Step& s,
                             const DeviceCache& dc, const ForwardOptions& opt, bool device_pos,
                             const launch::RouteOutputs& routed) const;
    // A one-token step's layer as the one-launch kernels take it (d), and where its routing
    // goes (out); false where they cannot take it (a random skip among the experts).
    bool one_launch_args(const Layer& L, int64_t layer, int64_t pos0, const Step& s, const DeviceCache& dc,
                         const ForwardOptions& opt, bool device_pos, const launch::RouteOutputs& routed,
                         launch::DecodeLayer& d, launch::RouteOutputs& out) const;
    // A one-token step's layers in the stream kernel (stream_kernel_), those it cannot run
    // launch by launch.
    void stream_layers(int64_t pos0, const Step& s, const DeviceCache& dc, const ForwardOptions& opt, bool device_pos,
                       const launch::RouteOutputs& routed) const;
    // The first n layers of one half of the stream kernel's table (the graph's, or the
    // launch-by-launch steps') copied to the device on the stream.
    void upload_stream_table(bool graph, int n) const;
    static launch::GemvPart part(const Linear& l, float* y, int64_t ldy, bool accumulate = false);
    static launch::GemvPart gated_part(const Ffn& f, float* y);
    void ffn(const Ffn& f, const float* x, int64_t T, float* out, const Step& s) const;
    // Steps of many tokens with 16-bit weights: activations rounded once for several products
    // (launch::round_split), a feed-forward's gate and up made as one product [n, 2F] when they
    // lie side by side on the device (adjacent), as two into its halves otherwise.
    static bool adjacent(const Ffn& f);
    static bool rounds_once(const Ffn& f);
    static void gate_up_rounded(launch::Blas& blas, const Ffn& f, const uint16_t* hi, const uint16_t* lo, int64_t n, float* y);
    // fn(e, blas) for each expert e with rows in the step's dispatch (offsets_host_), enqueued
    // on the side streams (dispatch::spread_experts) after what stream_ holds, and joined back
    // into stream_; all on stream_ without side streams.
    void for_experts(const std::function<void(int64_t, launch::Blas&)>& fn) const;
    // Whether a MoE layer's routed experts run as launch::expert_products (BF16, shapes it
    // takes, every matrix 16-byte aligned; launch::grouped_expert_products); and whether each
    // expert's up matrix follows its gate matrix (one product of 2F outputs).
    bool grouped(const MoeLayer& m) const;
    static bool all_adjacent(const MoeLayer& m);
    // Whether every expert of a MoE layer has the first one's shapes and rounds its
    // activations once (rounds_once).
    static bool uniform_experts(const MoeLayer& m);
    // Whether every routed expert's weights start on 16 bytes.
    static bool experts_aligned(const MoeLayer& m);
    // Whether a MoE layer's routed experts run as cuBLAS batched products over the padded layout.
    static bool batched(const MoeLayer& m);
    // The padded layout of a plan uploaded into s.padded, and the pointer arrays of its batched
    // products into s.tables: one row of E per kind (BatchTable), each row's experts in the
    // order of the plan's batches.
    enum BatchTable : int { kGateW, kUpW, kDownW, kXHi, kXLo, kHHi, kHLo, kGateY, kUpY, kDownY, kBatchTables };
    // With stacked_parts_, both parts' rows in hi's stacked layout (lo null), and the products'
    // outputs of twice the rows.
    void batch_tables(const MoeLayer& m, const dispatch::BatchPlan& plan, const uint16_t* hi, const uint16_t* lo,
                      const Step& s) const;
    // fn(batch, index of its first member in the tables, blas) for each batch of the plan, on
    // the side streams as for_experts.
    void for_batches(const dispatch::BatchPlan& plan,
                     const std::function<void(const dispatch::ExpertBatch&, int64_t, launch::Blas&)>& fn) const;
    // jobs (index, side stream) enqueued as fn(index, blas) on the side streams after what
    // stream_ holds and joined back into stream_; all on stream_ without side streams.
    void on_side_streams(const std::vector<std::pair<int64_t, int>>& jobs,
                         const std::function<void(int64_t, launch::Blas&)>& fn) const;
    // A few tokens (decode): our matrix-vector kernel, activations in f32; more: cuBLAS.
    static constexpr int64_t kGemvTokens = 4;
    void linear(const Linear& l, const float* x, int64_t T, float* y, int64_t ldy, const Step& s) const {
        if (T <= kGemvTokens)
            launch::gemv(x, T, l.in, l.w, l.type, l.out, y, ldy, stream_);
        else
            blas_->linear(x, T, l.in, l.w, l.type, l.out, y, ldy, s.lowp);
    }

    // Streams beside stream_ for the routed experts' products of a step of many tokens, each
    // with its own cuBLAS handle (MOEWB_CUDA_EXPERT_STREAMS, default 4; 0: none): one expert's
    // product holds a fraction of the device, several run at once.
    struct SideStream {
        cudaStream_t stream = nullptr;
        std::unique_ptr<launch::Blas> blas;
        cudaEvent_t done = nullptr;
    };
    std::vector<SideStream> side_;
    cudaEvent_t fork_ = nullptr;
    void create_side_streams(int n);
    // The arithmetic of prefill attention: f32 for F32 weights, else split or BF16 as the
    // activations are (AttentionMath).
    AttentionMath attention_math_ = AttentionMath::f32;
    // The tensor-core prefill's kernel (launch::pipelined_attention_asked), and its scratch for
    // a step of T tokens from pos0 (grown on demand; null for the tiles kernel).
    PrefillAttention prefill_attention_ = PrefillAttention::tiles;
    mutable DeviceMem attn_scratch_;
    mutable std::size_t attn_scratch_bytes_ = 0;
    void* attention_scratch(int64_t T, int64_t pos0) const;
    // The decode split's kernel (launch::decode_attention_asked).
    DecodeAttention decode_attention_ = DecodeAttention::scalar;
    // What the KV caches hold (launch::kv_cache_asked).
    KvType kv_type_ = KvType::f32;
    // Whether a small step's q and k products apply the rotary embedding (launch::fused_rope_asked).
    bool fused_rope_ = false;
    // Whether a one-token step runs each layer as one launch (launch::layer_kernel_asked).
    bool layer_kernel_ = false;
    // Whether it runs its layers in the stream kernel instead (launch::stream_kernel_asked), a
    // run of consecutive layers a launch (stream_step_) or a layer a launch; its counters
    // (kStreamCounters a layer, in aux_) and the table of the layers' arguments: on the device
    // (in aux_) and, pinned, on the host, each in two halves, the launch-by-launch steps' and
    // the graph's (which its capture writes; copied to the device once, after the capture:
    // stream_table_pending_ layers of it, 0 once copied).
    bool stream_kernel_ = false;
    bool stream_step_ = false;
    unsigned* stream_sync_ = nullptr;
    unsigned char* stream_table_ = nullptr;
    PinnedMem stream_table_host_;
    mutable int stream_table_pending_ = 0;
    // Whether a small step's experts' gate and up launch routes the tokens itself
    // (launch::route_in_experts_asked).
    bool route_in_experts_ = false;
    // Whether batched experts' products take the hi and lo parts of exact activations as the
    // rows of one product (launch::stacked_expert_parts and split activations): the step's
    // expert outputs then have twice the rows.
    bool stacked_parts_ = false;

    // Waits for the streams, then frees what is bound to them and the streams themselves.
    void release_stream() noexcept;

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
    mutable int64_t ws_tokens_ = 0, ws_k_ = 0, ws_logit_rows_ = 0;
    mutable PinnedMem pinned_;  // ids, rope tables, random keys, logits, targets and scores of a step
    mutable int64_t pin_tokens_ = 0, pin_logit_rows_ = 0;
    mutable std::unique_ptr<RoutingBuffer> routing_;
    mutable int64_t routing_tokens_ = 0;
    mutable std::string mask_uploaded_ = "";  // spec + mode of the mask in disabled_
    mutable std::vector<int64_t> offsets_host_;
    PinnedMem offsets_pinned_;             // [E+1]: a large step's expert offsets, read from the device
    cudaEvent_t offsets_ready_ = nullptr;  // recorded after that read
    // Pinned: a batched step's padded layout [E+1] then its pointer arrays [kBatchTables, E],
    // before their upload (pinned, so that the upload does not wait for the stream).
    PinnedMem plan_pinned_;
    // Decode (one token) replayed from a CUDA graph, captured again when what it is bound to
    // changes; if capture fails, steps run launch by launch from then on.
    bool use_graphs_ = true;
    bool bf16_activations_ = false;  // LoadOptions::cuda_bf16_activations
    PinnedMem decode_pinned_;  // the graph's host inputs and logits
    mutable cudaGraphExec_t graph_exec_ = nullptr;
    mutable std::string graph_key_;
    mutable bool graphs_failed_ = false;
    mutable StageClock stages_;
    void stage(const char* name) const { stages_.mark(name); }
};

}  // namespace moe::cuda::detail
