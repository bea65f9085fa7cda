// Typed access to the nlohmann::json tree of a tokenizer.json: every accessor takes the JSON
// path of the value ("pre_tokenizer.pretokenizers[2].pattern") and throws moe::Error(input)
// naming it with what was expected and what was found. Private to the tokenizer.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace moe::tok {

using Json = nlohmann::json;

inline std::string json_kind(const Json& j) { return j.type_name(); }

[[noreturn]] inline void json_error(const std::string& path, const std::string& what) {
    moe::throw_input_error("", path + ": " + what);
}

inline const Json& json_field(const Json& obj, const char* key, const std::string& path) {
    if (!obj.is_object()) json_error(path, "expected an object, found " + json_kind(obj));
    auto it = obj.find(key);
    if (it == obj.end()) json_error(path, std::string("missing field '") + key + "'");
    return *it;
}

// The field, or nullptr when it is absent or null.
inline const Json* json_optional(const Json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

inline std::string json_string(const Json& j, const std::string& path) {
    if (!j.is_string()) json_error(path, "expected a string, found " + json_kind(j));
    return j.get<std::string>();
}

inline bool json_bool(const Json& j, const std::string& path) {
    if (!j.is_boolean()) json_error(path, "expected true or false, found " + json_kind(j));
    return j.get<bool>();
}

inline bool json_bool_or(const Json& obj, const char* key, bool fallback, const std::string& path) {
    const Json* v = json_optional(obj, key);
    return v ? json_bool(*v, path + "." + key) : fallback;
}

inline int64_t json_int(const Json& j, const std::string& path, int64_t min, int64_t max) {
    if (!j.is_number_integer()) json_error(path, "expected an integer, found " + json_kind(j));
    int64_t v = 0;
    if (j.is_number_unsigned()) {
        const uint64_t u = j.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            json_error(path, "integer " + std::to_string(u) + " out of range");
        v = static_cast<int64_t>(u);
    } else {
        v = j.get<int64_t>();
    }
    if (v < min || v > max)
        json_error(path, "value " + std::to_string(v) + " out of range [" + std::to_string(min) + ", " +
                             std::to_string(max) + "]");
    return v;
}

inline std::string json_type(const Json& obj, const std::string& path) {
    return json_string(json_field(obj, "type", path), path + ".type");
}

// A token id: 0 <= id < 2^31 - 1.
inline int32_t json_token_id(const Json& j, const std::string& path) {
    return static_cast<int32_t>(json_int(j, path, 0, std::numeric_limits<int32_t>::max() - 1));
}

}  // namespace moe::tok
