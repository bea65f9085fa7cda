// Where the router writes one MoE layer's routing of a step on the device: the experts and
// gate weights of each token in rank order, and its entropy, selected mass and margin.
// Plain pointers: shared by the router's launch (launch.h) and the routing buffer
// (routing_buffer.h), which hands out its own slots in this form.
#pragma once

#include <cstdint>

namespace moe::cuda {

struct RouteOutputs {
    int32_t* experts;  // [T, k]
    float* weights;    // [T, k]
    float* entropy;    // [T]
    float* mass;       // [T]
    float* margin;     // [T]
};

}  // namespace moe::cuda
