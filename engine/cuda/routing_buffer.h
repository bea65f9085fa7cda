// The routing observer's side of the CUDA backend: during a forward step each MoE layer's
// routing (expert ids, gate weights, and the router's entropy, selected mass and margin per
// token) is written by the router straight into its layer's part of one step buffer; at the
// end of the step the whole buffer goes to pinned host memory in a single asynchronous copy, and once it has arrived
// every layer is handed to the RoutingObserver as the CPU backend hands it (a RoutingBatch
// per layer, in layer order). Never a copy per token or per layer to the host.
// No CUDA types in this header: streams and device pointers are passed as void*.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/cuda/route_outputs.h"
#include "engine/routing.h"

namespace moe::cuda {

class RoutingBuffer {
public:
    // Room for `max_tokens` tokens of each of the MoE layers `layers` (checkpoint indices) with
    // at most `k_max` experts per token.
    RoutingBuffer(std::vector<int64_t> layers, int64_t max_tokens, int64_t k_max);
    ~RoutingBuffer();
    RoutingBuffer(const RoutingBuffer&) = delete;
    RoutingBuffer& operator=(const RoutingBuffer&) = delete;

    // Starts a step of `n_tokens` tokens at sequence position `pos0`.
    void begin(int64_t pos0, int64_t n_tokens, TokenSource source);
    // The device part of the buffer that holds one MoE layer's routing in the step begun (its
    // place depends on the step's size): the router writes there directly, and record() then
    // copies nothing.
    RouteOutputs slot(int64_t layer) const;
    // Enqueues on `stream` the copy of one layer's routing from device buffers: experts and
    // weights [T, k], entropy, selected mass and margin [T] (each may be null: not recorded;
    // a pointer into the layer's slot() is taken as it is).
    void record(int64_t layer, int64_t k, const int32_t* d_experts, const float* d_weights, const float* d_entropy,
                const float* d_mass, const float* d_margin, GateWeightKind kind, bool shared_off, float weight_scale,
                void* stream);
    // Enqueues the one device-to-host copy of the step on `stream`.
    void flush(void* stream);
    // Replay mode, for a step replayed from a CUDA graph that captured record() and flush():
    // record() then notes what the step holds and enqueues nothing; flush(), called after the
    // graph's launch, enqueues only the event that deliver() waits for.
    void set_replay(bool on) { replay_ = on; }
    // Waits for that copy and calls observer.on_routing for every recorded layer, in layer order.
    void deliver(RoutingObserver& observer);

    std::size_t device_bytes() const { return device_bytes_; }

private:
    struct Layer {
        int64_t layer = 0, k = 0;
        bool recorded = false, has_weights = false, has_entropy = false, has_mass = false, has_margin = false;
        bool shared_off = false;
        GateWeightKind kind = GateWeightKind::router_prob;
        float weight_scale = 1.0f;
    };
    void release() noexcept;
    std::size_t slot_bytes(int64_t tokens) const;  // one layer's part of the buffer in a step of `tokens`
    std::size_t index_of(int64_t layer) const;
    RouteOutputs slot_at(std::size_t i) const;
    std::vector<Layer> layers_;
    int64_t max_tokens_ = 0, k_max_ = 0, pos0_ = 0, n_tokens_ = 0;
    TokenSource source_ = TokenSource::prompt;
    unsigned char* device_ = nullptr;
    unsigned char* host_ = nullptr;  // pinned
    void* copied_ = nullptr;         // cudaEvent_t of the step's copy
    std::size_t device_bytes_ = 0;
    bool flushed_ = false;
    bool replay_ = false;
};

}  // namespace moe::cuda
