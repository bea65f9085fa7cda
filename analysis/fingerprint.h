// Content fingerprints for the routing store: a fast 64-bit hash of bytes (documents'
// texts, the sampled contents of a model), and the ModelRecord of a loaded model. A
// fingerprint tells "the same model / the same text" apart from a different one; it is not
// a cryptographic hash and does not defend against deliberate collisions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "analysis/store_types.h"
#include "engine/model.h"
#include "engine/tokenizer.h"

namespace moe::analysis {

class Hasher {
public:
    explicit Hasher(uint64_t seed = 0x6d6f652d77622d31ull);
    Hasher& update(const void* data, size_t bytes);
    Hasher& update(std::string_view s);  // length-prefixed, so ("ab","c") differs from ("a","bc")
    Hasher& update_u64(uint64_t v);
    uint64_t digest() const;
    std::string hex() const;  // 16 lowercase hex digits

private:
    uint64_t h_;
    uint64_t n_ = 0;
};

std::string text_hash(std::string_view text);  // Hasher over the text, as hex
std::string read_file_or_empty(const std::string& path);  // the file's bytes; "" when unreadable

// The config part of a model's record: name and path from `dir` (a model directory, or its
// config file; empty: "in-memory"), the architecture, the config's text (the file's when
// present, else the parsed fields as JSON) and the expert counts. No fingerprint.
ModelRecord model_record_from_config(const ModelConfig& config, const std::string& dir);

// Describes a model for the store: name and path from `dir` (empty: "in-memory"), the
// config (DIR/config.json's text when present, else the parsed fields as JSON), the
// fingerprint "fp1:<hex>" of the config, every tensor's name, dtype, shape and sampled bytes
// (all bytes of tensors up to 48 KiB; the first, middle and last 16 KiB of larger ones) and
// the tokenizer.json bytes, and, when a tokenizer is given, the text of every token.
ModelRecord describe_model(const Model& model, const Tokenizer* tokenizer, const std::string& dir);

}  // namespace moe::analysis
