// Random weight generation; see random_weights.h. Uses a counter-based generator
// (splitmix64, engine/random_values.h) so each tensor's values depend only on the seed and
// its name, and each element only on its index.
#include "engine/random_weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <optional>

#include "engine/error.h"
#include "engine/host_memory.h"
#include "engine/models/deepseek_names.h"
#include "engine/random_values.h"

namespace moe {

namespace {

// n values of a recipe into `out` (n · dtype_size bytes).
void fill_values(int64_t n, DType dtype, float scale, float offset, uint64_t seed, uint8_t* out) {
    for (int64_t i = 0; i < n; ++i) {
        const float v = random_values::value(seed, static_cast<uint64_t>(i), scale, offset);
        switch (dtype) {
            case DType::f32: std::memcpy(out + 4 * i, &v, 4); break;
            case DType::bf16: {
                const uint16_t h = random_values::to_bf16(v);
                std::memcpy(out + 2 * i, &h, 2);
                break;
            }
            case DType::f16: {
                const uint16_t h = f32_to_f16(v);
                std::memcpy(out + 2 * i, &h, 2);
                break;
            }
            case DType::f8_e4m3:
                MOE_ASSERT(false);  // FP8 weights are quantised from f32 by the recipe
        }
    }
}

std::vector<uint8_t> random_bytes(int64_t n, DType dtype, float scale, float offset, uint64_t seed) {
    std::vector<uint8_t> out(static_cast<size_t>(n) * dtype_size(dtype));
    fill_values(n, dtype, scale, offset, seed, out.data());
    return out;
}

int64_t numel_of(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

// Every tensor of a config's random weights: a recipe (values made on request) or, for FP8
// linears and their scales, bytes made at once.
struct Item {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::optional<RandomRecipe> recipe;
    std::vector<uint8_t> bytes;
};

// With make false, FP8 linears and their scales come with their shapes only (no bytes).
std::vector<Item> random_items(const ModelConfig& c, DType dtype, uint64_t seed, bool make = true) {
    namespace names = deepseek_names;
    std::vector<Item> items;
    struct Out {
        std::vector<Item>& items;
        void add(const std::string& name, DType t, std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
            items.push_back(Item{name, t, std::move(shape), std::nullopt, std::move(bytes)});
        }
    } out_items{items};
    Out* out = &out_items;
    const int64_t H = c.hidden_size, hd = c.head_dim, nh = c.num_attention_heads;
    // FP8 checkpoints (as V3 is published) keep embeddings, norms and routers in BF16.
    const bool fp8 = dtype == DType::f8_e4m3;
    const DType dense = fp8 ? DType::bf16 : dtype;
    auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale, float offset) {
        const uint64_t tseed = seed ^ std::hash<std::string>{}(name);
        items.push_back(Item{name, dense, std::move(shape), RandomRecipe{scale, offset, tseed}, {}});
    };
    // Uniform on [-a, a] has variance a²/3: a = sqrt(3 / fan_in) gives variance 1/fan_in.
    auto linear = [&](const std::string& name, int64_t rows, int64_t cols) {
        const float a = std::sqrt(3.0f / static_cast<float>(cols));
        if (!fp8) return add(name, {rows, cols}, a, 0.0f);
        constexpr int64_t B = 128;
        const int64_t br = (rows + B - 1) / B, bc = (cols + B - 1) / B;
        if (!make) {
            out->add(name, DType::f8_e4m3, {rows, cols}, {});
            out->add(name + "_scale_inv", DType::f32, {br, bc}, {});
            return;
        }
        // Quantised per 128x128 block: scale = max|w| / 448 (e4m3's largest value).
        const std::vector<uint8_t> raw = random_bytes(rows * cols, DType::f32, a, 0.0f, seed ^ std::hash<std::string>{}(name));
        const float* w = reinterpret_cast<const float*>(raw.data());
        std::vector<float> scales(static_cast<size_t>(br * bc));
        std::vector<uint8_t> q(static_cast<size_t>(rows * cols));
        for (int64_t i = 0; i < br; ++i)
            for (int64_t j = 0; j < bc; ++j) {
                float mx = 0;
                for (int64_t r = i * B; r < std::min(rows, (i + 1) * B); ++r)
                    for (int64_t k = j * B; k < std::min(cols, (j + 1) * B); ++k) mx = std::max(mx, std::fabs(w[r * cols + k]));
                const float sc = mx > 0 ? mx / 448.0f : 1.0f;
                scales[static_cast<size_t>(i * bc + j)] = sc;
                for (int64_t r = i * B; r < std::min(rows, (i + 1) * B); ++r)
                    for (int64_t k = j * B; k < std::min(cols, (j + 1) * B); ++k)
                        q[static_cast<size_t>(r * cols + k)] = f32_to_f8_e4m3(w[r * cols + k] / sc);
            }
        out->add(name, DType::f8_e4m3, {rows, cols}, std::move(q));
        std::vector<uint8_t> sb(scales.size() * 4);
        std::memcpy(sb.data(), scales.data(), sb.size());
        out->add(name + "_scale_inv", DType::f32, {br, bc}, std::move(sb));
    };
    auto norm = [&](const std::string& name, int64_t n) { add(name, {n}, 0.1f, 1.0f); };
    add(names::embed, {c.vocab_size, H}, 1.0f, 0.0f);
    norm(names::final_norm, H);
    if (!c.tie_word_embeddings) {
        const float a = std::sqrt(3.0f / static_cast<float>(H));
        add(names::lm_head, {c.vocab_size, H}, a, 0.0f);
    }
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        norm(names::attn_norm(i), H);
        norm(names::ffn_norm(i), H);
        if (!c.is_mla()) {
            linear(names::attn(i, "q_proj"), nh * hd, H);
            linear(names::attn(i, "k_proj"), c.num_key_value_heads * hd, H);
            linear(names::attn(i, "v_proj"), c.num_key_value_heads * hd, H);
            linear(names::attn(i, "o_proj"), H, nh * hd);
        } else {
            const int64_t dq = c.qk_head_dim();
            if (c.q_lora_rank == 0) {
                linear(names::attn(i, "q_proj"), nh * dq, H);
            } else {
                linear(names::attn(i, "q_a_proj"), c.q_lora_rank, H);
                norm(names::attn(i, "q_a_layernorm"), c.q_lora_rank);
                linear(names::attn(i, "q_b_proj"), nh * dq, c.q_lora_rank);
            }
            linear(names::attn(i, "kv_a_proj_with_mqa"), c.kv_lora_rank + c.qk_rope_head_dim, H);
            norm(names::attn(i, "kv_a_layernorm"), c.kv_lora_rank);
            linear(names::attn(i, "kv_b_proj"), nh * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank);
            linear(names::attn(i, "o_proj"), H, nh * c.v_head_dim);
        }
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
        if (c.topk_method == TopkMethod::noaux_tc) {
            const uint64_t bseed = seed ^ std::hash<std::string>{}(names::router_bias(i));
            items.push_back(Item{names::router_bias(i), DType::f32, {c.n_routed_experts}, RandomRecipe{0.05f, 0.0f, bseed}, {}});
        }
        for (int64_t e = 0; e < c.n_routed_experts; ++e)
            mlp3([&](const char* p) { return names::expert(i, e, p); }, c.moe_intermediate_size);
        if (c.n_shared_experts > 0) mlp3([&](const char* p) { return names::shared(i, p); }, c.shared_width());
    }
    return items;
}

// Who needs the memory, for messages: the config's file where it has one.
std::string random_of(const ModelConfig& c) {
    return c.source.empty() ? "random weights" : "random weights of " + c.source;
}

// The bytes of items (of a shapes-only list); with recipes_too false, only those made at once.
size_t items_bytes(const std::vector<Item>& items, bool recipes_too) {
    size_t n = 0;
    for (const Item& it : items)
        if (recipes_too || !it.recipe) n += static_cast<size_t>(numel_of(it.shape)) * dtype_size(it.dtype);
    return n;
}

}  // namespace

