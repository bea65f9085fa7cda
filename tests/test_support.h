// Small helpers shared by the test suites: where the fixtures are, and reading files.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

namespace test_support {

// tests/fixtures/<name> in the source tree.
inline std::string fixture_path(const std::string& name) {
    return std::string(MOE_SOURCE_DIR) + "/tests/fixtures/" + name;
}

inline std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_text(path)); }

// A 64-bit LCG: the same pseudo-random numbers on every machine, for generated test inputs.
struct Lcg {
    uint64_t s;
    uint32_t next() {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<uint32_t>(s >> 33);
    }
    uint32_t next(uint32_t n) { return next() % n; }
};

}  // namespace test_support
