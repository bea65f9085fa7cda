# Sourced by the GPU scripts: the backend's switches that are not the default yet
# (docs/engine.md), as VAR=value words for env. The parity suites run once as the backend runs
# by default and once with all of these; tools/gpu-bench.sh benches them alone and together.
# (MOEWB_CUDA_KV_CACHE=bf16 is left out: the suites have rows of their own for it, with BF16
# tolerances.)
GPU_SWITCHES=(MOEWB_CUDA_DECODE_ATTENTION=vector MOEWB_CUDA_EARLY_LAUNCH=trigger MOEWB_CUDA_ROPE=fused
    MOEWB_CUDA_WEIGHT_LOADS=stream MOEWB_CUDA_EXPERT_GEMM=batched MOEWB_CUDA_ATTENTION=pipelined
    MOEWB_CUDA_DECODE_BLOCKS=3)
