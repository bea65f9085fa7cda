// Chat template rendering; see chat_template.h.
#include "engine/chat_template.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/model_config.h"

namespace moe {

namespace {

const char* kBos = "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";
const char* kEos = "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";
const char* kUser = "<\xEF\xBD\x9C" "User\xEF\xBD\x9C>";
const char* kAssistant = "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>";
constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";

void check_role(const ChatMessage& m) {
    if (m.role != "user" && m.role != "assistant" && m.role != "system")
        throw_input_error("chat message", "unknown role '" + m.role + "' (expected system, user or assistant)");
}

}  // namespace

ChatTemplate deepseek_moe_chat_template() { return {"deepseek-llm", ChatStyle::deepseek_llm, kBos, kEos}; }
ChatTemplate deepseek_v3_chat_template() { return {"deepseek-v3", ChatStyle::deepseek_v3, kBos, kEos}; }
ChatTemplate deepseek_r1_chat_template() { return {"deepseek-r1", ChatStyle::deepseek_r1, kBos, kEos}; }

ChatTemplate chat_template_for(const std::string& model_dir, const ModelConfig& config) {
    std::string text;
    const std::filesystem::path p = std::filesystem::path(model_dir) / "tokenizer_config.json";
    if (std::ifstream in(p); in) {
        try {
            const nlohmann::json j = nlohmann::json::parse(in);
            if (j.contains("chat_template") && j["chat_template"].is_string()) text = j["chat_template"].get<std::string>();
        } catch (const nlohmann::json::exception& e) {
            throw_input_error(p.string(), std::string("not valid JSON: ") + e.what());
        }
    }
    if (text.find(kAssistant) != std::string::npos)
        return text.find(kThinkClose) != std::string::npos ? deepseek_r1_chat_template() : deepseek_v3_chat_template();
    if (text.empty() && config.arch == Architecture::deepseek_v3) return deepseek_v3_chat_template();
    return deepseek_moe_chat_template();
}

std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
    std::string out = t.bos;
    if (t.style == ChatStyle::deepseek_llm) {
        for (const ChatMessage& m : messages) {
            check_role(m);
            if (m.role == "user") out += "User: " + m.content + "\n\n";
            else if (m.role == "assistant") out += "Assistant: " + m.content + t.eos;
            else out += m.content + "\n\n";
        }
        if (add_generation_prompt) out += "Assistant:";
        return out;
    }
    // V3 / R1: the system prompt (all system messages, joined) right after BOS.
    std::string system;
    for (const ChatMessage& m : messages) {
        check_role(m);
        if (m.role == "system") system += (system.empty() ? "" : "\n\n") + m.content;
    }
    out += system;
    for (const ChatMessage& m : messages) {
        if (m.role == "user") {
            out += kUser + m.content;
        } else if (m.role == "assistant") {
            std::string content = m.content;
            if (t.style == ChatStyle::deepseek_r1) {
                const size_t end = content.find(kThinkClose);
                if (end != std::string::npos) content = content.substr(end + kThinkClose.size());
            }
            out += kAssistant + content + t.eos;
        }
    }
    if (add_generation_prompt) {
        out += kAssistant;
        if (t.style == ChatStyle::deepseek_r1) out += "<think>\n";
    }
    return out;
}

std::vector<ThinkingSplitter::Piece> ThinkingSplitter::push(std::string_view text) {
    pending_ += text;
    std::vector<Piece> out;
    while (true) {
        const std::string_view marker = thinking_ ? kThinkClose : kThinkOpen;
        const size_t at = pending_.find(marker);
        if (at != std::string::npos) {
            if (at > 0) out.push_back({thinking_, pending_.substr(0, at)});
            pending_.erase(0, at + marker.size());
            thinking_ = !thinking_;
            continue;
        }
        // Hold back a tail that could be the start of the marker.
        size_t keep = 0;
        for (size_t n = std::min(marker.size() - 1, pending_.size()); n > 0; --n)
            if (pending_.compare(pending_.size() - n, n, marker.substr(0, n)) == 0) {
                keep = n;
                break;
            }
        if (pending_.size() > keep) out.push_back({thinking_, pending_.substr(0, pending_.size() - keep)});
        pending_.erase(0, pending_.size() - keep);
        return out;
    }
}

std::vector<ThinkingSplitter::Piece> ThinkingSplitter::finish() {
    std::vector<Piece> out;
    if (!pending_.empty()) out.push_back({thinking_, pending_});
    pending_.clear();
    return out;
}

}  // namespace moe
