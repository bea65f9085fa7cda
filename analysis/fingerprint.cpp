// Fingerprints and model records; see fingerprint.h.
#include "analysis/fingerprint.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace moe::analysis {

namespace {

constexpr uint64_t kMul1 = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMul2 = 0xBF58476D1CE4E5B9ull;

uint64_t finalize(uint64_t z) {  // splitmix64's finaliser
    z = (z ^ (z >> 30)) * kMul2;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

std::string config_as_json(const ModelConfig& c) {
    nlohmann::json j = {{"model_type", c.model_type},
                        {"vocab_size", c.vocab_size},
                        {"hidden_size", c.hidden_size},
                        {"intermediate_size", c.intermediate_size},
                        {"moe_intermediate_size", c.moe_intermediate_size},
                        {"num_hidden_layers", c.num_hidden_layers},
                        {"num_attention_heads", c.num_attention_heads},
                        {"num_key_value_heads", c.num_key_value_heads},
                        {"n_routed_experts", c.n_routed_experts},
                        {"n_shared_experts", c.n_shared_experts},
                        {"num_experts_per_tok", c.num_experts_per_tok},
                        {"first_k_dense_replace", c.first_k_dense_replace},
                        {"moe_layer_freq", c.moe_layer_freq},
                        {"norm_topk_prob", c.norm_topk_prob},
                        {"max_position_embeddings", c.max_position_embeddings},
                        {"rope_theta", c.rope_theta},
                        {"rms_norm_eps", c.rms_norm_eps},
                        {"tie_word_embeddings", c.tie_word_embeddings}};
    return j.dump();
}

}  // namespace

Hasher::Hasher(uint64_t seed) : h_(finalize(seed)) {}

Hasher& Hasher::update(const void* data, size_t bytes) {
    const auto* p = static_cast<const uint8_t*>(data);
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
        h_ = std::rotl(h_ ^ (w * kMul1), 31) * kMul2;
    }
    uint64_t tail = 0;
    for (size_t j = 0; i + j < bytes; ++j) tail |= static_cast<uint64_t>(p[i + j]) << (8 * j);
    h_ = std::rotl(h_ ^ ((tail ^ bytes) * kMul1), 31) * kMul2;
    n_ += bytes;
    return *this;
}

Hasher& Hasher::update(std::string_view s) {
    update_u64(s.size());
    return update(s.data(), s.size());
}

Hasher& Hasher::update_u64(uint64_t v) {
    return update(&v, 8);
}

uint64_t Hasher::digest() const {
    return finalize(h_ ^ n_);
}

std::string Hasher::hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(digest()));
    return buf;
}

std::string text_hash(std::string_view text) {
    return Hasher().update(text).hex();
}

std::string read_file_or_empty(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

ModelRecord model_record_from_config(const ModelConfig& c, const std::string& dir) {
    namespace fs = std::filesystem;
    ModelRecord r;
    if (dir.empty()) {
        r.name = "in-memory";
    } else {
        std::error_code ec;
        const fs::path p = fs::weakly_canonical(fs::absolute(dir), ec);
        r.path = p.string();
        r.name = p.filename().empty() ? p.parent_path().filename().string() : p.filename().string();
        r.config_json = read_file_or_empty((fs::is_directory(p) ? p / "config.json" : p).string());
    }
    if (r.config_json.empty()) r.config_json = config_as_json(c);
    r.architecture = c.model_type;
    r.n_layers = c.num_hidden_layers;
    r.n_routed_experts = c.n_routed_experts;
    r.n_shared_experts = c.n_shared_experts;
    r.num_experts_per_tok = c.num_experts_per_tok;
    r.vocab_size = c.vocab_size;
    return r;
}

ModelRecord describe_model(const Model& model, const Tokenizer* tokenizer, const std::string& dir) {
    ModelRecord r = model_record_from_config(model.config(), dir);

    Hasher h;
    h.update(std::string_view("moe-workbench model fingerprint 1"));
    h.update(r.config_json);
    const TensorSource& ts = model.tensors();
    std::vector<std::string> names = ts.names();
    std::sort(names.begin(), names.end());
    constexpr size_t kSample = 16 << 10;
    for (const std::string& n : names) {
        const TensorView* t = ts.find(n);
        h.update(n).update_u64(static_cast<uint64_t>(t->dtype)).update_u64(t->nbytes);
        for (int64_t d : t->shape) h.update_u64(static_cast<uint64_t>(d));
        const auto* p = static_cast<const uint8_t*>(t->data);
        if (t->nbytes <= 3 * kSample) {
            h.update(p, t->nbytes);
        } else {
            h.update(p, kSample);
            h.update(p + (t->nbytes / 2 - kSample / 2), kSample);
            h.update(p + (t->nbytes - kSample), kSample);
        }
    }
    if (tokenizer) {
        h.update(read_file_or_empty(tokenizer->source()));
        const int32_t V = tokenizer->vocab_size();
        r.vocab.resize(static_cast<size_t>(V));
        for (int32_t id = 0; id < V; ++id) {
            try {
                r.vocab[static_cast<size_t>(id)] = utf8_escape_invalid(tokenizer->token_text(id));
            } catch (const Error&) {
                // an id that names no token: empty text
            }
        }
    }
    r.content_hash = "fp1:" + h.hex();
    return r;
}

}  // namespace moe::analysis
