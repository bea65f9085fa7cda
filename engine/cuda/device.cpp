// DeviceInfo and error checks; see device.h.
#include "engine/cuda/device.h"

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "engine/cuda/launch_after.h"
#include "engine/error.h"
#include "engine/host_memory.h"

namespace moe::cuda {

void check(int status, const char* what) {
    const auto e = static_cast<cudaError_t>(status);
    if (e != cudaSuccess) throw Error(ErrorKind::failure, std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}

void* device_alloc(std::size_t bytes) {
    void* p = nullptr;
    if (bytes) check(cudaMalloc(&p, bytes), "allocating device memory");
    return p;
}

void device_free(void* p) { cudaFree(p); }

void require_device_memory(std::size_t bytes, const std::string& who, const std::string& what) {
    std::size_t free_b = 0, total_b = 0;
    check(cudaMemGetInfo(&free_b, &total_b), "reading free device memory");
    if (bytes <= free_b) return;
    throw_input_error(who, "needs " + format_gib(bytes) + " of device memory for " + what + "; the device has " +
                               format_gib(free_b) + " free of " + format_gib(total_b));
}

void copy_to_device(void* dst, const void* src, std::size_t bytes) {
    if (bytes) check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "copying to the device");
}

namespace {

// Why cudaGetDeviceCount found no device, in a researcher's words: no driver, a driver older
// than this build's runtime (both CUDA versions named), or CUDA's own reason.
std::string no_device_reason(cudaError_t e) {
    if (e == cudaSuccess) return "no CUDA device on this machine";
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    auto version = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
    if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice) {
        if (driver == 0) return "no CUDA device: no NVIDIA driver is installed on this machine";
        if (e == cudaErrorInsufficientDriver)
            return "no CUDA device: the NVIDIA driver supports CUDA " + version(driver) + ", older than this build's CUDA " +
                   version(runtime) + " runtime; update the driver";
    }
    return std::string("no CUDA device: ") + cudaGetErrorString(e);
}

}  // namespace

std::optional<DeviceInfo> first_device(std::string* why) {
    int n = 0;
    if (const cudaError_t e = cudaGetDeviceCount(&n); e != cudaSuccess || n == 0) {
        if (why) *why = no_device_reason(e);
        return std::nullopt;
    }
    cudaDeviceProp prop{};
    if (const cudaError_t e = cudaGetDeviceProperties(&prop, 0); e != cudaSuccess) {
        if (why) *why = std::string("CUDA device 0: ") + cudaGetErrorString(e);
        return std::nullopt;
    }
    DeviceInfo d;
    d.name = prop.name;
    d.cc_major = prop.major;
    d.cc_minor = prop.minor;
    d.multiprocessors = prop.multiProcessorCount;
    int clock_khz = 0, mem_khz = 0, bus_bits = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0) == cudaSuccess) d.clock_hz = clock_khz * 1e3;
    if (cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, 0) == cudaSuccess &&
        cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0) == cudaSuccess)
        d.memory_bandwidth = 2.0 * mem_khz * 1e3 * bus_bits / 8.0;
    const int per_sm = d.cc_major == 9 && d.cc_minor == 0 ? 4096 : d.cc_major == 8 && d.cc_minor == 0 ? 2048 : 0;
    d.bf16_peak_flops = per_sm * d.clock_hz * d.multiprocessors;
    std::size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(0) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
        d.free_bytes = free_b;
        d.total_bytes = total_b;
    } else {
        d.total_bytes = prop.totalGlobalMem;
    }
    return d;
}

}  // namespace moe::cuda

