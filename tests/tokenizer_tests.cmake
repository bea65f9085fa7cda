# Tokenizer suites (see tests/CMakeLists.txt for moe_add_qtest).
# Expected ids come from Hugging Face tokenizers (tests/reference/tokenizer/README.md).
moe_add_qtest(test_tokenizer LABELS unit SOURCES test_tokenizer.cpp)
moe_add_qtest(test_tokenizer_reference LABELS unit SOURCES test_tokenizer_reference.cpp)
moe_add_qtest(test_tokenizer_cli LABELS unit SOURCES test_tokenizer_cli.cpp)
# The CLI suite runs the moewb binary.
add_dependencies(test_tokenizer_cli moewb)
target_compile_definitions(test_tokenizer_cli PRIVATE MOEWB_PATH="$<TARGET_FILE:moewb>")
