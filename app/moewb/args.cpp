// Implementation of moewb's argument parser; see args.h.
#include "app/moewb/args.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "engine/error.h"

namespace moewb {

Args::Args(int argc, char** argv, const std::set<std::string>& value_flags,
           const std::set<std::string>& switch_flags) {
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            help_ = true;
            continue;
        }
        if (a.rfind("--", 0) != 0) moe::throw_input_error("argument '" + a + "'", "unexpected positional argument");
        std::string name = a;
        std::optional<std::string> inline_value;
        if (auto eq = a.find('='); eq != std::string::npos) {
            name = a.substr(0, eq);
            inline_value = a.substr(eq + 1);
        }
        if (value_flags.count(name)) {
            if (inline_value) {
                values_[name] = *inline_value;
            } else {
                if (i + 1 >= argc) moe::throw_input_error(name, "missing value");
                values_[name] = argv[++i];
            }
        } else if (switch_flags.count(name)) {
            if (inline_value) moe::throw_input_error(name, "takes no value");
            switches_.insert(name);
        } else {
            moe::throw_input_error(name, "unknown option (see --help)");
        }
    }
}

bool Args::has(const std::string& flag) const { return values_.count(flag) || switches_.count(flag); }

std::optional<std::string> Args::get(const std::string& flag) const {
    auto it = values_.find(flag);
    if (it == values_.end()) return std::nullopt;
    return it->second;
}

std::string Args::require(const std::string& flag) const {
    auto v = get(flag);
    if (!v) moe::throw_input_error(flag, "is required (see --help)");
    return *v;
}

std::string Args::get_or(const std::string& flag, const std::string& fallback) const {
    auto v = get(flag);
    return v ? *v : fallback;
}

int64_t Args::get_int(const std::string& flag, int64_t fallback, int64_t min, int64_t max) const {
    auto v = get(flag);
    if (!v) return fallback;
    errno = 0;
    char* end = nullptr;
    long long x = std::strtoll(v->c_str(), &end, 10);
    if (!v->empty() && *end == '\0' && errno == ERANGE)
        moe::throw_input_error(
            flag, "value " + *v + " out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    if (v->empty() || *end != '\0' || errno != 0)
        moe::throw_input_error(flag, "expected an integer, found '" + *v + "'");
    if (x < min || x > max)
        moe::throw_input_error(flag, "value " + *v + " out of range [" + std::to_string(min) + ", " +
                                         std::to_string(max) + "]");
    return x;
}

double Args::get_double(const std::string& flag, double fallback, double min, double max) const {
    auto v = get(flag);
    if (!v) return fallback;
    errno = 0;
    char* end = nullptr;
    double x = std::strtod(v->c_str(), &end);
    if (v->empty() || *end != '\0' || errno != 0 || !std::isfinite(x))
        moe::throw_input_error(flag, "expected a number, found '" + *v + "'");
    if (x < min || x > max)
        moe::throw_input_error(flag, "value " + *v + " out of range [" + std::to_string(min) + ", " +
                                         std::to_string(max) + "]");
    return x;
}

std::vector<int32_t> parse_id_list(const std::string& text, const std::string& flag) {
    std::vector<int32_t> ids;
    size_t start = 0;
    if (text.empty()) moe::throw_input_error(flag, "empty id list");
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || errno != 0 || v < 0 || v > INT32_MAX)
            moe::throw_input_error(flag, "bad token id '" + item + "' (expected non-negative integers joined by ',')");
        ids.push_back(static_cast<int32_t>(v));
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return ids;
}

std::vector<std::string> split_list(const std::string& text, const std::string& flag) {
    std::vector<std::string> out;
    if (text.empty()) moe::throw_input_error(flag, "empty list");
    size_t start = 0;
    while (true) {
        const size_t comma = text.find(',', start);
        out.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (out.back().empty()) moe::throw_input_error(flag, "empty element in '" + text + "'");
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

std::vector<double> parse_number_list(const std::string& text, const std::string& flag) {
    std::vector<double> out;
    for (const std::string& item : split_list(text, flag)) {
        errno = 0;
        char* end = nullptr;
        const double x = std::strtod(item.c_str(), &end);
        if (*end != '\0' || errno != 0 || !std::isfinite(x))
            moe::throw_input_error(flag, "'" + item + "' is not a number (expected numbers joined by ',')");
        out.push_back(x);
    }
    return out;
}

std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag) {
    auto integer = [&](const std::string& item) {
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || errno != 0)
            moe::throw_input_error(flag, "'" + item + "' is not an integer (expected integers or A..B ranges joined by ',')");
        return static_cast<int64_t>(v);
    };
    std::vector<int64_t> out;
    for (const std::string& item : split_list(text, flag)) {
        const size_t dots = item.find("..");
        if (dots == std::string::npos) {
            out.push_back(integer(item));
            continue;
        }
        const int64_t a = integer(item.substr(0, dots)), b = integer(item.substr(dots + 2));
        if (b < a || b - a > 1000000) moe::throw_input_error(flag, "bad range '" + item + "'");
        for (int64_t v = a; v <= b; ++v) out.push_back(v);
    }
    return out;
}

}  // namespace moewb
