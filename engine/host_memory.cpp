// Host memory checks; see host_memory.h.
#include "engine/host_memory.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "engine/error.h"

namespace moe {

namespace {
// The kB value of a "Name:   1234 kB" line of meminfo, or nothing.
std::optional<uint64_t> field_kb(std::string_view text, std::string_view name) {
    size_t at = 0;
    while (at < text.size()) {
        const size_t end = std::min(text.find('\n', at), text.size());
        const std::string_view line = text.substr(at, end - at);
        at = end + 1;
        if (line.size() <= name.size() || line.substr(0, name.size()) != name || line[name.size()] != ':') continue;
        uint64_t v = 0;
        bool digits = false;
        for (char ch : line.substr(name.size() + 1)) {
            if (ch >= '0' && ch <= '9') {
                v = v * 10 + static_cast<uint64_t>(ch - '0');
                digits = true;
            } else if (digits) {
                break;
            }
        }
        if (digits) return v;
    }
    return std::nullopt;
}
}  // namespace

std::optional<uint64_t> parse_available_memory(std::string_view meminfo) {
    const auto available = field_kb(meminfo, "MemAvailable");
    if (!available) return std::nullopt;
    return (*available + field_kb(meminfo, "SwapFree").value_or(0)) * 1024;
}

std::optional<uint64_t> available_host_memory() {
    std::ifstream f("/proc/meminfo");
    if (!f) return std::nullopt;
    std::stringstream text;
    text << f.rdbuf();
    return parse_available_memory(text.str());
}

std::string format_gib(uint64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
    return buf;
}

void require_host_memory(uint64_t bytes, const std::string& who, const std::string& what) {
    const auto available = available_host_memory();
    if (!available || bytes <= *available) return;
    throw_input_error(who, "needs " + format_gib(bytes) + " of host memory for " + what + "; this machine has " +
                               format_gib(*available) + " available (MemAvailable and SwapFree of /proc/meminfo)");
}

}  // namespace moe
