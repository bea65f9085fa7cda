# Engine suites (see tests/CMakeLists.txt for moe_add_qtest).
