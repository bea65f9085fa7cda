// Programmatic dependent launch for the .cu files: a kernel launched with launch_after() may
// be started by the device while the kernel before it on the stream is still running, so
// that its launch and what it does before row_math.cuh's wait_for_previous() (fetching
// weights) overlap that kernel's end. Such a kernel must call wait_for_previous() before it
// reads anything an earlier kernel writes or writes anything one reads. On devices before
// compute capability 9.0, and with MOEWB_CUDA_EARLY_LAUNCH=0 in the environment (to compare),
// it is an ordinary launch. The decode kernels also let it start before they have ended
// (early_trigger), unless MOEWB_CUDA_EARLY_LAUNCH=on asks for the early launch alone.
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include "engine/cuda/attention_kernels.h"
#include "engine/cuda/device.h"

namespace moe::cuda::launch {

// Whether launches of this process may start early (device 0's compute capability, the
// environment), asked once.
bool early_launch();
// Whether the decode kernels let the kernel after them start once all their blocks have
// started (row_math.cuh's let_next_start): with early_launch(), unless MOEWB_CUDA_EARLY_LAUNCH=on
// (or =1) asks for early launches that wait for the kernel before them to end.
bool early_trigger();
// Side streams for the routed experts' products of a step of many tokens: MOEWB_CUDA_EXPERT_STREAMS
// (0 to 16; 0 runs them on the step's stream, to compare), 4 when unset or not such a number.
int expert_streams();
// Where the batched products cannot run (batched_expert_products), whether the routed experts'
// products of a step of many tokens run as one launch of our own (launch::expert_products)
// rather than one cuBLAS product per expert on the side streams: with split activations (two
// products per expert for cuBLAS, one launch for ours) by default; MOEWB_CUDA_EXPERT_GEMM=grouped
// or =cublas chooses for both (to compare).
bool grouped_expert_products(bool split);
// Whether the routed experts' products run as cuBLAS batched products over the experts whose
// rows are padded to the same count (dispatch::plan_batches), for both modes: by default and
// with MOEWB_CUDA_EXPERT_GEMM=batched, where the experts allow it (CudaDeepseekMoe::batched).
bool batched_expert_products();
// What each expert's rows are padded to a multiple of for batched products:
// MOEWB_CUDA_EXPERT_PAD, a power of two from 8 to 512; 64 when unset or not such a number.
int64_t expert_row_pad();
// Whether, with exact activations, the batched products take each expert's hi and lo parts as
// the rows of one product (dispatch::stacked_hi: the weights read once for both, twice the
// rows a product) rather than two products, the second added (MOEWB_CUDA_EXPERT_PARTS=apart, to
// compare).
bool stacked_expert_parts();
// MOEWB_CUDA_EXPERT_GEMM as asked: 0 unset (batched, else the default per mode), 1 grouped,
// 2 cublas, 3 batched, 4 wgmma (the grouped layout on Hopper's warpgroup
// products where the device and the build have them: launch::expert_wgmma_available).
int expert_gemm_mode();
// Whether this build has the Hopper experts' kernel (its architectures name 9.0) and the device
// is of compute 9.0, which runs it (launch::expert_products's wgmma).
bool expert_wgmma_available();
// Whether a prefill's routed experts go to the Hopper kernel: MOEWB_CUDA_EXPERT_GEMM=wgmma where
// expert_wgmma_available().
bool expert_wgmma_asked();
// Whether MOEWB_CUDA_ATTENTION=f32 keeps prefill attention on the CUDA cores (to compare).
bool f32_attention_asked();
// The tensor-core prefill's kernel: pipelined, unless MOEWB_CUDA_ATTENTION=tensor-cores asks for
// the first one (tiles, to compare) or MOEWB_CUDA_ATTENTION=wide for the pipelined kernel with
// 32 query rows a warp (pipelined_wide).
PrefillAttention prefill_attention_asked();
// The decode split's kernel: MOEWB_CUDA_DECODE_ATTENTION=vector asks for the vector one, =warp
// for a warp a split, =merged for scalar's split merged by each head's last block, anything
// else (or unset) gives scalar (DecodeAttention).
DecodeAttention decode_attention_asked();
// Whether a small step's query and key products apply the rotary embedding themselves
// (GemvPart::rope_cos), unless MOEWB_CUDA_ROPE=separate asks for a launch of its own after them.
bool fused_rope_asked();
// Whether the decode products' weight loads skip L1 and ask L2 for 256-byte sectors
// (row_math.cuh's Chunking): MOEWB_CUDA_WEIGHT_LOADS=stream.
bool stream_weight_loads();
// What a model's KV cache holds: MOEWB_CUDA_KV_CACHE=bf16 asks for BF16, anything else (or
// unset) gives f32 (KvType). Read at each call: each model asks when it is loaded.
KvType kv_cache_asked();
// The decode product kernels' shape (row_math.cuh's kDecodeChunks): 3 with
// MOEWB_CUDA_DECODE_BLOCKS=3 — compiled for three blocks per multiprocessor while two are
// launched, so that the next kernel's blocks, started early (early_trigger()),
// fit beside them and fetch their first weights; 2 otherwise.
int decode_blocks();
// Whether a one-token step runs each decoder layer as one cooperative launch
// (launch::decode_layer, where it can run the layer): MOEWB_CUDA_DECODE_KERNEL=layer; the
// launches of decode_kernels.h otherwise. Read at each call: each model asks when it is loaded.
bool layer_kernel_asked();
// Whether a one-token step runs its decoder layers in the stream kernel (launch::decode_stream,
// where it can run them): MOEWB_CUDA_DECODE_KERNEL=stream (a launch a layer) or =step (a launch
// for each run of consecutive layers it can run: the whole step's, as a rule). Read at each call.
bool stream_kernel_asked();
// Whether the stream kernel takes runs of layers (MOEWB_CUDA_DECODE_KERNEL=step). Read at each call.
bool stream_step_asked();
// Whether a small step routes each MoE layer in its experts' gate and up launch
// (launch::routed_expert_gate_up, for a plain router) rather than a router launch of its own:
// MOEWB_CUDA_DECODE_ROUTE=experts. Read at each call: each model asks when it is loaded.
bool route_in_experts_asked();
// Device 0's multiprocessors (0 when it cannot say), asked once: grids of blocks that stay.
int multiprocessors();
// Device 0's compute capability's major number (0 when it cannot say), asked once.
int compute_major();
// Whether device 0 takes cooperative launches (all of a grid's blocks resident), asked once.
bool cooperative_launches();
// The launches device.h counts for the tests (decode_layer_launches and the others): one more.
enum class Counted : int { layer, stream, stream_launch, routed_gate_up, expert_wgmma, merged_attention, kinds };
void count(Counted what, int64_t n = 1);

// Dynamic shared memory beyond the default 48 KiB is asked for per kernel.
template <typename K>
void allow_shared(K* kernel, size_t shared, const char* what) {
    if (shared > 48 * 1024)
        check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)), what);
}

