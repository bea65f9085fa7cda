// Command-line argument parsing for moewb: `--flag value`, `--flag=value` and boolean
// switches. Unknown flags, missing values and malformed numbers are usage errors
// (moe::Error of kind input, so the CLI exits 2) naming the flag.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace moewb {

class Args {
public:
    // `value_flags` take a value, `switch_flags` do not; anything else is refused.
    Args(int argc, char** argv, const std::set<std::string>& value_flags,
         const std::set<std::string>& switch_flags);

    bool has(const std::string& flag) const;
    bool help() const { return help_; }
    std::optional<std::string> get(const std::string& flag) const;
    std::string require(const std::string& flag) const;
    std::string get_or(const std::string& flag, const std::string& fallback) const;
    int64_t get_int(const std::string& flag, int64_t fallback, int64_t min, int64_t max) const;
    double get_double(const std::string& flag, double fallback, double min, double max) const;

private:
    std::map<std::string, std::string> values_;
    std::set<std::string> switches_;
    bool help_ = false;
};

// "1,2,3" -> ids; a bad element is a usage error naming `flag`.
std::vector<int32_t> parse_id_list(const std::string& text, const std::string& flag);
// "a,b,c" -> items (none empty); numbers; integers, where "A..B" is the range A, A+1, ..., B.
std::vector<std::string> split_list(const std::string& text, const std::string& flag);
std::vector<double> parse_number_list(const std::string& text, const std::string& flag);
std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag);

}  // namespace moewb
