// Chat templates: conversations rendered to the text the model was trained on.
// deepseek-moe-16b-chat (model-spec.md §1): BOS, then user -> "User: {content}\n\n",
// assistant -> "Assistant: {content}" + EOS, system -> "{content}\n\n"; with a
// generation prompt, "Assistant:" at the end.
#pragma once

#include <string>
#include <vector>

namespace moe {

struct ChatMessage {
    std::string role;  // "system" | "user" | "assistant"
    std::string content;
};

struct ChatTemplate {
    std::string name;
    std::string bos;  // token text, e.g. "<｜begin▁of▁sentence｜>"
    std::string eos;
};

ChatTemplate deepseek_moe_chat_template();

// Renders the conversation; the result starts with the BOS text, so encode it without
// adding special tokens again. An unknown role is an input error.
std::string render_chat(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt);

}  // namespace moe