// A launch with the launch attributes attr [n_attr] (cudaLaunchKernelEx).
template <typename... P, typename... A>
void launch_with(const cudaLaunchAttribute* attr, unsigned n_attr, void (*kernel)(P...), dim3 grid, dim3 block,
                 size_t shared, cudaStream_t s, const char* what, A&&... args) {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = shared;
    cfg.stream = s;
    cfg.attrs = const_cast<cudaLaunchAttribute*>(attr);
    cfg.numAttrs = n_attr;
    check(cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...), what);
}

// A launch that may start early when `early` (and early_launch()), an ordinary one otherwise.
template <typename... P, typename... A>
void launch_early_if(bool early, void (*kernel)(P...), dim3 grid, dim3 block, size_t shared, cudaStream_t s,
                     const char* what, A&&... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    launch_with(attr, early && early_launch() ? 1 : 0, kernel, grid, block, shared, s, what, std::forward<A>(args)...);
}

// A cooperative launch: all its blocks resident at once, so that they may wait for each other
// (cooperative_groups::this_grid().sync()).
template <typename... P, typename... A>
void launch_cooperative(void (*kernel)(P...), dim3 grid, dim3 block, size_t shared, cudaStream_t s, const char* what,
                        A&&... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeCooperative;
    attr[0].val.cooperative = 1;
    launch_with(attr, 1, kernel, grid, block, shared, s, what, std::forward<A>(args)...);
}

template <typename... P, typename... A>
void launch_after(void (*kernel)(P...), dim3 grid, dim3 block, size_t shared, cudaStream_t s, const char* what,
                  A&&... args) {
    launch_early_if(true, kernel, grid, block, shared, s, what, std::forward<A>(args)...);
}

}  // namespace moe::cuda::launch
