// RoutingBuffer; see routing_buffer.h.
#include "engine/cuda/routing_buffer.h"

#include <cuda_runtime.h>

#include "engine/cuda/device.h"
#include "engine/error.h"

namespace moe::cuda {

// A layer's slot for a step of T tokens: experts [T, k_max] int32, then weights [T, k_max], then
// entropy, mass, margin [T] f32 each (a layer with k experts uses the first T·k entries of the
// first two), 16-byte aligned. The slots of a step lie one after another from the buffer's
// start, so that the step's copy to the host is of what it holds alone.
std::size_t RoutingBuffer::slot_bytes(int64_t tokens) const {
    const auto tk = static_cast<std::size_t>(tokens * k_max_), t = static_cast<std::size_t>(tokens);
    return (tk * sizeof(int32_t) + tk * sizeof(float) + 3 * t * sizeof(float) + 15) / 16 * 16;
}

RoutingBuffer::RoutingBuffer(std::vector<int64_t> layers, int64_t max_tokens, int64_t k_max)
    : max_tokens_(max_tokens), k_max_(k_max) {
    for (int64_t l : layers) {
        Layer x;
        x.layer = l;
        layers_.push_back(x);
    }
    device_bytes_ = slot_bytes(max_tokens_) * layers_.size();
    try {  // a constructor that throws runs no destructor
        if (device_bytes_) {
            check(cudaMalloc(&device_, device_bytes_), "allocating the routing buffer");
            check(cudaMallocHost(&host_, device_bytes_), "allocating the pinned routing buffer");
        }
        cudaEvent_t e = nullptr;
        check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating the routing event");
        copied_ = e;
    } catch (...) {
        release();
        throw;
    }
}

RoutingBuffer::~RoutingBuffer() { release(); }

void RoutingBuffer::release() noexcept {
    if (copied_) cudaEventDestroy(static_cast<cudaEvent_t>(copied_));
    cudaFreeHost(host_);
    cudaFree(device_);
    copied_ = nullptr;
    host_ = device_ = nullptr;
}

void RoutingBuffer::begin(int64_t pos0, int64_t n_tokens, TokenSource source) {
    if (n_tokens < 0 || n_tokens > max_tokens_)
        throw Error(ErrorKind::input, "routing buffer: a step of " + std::to_string(n_tokens) + " tokens (room for " +
                                          std::to_string(max_tokens_) + ")");
    pos0_ = pos0;
    n_tokens_ = n_tokens;
    source_ = source;
    flushed_ = false;
    for (Layer& l : layers_) l.recorded = false;
}

std::size_t RoutingBuffer::index_of(int64_t layer) const {
    size_t i = 0;
    while (i < layers_.size() && layers_[i].layer != layer) ++i;
    if (i == layers_.size()) throw Error(ErrorKind::input, "routing buffer: layer " + std::to_string(layer) + " is not a MoE layer");
    return i;
}

RouteOutputs RoutingBuffer::slot_at(std::size_t i) const {
    const auto slot_tk = static_cast<std::size_t>(n_tokens_ * k_max_), slot_t = static_cast<std::size_t>(n_tokens_);
    unsigned char* base = device_ + i * slot_bytes(n_tokens_);
    RouteOutputs s;
    s.experts = reinterpret_cast<int32_t*>(base);
    s.weights = reinterpret_cast<float*>(s.experts + slot_tk);
    s.entropy = s.weights + slot_tk;
    s.mass = s.entropy + slot_t;
    s.margin = s.mass + slot_t;
    return s;
}

RouteOutputs RoutingBuffer::slot(int64_t layer) const { return slot_at(index_of(layer)); }

void RoutingBuffer::record(int64_t layer, int64_t k, const int32_t* d_experts, const float* d_weights,
                           const float* d_entropy, const float* d_mass, const float* d_margin, GateWeightKind kind,
                           bool shared_off, float weight_scale, void* stream) {
    const size_t i = index_of(layer);
    if (k < 1 || k > k_max_) throw Error(ErrorKind::input, "routing buffer: k " + std::to_string(k) + " out of range");
    Layer& l = layers_[i];
    l.k = k;
    l.kind = kind;
    l.shared_off = shared_off;
    l.weight_scale = weight_scale;
    l.has_weights = d_weights != nullptr;
    l.has_entropy = d_entropy != nullptr;
    l.has_mass = d_mass != nullptr;
    l.has_margin = d_margin != nullptr;
    l.recorded = true;
    if (replay_) return;
    const auto s = static_cast<cudaStream_t>(stream);
    const auto tk = static_cast<std::size_t>(n_tokens_ * k), t = static_cast<std::size_t>(n_tokens_);
    const RouteOutputs to = slot_at(i);
    // Each part copied unless the router wrote it in place.
    auto copy = [&](void* dst, const void* src, std::size_t bytes) {
        if (src && src != dst && bytes)
            check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s), "recording routing");
    };
    copy(to.experts, d_experts, tk * sizeof(int32_t));
    copy(to.weights, d_weights, tk * sizeof(float));
    copy(to.entropy, d_entropy, t * sizeof(float));
    copy(to.mass, d_mass, t * sizeof(float));
    copy(to.margin, d_margin, t * sizeof(float));
}

