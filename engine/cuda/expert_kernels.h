// Launches of the forward pass's own kernels (see expert_kernels.cu): the embedding gather,
// the linear layers of a small step and the experts of a small step as matrix-vector products
// (the experts over the slots, each slot reading its expert's weights through device tables
// of pointers). For the .cu files.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda/route_outputs.h"
#include "engine/router_core.h"
#include "engine/tensor.h"

namespace moe::cuda::launch {

// x [T, H] = rows ids of table [V, H] (BF16, F16 or F32) widened to f32.
void embed(const void* table, DType type, const int32_t* ids, int64_t T, int64_t H, float* x, cudaStream_t s);

// For each slot s of T·k (token s / k, expert experts[s]; dropped slots skipped):
// h[s] = silu(gate_e · x[t]) · (up_e · x[t]), width F; gate, up: [E] device pointers to [F, H].
void expert_gate_up(const float* x, int64_t T, int64_t H, int64_t k, const int32_t* experts, const uint8_t* dropped,
                    const void* const* gate, const void* const* up, DType type, int64_t F, float* h, cudaStream_t s);
// The router's routing of a plain step (route_warp::takes(a): softmax, greedy top-k) and
// expert_gate_up in one launch: each block routes its slot's token from logits [T, E] itself,
// and the token's experts, weights, entropy, mass and margin go to out as launch::route writes
// them (the same values), for what runs after.
void routed_expert_gate_up(const float* logits, const router_core::Args& a, RouteOutputs out, const float* x, int64_t T,
                           int64_t H, const uint8_t* dropped, const void* const* gate, const void* const* up,
                           DType type, int64_t F, float* h, cudaStream_t s);
// out[s] = down_e · h[s], width H; down: [E] device pointers to [H, F].
void expert_down(const float* h, int64_t n_slots, int64_t F, const int32_t* experts, const uint8_t* dropped,
                 const void* const* down, DType type, int64_t H, float* out, cudaStream_t s);
// y [T, out] (leading dimension ldy) = x [T, in] · Wᵀ for a few tokens, W [out, in] as stored
// (BF16, F16 or F32) and x kept in f32: a decode step's linear layers, read once at full
// bandwidth with no rounding of the activations.
void gemv(const float* x, int64_t T, int64_t in, const void* w, DType type, int64_t out, float* y, int64_t ldy,
          cudaStream_t s);
// rows[s] = s, or -1 for a dropped slot (the combine's row of each slot when results are per slot).
void slot_rows(const int32_t* experts, const uint8_t* dropped, int64_t n_slots, int64_t* rows, cudaStream_t s);

}  // namespace moe::cuda::launch
