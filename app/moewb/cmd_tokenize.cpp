// moewb tokenize / detokenize (filled in by the tokenizer work).
#include "app/moewb/commands.h"
#include "engine/error.h"

namespace moewb {
int cmd_tokenize(int, char**) { moe::throw_input_error("tokenize", "not available in this build yet"); }
int cmd_detokenize(int, char**) { moe::throw_input_error("detokenize", "not available in this build yet"); }
}  // namespace moewb
