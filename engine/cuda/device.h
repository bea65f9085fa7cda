// The CUDA device this process would run on: whether there is one, what it is, how much
// memory it has free. Host code only; no CUDA types in this header.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace moe::cuda {

struct DeviceInfo {
    int index = 0;
    std::string name;                 // "NVIDIA H100 80GB HBM3"
    int cc_major = 0, cc_minor = 0;   // compute capability
    int multiprocessors = 0;
    std::size_t total_bytes = 0, free_bytes = 0;
    double clock_hz = 0;             // SM clock (the driver's maximum)
    double memory_bandwidth = 0;     // bytes/s: 2 · memory clock · bus width (double data rate)
    // Dense BF16 tensor-core peak (FLOP/s) at clock_hz: multiprocessors · clock · the FLOPs per
    // clock per SM of the architecture (8.0: 2048; 9.0: 4096); 0 where not tabulated.
    double bf16_peak_flops = 0;
};

// Device 0, or nullopt with the reason in `why` (no driver, no device, the driver's error).
std::optional<DeviceInfo> first_device(std::string* why = nullptr);

// Throws moe::Error naming the operation and the CUDA error when `status` (a cudaError_t) is
// not success.
void check(int status, const char* what);

// Device memory for host code compiled without the CUDA headers (tests, the model's setup).
void* device_alloc(std::size_t bytes);
void device_free(void* p);
// Refuses (input error naming `who`) a need of `bytes` that the device's free memory cannot
// meet: "`who`: needs X GiB of device memory for `what`; the device has Y GiB free of Z GiB".
void require_device_memory(std::size_t bytes, const std::string& who, const std::string& what);
void copy_to_device(void* dst, const void* src, std::size_t bytes);
// Whether a device address is aligned to `bytes` (what vector loads of a row need), to 16.
inline bool aligned_to(const void* p, std::size_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; }
inline bool aligned16(const void* p) {
    return aligned_to(p, 16);
}

// The backend's choices that the environment changes (MOEWB_CUDA_*, docs/engine.md) as this
// process makes them, name and value in a fixed order: attention (tensor-cores | f32 |
// pipelined | wide), decode_attention (scalar | vector | warp | merged), early_launch (off | on | trigger), rope
// (separate | fused), expert_gemm (auto | grouped | cublas | batched | wgmma),
// expert_streams (0 to 16), expert_pad (8 to 512), kv_cache (f32 | bf16), weight_loads (cached
// | stream), decode_blocks (2 | 3), decode_kernel (launches | layer | stream), decode_route (launch | experts). For
// benchmark results that say what they measured. Read from the environment at the call: kv_cache, decode_kernel and
// decode_route say what a model loaded now does (one loaded earlier says its kv_cache in its backend label).
std::vector<std::pair<std::string, std::string>> backend_switches();

// How many decoder layers this process has enqueued as one cooperative launch
// (launch::decode_layer, MOEWB_CUDA_DECODE_KERNEL=layer); a layer captured into a CUDA graph
// counts once, at its capture.
std::int64_t decode_layer_launches();
// How many MoE layers this process has routed in their experts' gate and up launch
// (launch::routed_expert_gate_up, MOEWB_CUDA_DECODE_ROUTE=experts); counted as
// decode_layer_launches.
std::int64_t routed_gate_up_launches();
// How many decoder layers this process has enqueued in the stream kernel's launches
// (launch::decode_stream, MOEWB_CUDA_DECODE_KERNEL=stream or step); counted as
// decode_layer_launches.
std::int64_t decode_stream_launches();
// How many launches of the stream kernel those layers took: as many with =stream, one a run of
// consecutive layers with =step.
std::int64_t stream_kernel_launches();
// How many of the routed experts' products this process has launched on the Hopper kernel
// (MOEWB_CUDA_EXPERT_GEMM=wgmma, where the weights have tensor maps).
std::int64_t expert_wgmma_launches();
// How many decode attentions this process has launched as the merged split
// (MOEWB_CUDA_DECODE_ATTENTION=merged: each head merged by its last block); counted as
// decode_layer_launches.
std::int64_t merged_attention_launches();

}  // namespace moe::cuda
