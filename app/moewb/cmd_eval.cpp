#include "app/moewb/commands.h"
#include "engine/error.h"
namespace moewb {
int cmd_eval(int, char**) { moe::throw_input_error("eval", "not available yet"); }
}  // namespace moewb