namespace moe::cuda::launch {

namespace {

// Whether the environment variable `name` is set to exactly `value`.
bool env_is(const char* name, const char* value) {
    const char* env = std::getenv(name);
    return env && std::string(env) == value;
}

// The environment variable `name` as a whole number from lo to hi for which ok(v) holds;
// `fallback` when it is unset or not such a number.
long env_number(const char* name, long lo, long hi, long fallback, bool (*ok)(long) = nullptr) {
    const char* env = std::getenv(name);
    if (!env || !*env) return fallback;
    char* end = nullptr;
    const long v = std::strtol(env, &end, 10);
    return *end == '\0' && v >= lo && v <= hi && (!ok || ok(v)) ? v : fallback;
}

}  // namespace

// MOEWB_CUDA_EXPERT_GEMM as asked: 0 auto, 1 ours, 2 cuBLAS per expert, 3 cuBLAS batched, 4 ours
// on the warpgroup products.
int expert_gemm_mode() {
    static const int mode = [] {
        const char* env = std::getenv("MOEWB_CUDA_EXPERT_GEMM");
        const std::string v = env ? env : "";
        return v == "grouped" ? 1 : v == "cublas" ? 2 : v == "batched" ? 3 : v == "wgmma" ? 4 : 0;
    }();
    return mode;
}

int compute_major() {
    static const int major = [] {
        int v = 0;
        return cudaDeviceGetAttribute(&v, cudaDevAttrComputeCapabilityMajor, 0) == cudaSuccess ? v : 0;
    }();
    return major;
}

bool early_launch() {
    static const bool on = [] {
        const char* env = std::getenv("MOEWB_CUDA_EARLY_LAUNCH");
        if (env && std::string(env) == "0") return false;
        return compute_major() >= 9;
    }();
    return on;
}

bool early_trigger() {
    static const bool on = early_launch() && !env_is("MOEWB_CUDA_EARLY_LAUNCH", "on") && !env_is("MOEWB_CUDA_EARLY_LAUNCH", "1");
    return on;
}

int expert_streams() {
    static const int n = static_cast<int>(env_number("MOEWB_CUDA_EXPERT_STREAMS", 0, 16, 4));
    return n;
}

bool grouped_expert_products(bool split) {
    const int mode = expert_gemm_mode();
    return mode == 1 || mode == 4 || (mode == 0 && split);
}

bool batched_expert_products() {
    const int mode = expert_gemm_mode();
    return mode == 3 || mode == 0;
}

bool stacked_expert_parts() {
    static const bool asked = !env_is("MOEWB_CUDA_EXPERT_PARTS", "apart");
    return asked;
}

int64_t expert_row_pad() {
    static const int64_t pad =
        env_number("MOEWB_CUDA_EXPERT_PAD", 8, 512, 64, [](long v) { return (v & (v - 1)) == 0; });
    return pad;
}

bool f32_attention_asked() {
    static const bool asked = env_is("MOEWB_CUDA_ATTENTION", "f32");
    return asked;
}

PrefillAttention prefill_attention_asked() {
    static const PrefillAttention asked = env_is("MOEWB_CUDA_ATTENTION", "tensor-cores") ? PrefillAttention::tiles
                                          : env_is("MOEWB_CUDA_ATTENTION", "wide") ? PrefillAttention::pipelined_wide
                                                                                   : PrefillAttention::pipelined;
    return asked;
}

DecodeAttention decode_attention_asked() {
    static const DecodeAttention asked = env_is("MOEWB_CUDA_DECODE_ATTENTION", "vector")   ? DecodeAttention::vector
                                         : env_is("MOEWB_CUDA_DECODE_ATTENTION", "warp")   ? DecodeAttention::warp
                                         : env_is("MOEWB_CUDA_DECODE_ATTENTION", "merged") ? DecodeAttention::merged
                                                                                           : DecodeAttention::scalar;
    return asked;
}

bool fused_rope_asked() {
    static const bool asked = !env_is("MOEWB_CUDA_ROPE", "separate");
    return asked;
}

bool stream_weight_loads() {
    static const bool on = env_is("MOEWB_CUDA_WEIGHT_LOADS", "stream");
    return on;
}

int decode_blocks() {
    static const int n = env_is("MOEWB_CUDA_DECODE_BLOCKS", "3") ? 3 : 2;
    return n;
}

bool layer_kernel_asked() {
    return env_is("MOEWB_CUDA_DECODE_KERNEL", "layer");
}

bool stream_kernel_asked() {
    return env_is("MOEWB_CUDA_DECODE_KERNEL", "stream") || stream_step_asked();
}

bool stream_step_asked() {
    return env_is("MOEWB_CUDA_DECODE_KERNEL", "step");
}

bool route_in_experts_asked() {
    return env_is("MOEWB_CUDA_DECODE_ROUTE", "experts");
}

KvType kv_cache_asked() { return env_is("MOEWB_CUDA_KV_CACHE", "bf16") ? KvType::bf16 : KvType::f32; }

bool cooperative_launches() {
    static const bool on = [] {
        int v = 0;
        return cudaDeviceGetAttribute(&v, cudaDevAttrCooperativeLaunch, 0) == cudaSuccess && v != 0;
    }();
    return on;
}

namespace {
std::atomic<int64_t> counted[static_cast<int>(Counted::kinds)];
}

void count(Counted what, int64_t n) {
    counted[static_cast<int>(what)].fetch_add(n, std::memory_order_relaxed);
}

int multiprocessors() {
    static const int n = [] {
        int v = 0;
        return cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, 0) == cudaSuccess ? v : 0;
    }();
    return n;
}

}  // namespace moe::cuda::launch

