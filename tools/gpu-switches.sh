# Sourced by the GPU scripts: the backend's switches that are not the default yet
# (docs/engine.md), as VAR=value words for env. The parity suites run once as the backend runs
# by default and once with all of these; tools/gpu-bench.sh benches them alone and together.
# (MOEWB_CUDA_KV_CACHE=bf16 is left out: the suites have rows of their own for it, with BF16
# tolerances.)
# (MOEWB_CUDA_DECODE_ATTENTION takes one value at a time: merged here, the newest; vector and warp
# have test_cuda_attention's cases against the definition and the scalar split.)
# (MOEWB_CUDA_EXPERT_GEMM takes one value at a time: wgmma here, our own kernel end to end.
# MOEWB_CUDA_DECODE_KERNEL is left out: layer, stream or step would take every layer of a decode
# step from the launches the other decode switches change; test_cuda_model compares each with the
# launches in every pass (layerKernelMatchesLaunches, streamKernelMatchesLaunches,
# stepKernelMatchesLaunches), and GPU_BENCH=layer and stream bench them.)
GPU_SWITCHES=(MOEWB_CUDA_DECODE_ATTENTION=merged MOEWB_CUDA_WEIGHT_LOADS=stream MOEWB_CUDA_DECODE_BLOCKS=3
    MOEWB_CUDA_EXPERT_GEMM=wgmma MOEWB_CUDA_ATTENTION=wide
    MOEWB_CUDA_DECODE_ROUTE=experts)
# The paths that were the default before and can still be chosen (to compare): the suites run
# once with these too.
GPU_FORMER=(MOEWB_CUDA_EARLY_LAUNCH=on MOEWB_CUDA_ROPE=separate MOEWB_CUDA_ATTENTION=tensor-cores
    MOEWB_CUDA_EXPERT_GEMM=grouped MOEWB_CUDA_EXPERT_PARTS=apart)
