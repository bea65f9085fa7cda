#include "app/moewb/commands.h"
#include "engine/error.h"
namespace moewb {
int cmd_bench(int, char**) { moe::throw_input_error("bench", "not available yet"); }
}  // namespace moewb