namespace moe::cuda {

std::int64_t decode_layer_launches() {
    return launch::counted[static_cast<int>(launch::Counted::layer)].load(std::memory_order_relaxed);
}
std::int64_t decode_stream_launches() {
    return launch::counted[static_cast<int>(launch::Counted::stream)].load(std::memory_order_relaxed);
}
std::int64_t stream_kernel_launches() {
    return launch::counted[static_cast<int>(launch::Counted::stream_launch)].load(std::memory_order_relaxed);
}
std::int64_t routed_gate_up_launches() {
    return launch::counted[static_cast<int>(launch::Counted::routed_gate_up)].load(std::memory_order_relaxed);
}
std::int64_t expert_wgmma_launches() {
    return launch::counted[static_cast<int>(launch::Counted::expert_wgmma)].load(std::memory_order_relaxed);
}
std::int64_t merged_attention_launches() {
    return launch::counted[static_cast<int>(launch::Counted::merged_attention)].load(std::memory_order_relaxed);
}

std::vector<std::pair<std::string, std::string>> backend_switches() {
    static const char* const gemm[] = {"auto", "grouped", "cublas", "batched", "wgmma"};
    return {
        {"attention", launch::f32_attention_asked()                                           ? "f32"
                      : launch::prefill_attention_asked() == PrefillAttention::pipelined_wide ? "wide"
                      : launch::prefill_attention_asked() == PrefillAttention::pipelined      ? "pipelined"
                                                                                              : "tensor-cores"},
        {"decode_attention", launch::decode_attention_asked() == DecodeAttention::vector   ? "vector"
                             : launch::decode_attention_asked() == DecodeAttention::warp   ? "warp"
                             : launch::decode_attention_asked() == DecodeAttention::merged ? "merged"
                                                                                           : "scalar"},
        {"early_launch", launch::early_trigger()  ? "trigger"
                         : launch::early_launch() ? "on"
                                                  : "off"},
        {"rope", launch::fused_rope_asked() ? "fused" : "separate"},
        {"expert_gemm", launch::expert_gemm_mode() == 4 && !launch::expert_wgmma_available()
                            ? "grouped (wgmma asked: this device or build has no wgmma kernel)"
                            : gemm[launch::expert_gemm_mode()]},
        {"expert_streams", std::to_string(launch::expert_streams())},
        {"expert_pad", std::to_string(launch::expert_row_pad())},
        {"expert_parts", launch::stacked_expert_parts() ? "stacked" : "apart"},
        {"kv_cache", launch::kv_cache_asked() == KvType::bf16 ? "bf16" : "f32"},
        {"weight_loads", launch::stream_weight_loads() ? "stream" : "cached"},
        {"decode_blocks", std::to_string(launch::decode_blocks())},
        {"decode_kernel", launch::layer_kernel_asked()    ? "layer"
                          : launch::stream_step_asked()   ? "step"
                          : launch::stream_kernel_asked() ? "stream"
                                                          : "launches"},
        {"decode_route", launch::route_in_experts_asked() ? "experts" : "launch"},
    };
}

}  // namespace moe::cuda
