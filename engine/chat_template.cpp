// Chat template rendering; see chat_template.h.
#include "engine/chat_template.h"

#include "engine/error.h"

namespace moe {

ChatTemplate deepseek_moe_chat_template() {
    return {"deepseek-moe-chat", "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
            "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"};
}

std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
    std::string out = t.bos;
    for (const ChatMessage& m : messages) {
        if (m.role == "user") out += "User: " + m.content + "\n\n";
        else if (m.role == "assistant") out += "Assistant: " + m.content + t.eos;
        else if (m.role == "system") out += m.content + "\n\n";
        else throw_input_error("chat message", "unknown role '" + m.role + "' (expected system, user or assistant)");
    }
    if (add_generation_prompt) out += "Assistant:";
    return out;
}

}  // namespace moe
