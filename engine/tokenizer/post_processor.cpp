// Post-processor parsing; see post_processor.h. HF semantics (processors/template.rs): with
// add_special_tokens the single template's SpecialToken items contribute their ids in order,
// around the sequence $A; Bert/Roberta put cls before and sep after.
#include "engine/tokenizer/post_processor.h"

namespace moe::tok {

namespace {

void check_id(int64_t id, int64_t vocab_size, const std::string& path) {
    if (id < 0 || id >= vocab_size)
        json_error(path, "token id " + std::to_string(id) + " is not in the vocabulary (size " + std::to_string(vocab_size) + ")");
}

void parse_into(const Json& j, const std::string& path,
                int64_t vocab_size, PostProcessor& pp) {
    if (j.is_null()) return;
    const std::string type = json_type(j, path);
    if (type == "ByteLevel") return;
    if (type == "Sequence") {
        const Json& list = json_field(j, "processors", path);
        if (!list.is_array()) json_error(path + ".processors", "expected an array, found " + json_kind(list));
        for (size_t i = 0; i < list.size(); ++i)
            parse_into(list[i], path + ".processors[" + std::to_string(i) + "]", vocab_size, pp);
        return;
    }
    if (type == "BertProcessing" || type == "RobertaProcessing") {
        std::vector<int32_t> ids;
        for (const char* key : {"cls", "sep"}) {
            const Json& pair = json_field(j, key, path);
            const std::string where = path + "." + key;
            if (!pair.is_array() || pair.size() != 2) json_error(where, "expected [token, id], found " + pair.dump());
            const int32_t id = json_token_id(pair[1], where + "[1]");
            check_id(id, vocab_size, where + "[1]");
            ids.push_back(id);
        }
        pp.prefix.insert(pp.prefix.begin(), ids[0]);
        pp.suffix.push_back(ids[1]);
        return;
    }
    if (type != "TemplateProcessing")
        json_error(path + ".type", "post-processor '" + type +
                                       "' is not supported (supported: TemplateProcessing, BertProcessing, "
                                       "RobertaProcessing, ByteLevel, Sequence)");
    const Json& single = json_field(j, "single", path);
    if (!single.is_array()) json_error(path + ".single", "expected an array, found " + json_kind(single));
    const Json* specials = json_optional(j, "special_tokens");
    std::vector<int32_t> before, after;
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
        const std::string where = path + ".single[" + std::to_string(i) + "]";
        const Json& item = single[i];
        if (const Json* seq = json_optional(item, "Sequence")) {
            const std::string id = json_string(json_field(*seq, "id", where + ".Sequence"), where + ".Sequence.id");
            if (id != "A") json_error(where + ".Sequence.id", "a single-sequence template can only name $A, found '" + id + "'");
            if (seen_sequence) json_error(where, "$A appears twice in the template");
            seen_sequence = true;
            continue;
        }
        const Json* st = json_optional(item, "SpecialToken");
        if (!st) json_error(where, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}, found " + item.dump());
        const std::string name = json_string(json_field(*st, "id", where + ".SpecialToken"), where + ".SpecialToken.id");
        const Json* def = specials ? json_optional(*specials, name.c_str()) : nullptr;
        if (!def) json_error(where, "special token '" + name + "' is not defined in " + path + ".special_tokens");
        const std::string def_path = path + ".special_tokens['" + name + "'].ids";
        const Json& ids = json_field(*def, "ids", def_path);
        if (!ids.is_array()) json_error(def_path, "expected an array, found " + json_kind(ids));
        for (size_t k = 0; k < ids.size(); ++k) {
            const int32_t id = json_token_id(ids[k], def_path + "[" + std::to_string(k) + "]");
            check_id(id, vocab_size, def_path + "[" + std::to_string(k) + "]");
            (seen_sequence ? after : before).push_back(id);
        }
    }
    if (!seen_sequence) json_error(path + ".single", "the template has no $A");
    // A later processor of a Sequence wraps what the earlier ones produced.
    pp.prefix.insert(pp.prefix.begin(), before.begin(), before.end());
    pp.suffix.insert(pp.suffix.end(), after.begin(), after.end());
}

}  // namespace

PostProcessor PostProcessor::parse(const Json& j, const std::string& path, int64_t vocab_size) {
    PostProcessor pp;
    parse_into(j, path, vocab_size, pp);
    return pp;
}

}  // namespace moe::tok
