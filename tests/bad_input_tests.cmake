# Bad-input suite: damaged checkpoints, configs, token ids, mask specs and CLI
# arguments must be input errors that name the file and say what is wrong
# (see tests/CMakeLists.txt for moe_add_qtest).
moe_add_qtest(test_bad_input LABELS unit SOURCES test_bad_input.cpp)
# The CLI part runs build/app/moewb: build it before the suite.
add_dependencies(test_bad_input moewb)
moe_add_qtest(test_cli_errors LABELS unit SOURCES test_cli_errors.cpp)
add_dependencies(test_cli_errors moewb)
if(TARGET moe_cuda)
  target_link_libraries(test_cli_errors PRIVATE moe_cuda)  # whether a device is there: the --backend cuda case
endif()
