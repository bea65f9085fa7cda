# Analysis suites: routing store, trace runner, statistics and CSV exports
# (see tests/CMakeLists.txt for moe_add_qtest).
moe_add_qtest(test_store LABELS unit SOURCES test_store.cpp LIBS moe_analysis)
moe_add_qtest(test_trace LABELS unit SOURCES test_trace.cpp LIBS moe_analysis)
# The CLI and crash-safety cases run build/app/moewb: build it before the suite.
add_dependencies(test_trace moewb)
moe_add_qtest(test_stats LABELS unit SOURCES test_stats.cpp LIBS moe_analysis)
add_dependencies(test_stats moewb)
moe_add_qtest(test_ablation LABELS unit SOURCES test_ablation.cpp LIBS moe_analysis)
add_dependencies(test_ablation moewb)
# Capture from SGLang / vLLM: a stand-in server (tests/capture_server.py, Python + NumPy) on
# 127.0.0.1; the CLI cases run build/app/moewb.
moe_add_qtest(test_capture LABELS unit SOURCES test_capture.cpp LIBS moe_analysis)
add_dependencies(test_capture moewb)
