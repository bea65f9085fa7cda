// libFuzzer target: arbitrary bytes as a safetensors file image. parse_safetensors must
// either throw a moe::Error of kind input or return views whose bytes lie inside the image
// and match dtype × shape. Any other exception, a crash, a sanitizer report, or a view that
// breaks these rules is a finding. Seeds: the fixtures' .safetensors (tools/run-fuzzers.sh).
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "engine/error.h"
#include "engine/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<moe::TensorView> views;
    try {
        views = moe::parse_safetensors(data, size, "fuzz.safetensors");
    } catch (const moe::Error& e) {
        if (e.kind() != moe::ErrorKind::input) std::abort();  // bad bytes are the input's fault
        return 0;
    }
    std::vector<float> widened;
    for (const moe::TensorView& t : views) {
        const auto* p = static_cast<const uint8_t*>(t.data);
        if (t.nbytes > 0 && (p < data || t.nbytes > size || p > data + size - t.nbytes)) std::abort();
        if (static_cast<size_t>(t.numel()) * moe::dtype_size(t.dtype) != t.nbytes) std::abort();
        // Read the bytes as the engine would (ASan checks every access); bounded to keep runs fast.
        const int64_t n = t.numel() < 4096 ? t.numel() : 4096;
        widened.resize(static_cast<size_t>(n));
        moe::tensor_to_f32(t, 0, n, widened.data());
    }
    return 0;
}
