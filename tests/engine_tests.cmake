# Engine suites (see tests/CMakeLists.txt for moe_add_qtest).
moe_add_qtest(test_golden LABELS unit SOURCES test_golden.cpp)
moe_add_qtest(test_router LABELS unit SOURCES test_router.cpp)
moe_add_qtest(test_dispatch LABELS unit SOURCES test_dispatch.cpp)
moe_add_qtest(test_forward LABELS unit SOURCES test_forward.cpp)
moe_add_qtest(test_generation LABELS unit SOURCES test_generation.cpp)
moe_add_qtest(test_kernels LABELS unit SOURCES test_kernels.cpp)
moe_add_qtest(test_config LABELS unit SOURCES test_config.cpp)
moe_add_qtest(test_v2v3_input LABELS unit SOURCES test_v2v3_input.cpp)
# CPU vs CUDA parity (label gpu): built with the CUDA backend; skipped without a GPU.
if(TARGET moe_cuda)
  moe_add_qtest(test_cuda_router LABELS gpu SOURCES test_cuda_router.cpp LIBS moe_cuda)
  moe_add_qtest(test_cuda_dispatch LABELS gpu SOURCES test_cuda_dispatch.cpp LIBS moe_cuda)
endif()
