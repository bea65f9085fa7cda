#include "app/moewb/commands.h"
#include "engine/error.h"
namespace moewb {
int cmd_generate(int, char**) { moe::throw_input_error("generate", "not available yet"); }
}  // namespace moewb
