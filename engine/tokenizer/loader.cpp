// Reads tokenizer.json and tokenizer_config.json into a TokenizerImpl; see tokenizer_impl.h.
// Stricter than HF tokenizers where HF only warns: an added token whose id disagrees with the
// model vocab, or two tokens sharing an id, is an error rather than a silent renumbering.
#include <algorithm>

#include "engine/tokenizer/tokenizer_impl.h"
#include "engine/tokenizer/utf8.h"

namespace moe::tok {

namespace {

Json parse_json(std::string_view text) {
    try {
        return Json::parse(text.begin(), text.end());
    } catch (const Json::parse_error& e) {
        moe::throw_input_error("", "not valid JSON (byte " + std::to_string(e.byte) + "): " + e.what());
    }
}

std::vector<AddedToken> parse_added_tokens(const Json& root) {
    std::vector<AddedToken> out;
    const Json* list = json_optional(root, "added_tokens");
    if (!list) return out;
    if (!list->is_array()) json_error("added_tokens", "expected an array, found " + json_kind(*list));
    for (size_t i = 0; i < list->size(); ++i) {
        const std::string path = "added_tokens[" + std::to_string(i) + "]";
        const Json& t = (*list)[i];
        AddedToken a;
        a.id = json_token_id(json_field(t, "id", path), path + ".id");
        a.content = json_string(json_field(t, "content", path), path + ".content");
        if (a.content.empty()) json_error(path + ".content", "empty token");
        if (find_invalid_utf8(a.content) != std::string::npos) json_error(path + ".content", "not valid UTF-8");
        a.single_word = json_bool_or(t, "single_word", false, path);
        a.lstrip = json_bool_or(t, "lstrip", false, path);
        a.rstrip = json_bool_or(t, "rstrip", false, path);
        a.special = json_bool_or(t, "special", false, path);
        a.normalized = json_bool_or(t, "normalized", !a.special, path);
        out.push_back(std::move(a));
    }
    return out;
}

// bos_token / eos_token of tokenizer_config.json: a string or {"content": ...}.
std::optional<std::string> config_token(const Json& config, const char* key) {
    const Json* v = json_optional(config, key);
    if (!v) return std::nullopt;
    if (v->is_string()) return v->get<std::string>();
    if (v->is_object()) return json_string(json_field(*v, "content", key), std::string(key) + ".content");
    json_error(key, "expected a string or an object with 'content', found " + json_kind(*v));
}

std::optional<int32_t> lookup_token(const TokenizerImpl& t, std::string_view content) {
    if (auto it = t.added_ids.find(content); it != t.added_ids.end()) return it->second;
    return t.model->token_to_id(content);
}

void build(TokenizerImpl& t, const Json& root) {
    if (!root.is_object()) json_error("(top level)", "expected an object, found " + json_kind(root));
    if (const Json* v = json_optional(root, "version"))
        if (!(v->is_string() && v->get<std::string>() == "1.0")) json_error("version", "unknown tokenizer version " + v->dump());
    t.model = BpeModel::parse(json_field(root, "model", "(top level)"), "model");
    if (const Json* n = json_optional(root, "normalizer")) t.normalizer = parse_normalizer(*n, "normalizer");

    std::vector<AddedToken> added = parse_added_tokens(root);
    const auto& model_tokens = t.model->id_to_token();
    int64_t size = static_cast<int64_t>(model_tokens.size());
    for (const AddedToken& a : added) size = std::max<int64_t>(size, int64_t{a.id} + 1);
    if (size > static_cast<int64_t>(model_tokens.size()) + static_cast<int64_t>(added.size()) + 1'000'000)
        json_error("added_tokens", "ids leave a gap of more than a million unused ids after the vocab");
    t.decode_string.assign(static_cast<size_t>(size), std::string());
    t.special.assign(static_cast<size_t>(size), 0);
    t.is_added.assign(static_cast<size_t>(size), 0);
    for (size_t id = 0; id < model_tokens.size(); ++id) t.decode_string[id] = model_tokens[id];
    for (size_t i = 0; i < added.size(); ++i) {
        const AddedToken& a = added[i];
        const std::string path = "added_tokens[" + std::to_string(i) + "]";
        const auto id = static_cast<size_t>(a.id);
        if (t.is_added[id])
            json_error(path + ".id", "duplicate id " + std::to_string(a.id) + ": given to both '" + t.decode_string[id] +
                                         "' and '" + a.content + "'");
        if (auto vid = t.model->token_to_id(a.content); vid && *vid != a.id)
            json_error(path, "'" + a.content + "' has id " + std::to_string(a.id) + " but the model vocab gives it id " +
                                 std::to_string(*vid));
        if (id < model_tokens.size() && !model_tokens[id].empty() && model_tokens[id] != a.content)
            json_error(path + ".id", "id " + std::to_string(a.id) + " of '" + a.content + "' is already the vocab's '" +
                                         model_tokens[id] + "'");
        if (t.added_ids.count(a.content))
            json_error(path + ".content", "'" + a.content + "' is listed twice");
        t.is_added[id] = 1;
        t.special[id] = a.special ? 1 : 0;
        t.added_ids.emplace(a.content, a.id);
    }
    t.added.build(std::move(added), t.normalizer.get());
    for (size_t i = 0; i < t.added.tokens().size(); ++i)
        t.decode_string[static_cast<size_t>(t.added.tokens()[i].id)] = t.added.decode_content(i);

    if (const Json* p = json_optional(root, "pre_tokenizer")) t.pre_tokenizer = PreTokenizer::parse(*p, "pre_tokenizer");
    if (const Json* p = json_optional(root, "post_processor")) t.post = PostProcessor::parse(*p, "post_processor", size);
    if (const Json* d = json_optional(root, "decoder")) t.decoder = Decoder::parse(*d, "decoder");
}

void apply_config(TokenizerImpl& t, const Json& config) {
    if (!config.is_object()) json_error("(top level)", "expected an object, found " + json_kind(config));
    auto resolve = [&](const char* key) -> std::optional<int32_t> {
        const auto name = config_token(config, key);
        return name ? lookup_token(t, *name) : std::nullopt;
    };
    t.bos = resolve("bos_token");
    t.eos = resolve("eos_token");
    const Json* add_bos = json_optional(config, "add_bos_token");
    const Json* add_eos = json_optional(config, "add_eos_token");
    if (!add_bos && !add_eos) return;
    t.config_decides = true;
    t.add_bos = add_bos && json_bool(*add_bos, "add_bos_token");
    t.add_eos = add_eos && json_bool(*add_eos, "add_eos_token");
    if (t.add_bos && !t.bos)
        json_error("bos_token", config_token(config, "bos_token") ? "'" + *config_token(config, "bos_token") + "' is not a token"
                                                                 : "add_bos_token is true but bos_token is not set");
    if (t.add_eos && !t.eos)
        json_error("eos_token", config_token(config, "eos_token") ? "'" + *config_token(config, "eos_token") + "' is not a token"
                                                                 : "add_eos_token is true but eos_token is not set");
}

}  // namespace

std::shared_ptr<const TokenizerImpl> load_tokenizer(std::string_view tokenizer_json, std::string_view config_json,
                                                    const std::string& origin, const std::string& config_origin) {
    auto t = std::make_shared<TokenizerImpl>();
    t->source = origin;
    const std::string* where = &origin;
    try {
        build(*t, parse_json(tokenizer_json));
        if (!config_json.empty()) {
            where = &config_origin;
            apply_config(*t, parse_json(config_json));
        }
        if (!t->config_decides) {
            // No say from the config: BOS/EOS are what the post-processor wraps the text in.
            if (!t->bos && t->post.prefix.size() == 1) t->bos = t->post.prefix[0];
            if (!t->eos && t->post.suffix.size() == 1) t->eos = t->post.suffix[0];
        }
    } catch (const moe::Error& e) {
        moe::rethrow_with_context(e, *where);
    } catch (const Json::exception& e) {
        moe::throw_input_error(*where, std::string("unexpected JSON content: ") + e.what());
    }
    return t;
}

}  // namespace moe::tok
