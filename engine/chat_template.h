// Chat templates: conversations rendered to the text the model was trained on, as the
// published tokenizer_config.json templates render them (facts: model-spec.md §1,
// model-spec-v2v3.md §5).
//   deepseek-llm (DeepSeekMoE 16B chat, V2-Chat, V2-Lite-Chat, Coder-V2-Lite-Instruct):
//     BOS, system "{content}\n\n", user "User: {content}\n\n", assistant
//     "Assistant: {content}" + EOS; generation prompt "Assistant:".
//   deepseek-v3 (V3): BOS, the system text right after it (several joined with "\n\n"),
//     user "<｜User｜>{content}", assistant "<｜Assistant｜>{content}" + EOS; generation
//     prompt "<｜Assistant｜>".
//   deepseek-r1 (R1): as V3, but an assistant turn in the history keeps only what follows
//     "</think>", and the generation prompt opens the thinking section:
//     "<｜Assistant｜><think>\n".
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moe {

struct ModelConfig;

struct ChatMessage {
    std::string role;  // "system" | "user" | "assistant"
    std::string content;
};

enum class ChatStyle { deepseek_llm, deepseek_v3, deepseek_r1 };

struct ChatTemplate {
    std::string name;
    ChatStyle style = ChatStyle::deepseek_llm;
    std::string bos;  // token text, e.g. "<｜begin▁of▁sentence｜>"
    std::string eos;
    bool opens_thinking() const { return style == ChatStyle::deepseek_r1; }
};

ChatTemplate deepseek_moe_chat_template();
ChatTemplate deepseek_v3_chat_template();
ChatTemplate deepseek_r1_chat_template();

// The template of a model directory: recognised from DIR/tokenizer_config.json's
// "chat_template" text (its markers: "<｜Assistant｜>" for V3, with "</think>" for R1;
// "Assistant: " for the deepseek-llm form), else from the model type (deepseek_v3 -> V3,
// others -> deepseek-llm).
ChatTemplate chat_template_for(const std::string& model_dir, const ModelConfig& config);

// Renders the conversation; the result starts with the BOS text, so encode it without
// adding special tokens again. An unknown role is an input error.
std::string render_chat(const ChatTemplate& tmpl, const std::vector<ChatMessage>& messages,
                        bool add_generation_prompt);

// Splits a streamed answer of a thinking model into its thinking section and the answer:
// text is thinking until "</think>" (when the prompt opened the section) or between
// "<think>" and "</think>" otherwise. Pieces may end inside a marker; it is held back.
class ThinkingSplitter {
public:
    struct Piece {
        bool thinking = false;
        std::string text;
    };
    explicit ThinkingSplitter(bool starts_thinking) : thinking_(starts_thinking) {}
    std::vector<Piece> push(std::string_view text);
    std::vector<Piece> finish();  // whatever is held back
    bool thinking() const { return thinking_; }

private:
    bool thinking_;
    std::string pending_;
};

}  // namespace moe
