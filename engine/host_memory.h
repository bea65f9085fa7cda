// The host memory a model may still take, for refusing (with a clear error) what would only
// end in the kernel's out-of-memory killer: weights made in memory (random weights on the
// CPU, FP8 random linears) rather than mapped from a checkpoint's files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moe {

// MemAvailable plus SwapFree of a /proc/meminfo text, in bytes (the kernel's estimate of what
// can be allocated without swapping, and the swap left); nothing where MemAvailable is absent.
std::optional<uint64_t> parse_available_memory(std::string_view meminfo);
// The same of this machine's /proc/meminfo; nothing where it cannot be read.
std::optional<uint64_t> available_host_memory();
// "12.34 GiB".
std::string format_gib(uint64_t bytes);
// Refuses (input error naming `who`) a need of `bytes` that the available host memory cannot
// meet: "`who`: needs X GiB of host memory for `what`; this machine has Y GiB available".
void require_host_memory(uint64_t bytes, const std::string& who, const std::string& what);

}  // namespace moe
