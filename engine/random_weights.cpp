// Random weight generation; see random_weights.h. Uses a counter-based generator
// (splitmix64) so each tensor's values depend only on the seed and its name.
#include "engine/random_weights.h"

#include <cmath>
#include <cstring>
#include <functional>

#include "engine/models/deepseek_names.h"

namespace moe {

namespace {

uint64_t splitmix64(uint64_t& s) {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

std::vector<uint8_t> random_bytes(int64_t n, DType dtype, float scale, float offset, uint64_t seed) {
    std::vector<uint8_t> out(static_cast<size_t>(n) * dtype_size(dtype));
    uint64_t s = seed;
    for (int64_t i = 0; i < n; ++i) {
        const uint64_t r = splitmix64(s);
        // uniform in [-1, 1)
        const float u = static_cast<float>(static_cast<double>(r >> 40) / static_cast<double>(1ull << 23)) - 1.0f;
        const float v = offset + scale * u;
        switch (dtype) {
            case DType::f32: std::memcpy(out.data() + 4 * i, &v, 4); break;
            case DType::bf16: {
                uint16_t h = f32_to_bf16(v);
                std::memcpy(out.data() + 2 * i, &h, 2);
                break;
            }
            case DType::f16: {
                uint16_t h = f32_to_f16(v);
                std::memcpy(out.data() + 2 * i, &h, 2);
                break;
            }
        }
    }
    return out;
}

}  // namespace

std::shared_ptr<MemoryTensors> make_random_tensors(const ModelConfig& c, DType dtype, uint64_t seed) {
    namespace names = deepseek_names;
    auto out = std::make_shared<MemoryTensors>();
    const int64_t H = c.hidden_size, hd = c.head_dim;
    auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float offset) {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        const uint64_t tseed = seed ^ std::hash<std::string>{}(name);
        out->add(name, dtype, shape, random_bytes(n, dtype, scale, offset, tseed));
    };
    // Uniform on [-a, a] has variance a²/3: a = sqrt(3 / fan_in) gives variance 1/fan_in.
    auto linear = [&](const std::string& name, int64_t rows, int64_t cols) {
        add(name, {rows, cols}, std::sqrt(3.0f / static_cast<float>(cols)), 0.0f);
    };
    auto norm = [&](const std::string& name) { add(name, {H}, 0.1f, 1.0f); };
    add(names::embed, {c.vocab_size, H}, 1.0f, 0.0f);
    norm(names::final_norm);
    if (!c.tie_word_embeddings) linear(names::lm_head, c.vocab_size, H);
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        norm(names::attn_norm(i));
        norm(names::ffn_norm(i));
        linear(names::attn(i, "q_proj"), c.num_attention_heads * hd, H);
        linear(names::attn(i, "k_proj"), c.num_key_value_heads * hd, H);
        linear(names::attn(i, "v_proj"), c.num_key_value_heads * hd, H);
        linear(names::attn(i, "o_proj"), H, c.num_attention_heads * hd);
        auto mlp3 = [&](const std::function<std::string(const char*)>& name, int64_t width) {
            linear(name("gate_proj"), width, H);
            linear(name("up_proj"), width, H);
            linear(name("down_proj"), H, width);
        };
        if (!c.is_moe_layer(i)) {
            mlp3([&](const char* p) { return names::mlp(i, p); }, c.intermediate_size);
            continue;
        }
        // Router rows with a larger spread than 1/fan_in so routing is decisive.
        add(names::router(i), {c.n_routed_experts, H}, std::sqrt(3.0f / static_cast<float>(H)) * 4.0f, 0.0f);
        for (int64_t e = 0; e < c.n_routed_experts; ++e)
            mlp3([&](const char* p) { return names::expert(i, e, p); }, c.moe_intermediate_size);
        if (c.n_shared_experts > 0) mlp3([&](const char* p) { return names::shared(i, p); }, c.shared_width());
    }
    return out;
}

}  // namespace moe
