// libFuzzer entry point for the tokenizer.json loader: any bytes either load as a tokenizer or
// are refused with moe::Error; nothing else may escape, crash or hang. A loaded tokenizer then
// encodes and decodes a fixed mixed text, so the parsed components are exercised too.
// Build: clang++ -fsanitize=fuzzer,address (see tests/fuzz/CMakeLists.txt).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/error.h"
#include "engine/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    // An optional second document after a NUL byte is the tokenizer_config.json.
    const size_t nul = input.find('\0');
    const std::string_view tokenizer_json = input.substr(0, nul);
    const std::string_view config_json = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
    try {
        const moe::Tokenizer tok = moe::Tokenizer::from_json(tokenizer_json, config_json, "fuzz");
        static const std::string text = "Hello, world! 混合专家 12345 \t\n  émoji 🧠 <｜end▁of▁sentence｜> x";
        const auto ids = tok.encode(text, true);
        (void)tok.decode(ids, false);
        (void)tok.decode(ids, true);
        moe::StreamDecoder stream(tok);
        for (const int32_t id : ids) (void)stream.push(id);
        (void)stream.finish();
    } catch (const moe::Error&) {
        // A refused file (or a tokenizer that cannot encode this text) is fine.
    }
    return 0;
}