size_t random_weight_bytes(const ModelConfig& c, DType dtype) {
    return items_bytes(random_items(c, dtype, 0, false), true);
}

std::shared_ptr<MemoryTensors> make_random_tensors(const ModelConfig& c, DType dtype, uint64_t seed) {
    require_host_memory(random_weight_bytes(c, dtype), random_of(c), "every tensor at once");
    auto out = std::make_shared<MemoryTensors>();
    for (Item& it : random_items(c, dtype, seed)) {
        if (it.recipe)
            it.bytes = random_bytes(numel_of(it.shape), it.dtype, it.recipe->scale, it.recipe->offset, it.recipe->seed);
        out->add(it.name, it.dtype, std::move(it.shape), std::move(it.bytes));
    }
    return out;
}

RandomTensors::RandomTensors(const ModelConfig& config, DType dtype, uint64_t seed) : describe_(random_of(config)) {
    if (const size_t eager = items_bytes(random_items(config, dtype, seed, false), false))
        require_host_memory(eager, random_of(config), "its FP8 linears (made at once)");
    for (Item& it : random_items(config, dtype, seed)) {
        auto e = std::make_unique<Entry>();
        e->view.name = it.name;
        e->view.dtype = it.dtype;
        e->view.shape = it.shape;
        e->view.nbytes = static_cast<size_t>(numel_of(it.shape)) * dtype_size(it.dtype);
        e->recipe = it.recipe;
        if (!it.recipe) {
            e->bytes = std::move(it.bytes);
            e->view.data = e->bytes.data();
        }
        bytes_ += e->view.nbytes;
        tensors_[it.name] = std::move(e);
    }
}

const TensorView* RandomTensors::find(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) return nullptr;
    Entry& e = *it->second;
    std::lock_guard lock(mutex_);
    if (!e.view.data) {
        e.bytes.resize(e.view.nbytes);
        fill_values(e.view.numel(), e.view.dtype, e.recipe->scale, e.recipe->offset, e.recipe->seed, e.bytes.data());
        e.view.data = e.bytes.data();
    }
    return &e.view;
}

const TensorView* RandomTensors::shape_of(const std::string& name) const {
    const auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second->view;
}

size_t RandomTensors::bytes_to_make() const {
    std::lock_guard lock(mutex_);
    size_t n = 0;
    for (const auto& [name, e] : tensors_)
        if (!e->view.data) n += e->view.nbytes;
    return n;
}

const RandomRecipe* RandomTensors::pending(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end() || !it->second->recipe) return nullptr;
    std::lock_guard lock(mutex_);
    return it->second->view.data ? nullptr : &*it->second->recipe;
}

std::vector<std::string> RandomTensors::names() const {
    std::vector<std::string> out;
    for (const auto& [name, e] : tensors_) out.push_back(name);
    return out;
}

}  // namespace moe
