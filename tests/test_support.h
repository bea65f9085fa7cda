// Small helpers shared by the test suites: where the fixtures are, and reading files.
#pragma once

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

}  // namespace test_support