void RoutingBuffer::flush(void* stream) {
    const auto s = static_cast<cudaStream_t>(stream);
    flushed_ = true;
    // Replayed: the graph makes the copy; the event marks its end once the launch is enqueued.
    if (replay_) {
        check(cudaEventRecord(static_cast<cudaEvent_t>(copied_), s), "recording the routing copy");
        return;
    }
    const std::size_t bytes = slot_bytes(n_tokens_) * layers_.size();
    if (bytes) check(cudaMemcpyAsync(host_, device_, bytes, cudaMemcpyDeviceToHost, s), "copying routing to the host");
    // While a graph is captured an event record is no real record: the replay's flush makes it.
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    check(cudaStreamIsCapturing(s, &capturing), "asking whether a graph is captured");
    if (capturing == cudaStreamCaptureStatusNone)
        check(cudaEventRecord(static_cast<cudaEvent_t>(copied_), s), "recording the routing copy");
}

void RoutingBuffer::deliver(RoutingObserver& observer) {
    if (!flushed_) throw Error(ErrorKind::input, "routing buffer: deliver before flush");
    check(cudaEventSynchronize(static_cast<cudaEvent_t>(copied_)), "waiting for the routing copy");
    const auto slot_tk = static_cast<std::size_t>(n_tokens_ * k_max_), slot_t = static_cast<std::size_t>(n_tokens_);
    for (size_t i = 0; i < layers_.size(); ++i) {
        const Layer& l = layers_[i];
        if (!l.recorded) continue;
        const unsigned char* base = host_ + i * slot_bytes(n_tokens_);
        const auto* experts = reinterpret_cast<const int32_t*>(base);
        const auto* weights = reinterpret_cast<const float*>(experts + slot_tk);
        const float* entropy = weights + slot_tk;
        const float* mass = entropy + slot_t;
        const float* margin = mass + slot_t;
        RoutingBatch b;
        b.layer = l.layer;
        b.pos0 = pos0_;
        b.n_tokens = n_tokens_;
        b.k = l.k;
        b.source = source_;
        b.weight_kind = l.kind;
        b.shared_off = l.shared_off;
        b.experts = experts;
        b.gate_weights = l.has_weights ? weights : nullptr;
        b.entropy = l.has_entropy ? entropy : nullptr;
        b.selected_mass = l.has_mass ? mass : nullptr;
        b.margin = l.has_margin ? margin : nullptr;
        b.weight_scale = l.weight_scale;
        observer.on_routing(b);
    }
}

}  // namespace moe::cuda
