# Corpus suite: datasets/ against its manifest (see tests/CMakeLists.txt for moe_add_qtest).
moe_add_qtest(test_datasets LABELS unit SOURCES test_datasets.cpp)
