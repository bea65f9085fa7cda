// Tokenizer behaviour that needs no reference ids: clear errors for bad tokenizer.json files
// (truncated, wrong model type, merges naming unknown tokens, duplicate ids, invalid regex,
// unsupported components), invalid UTF-8 with its byte offset, added tokens matched whole,
// BOS/EOS policy, the streaming decoder on split characters, and concurrent use.
#include <QtTest>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/tokenizer.h"
#include "tests/test_support.h"

using nlohmann::json;

namespace {

const std::string kFixtures = std::string(MOE_SOURCE_DIR) + "/tests/fixtures/tokenizers";

using test_support::read_text;

json tiny_json() { return json::parse(read_text(kFixtures + "/tiny-llm/tokenizer.json")); }

moe::Tokenizer tiny() { return moe::Tokenizer::load_file(kFixtures + "/tiny-llm/tokenizer.json"); }

// The message of the moe::Error(input) that `f` throws; fails the test if it throws nothing.
std::string input_error(const std::function<void()>& f) {
    try {
        f();
    } catch (const moe::Error& e) {
        if (e.kind() != moe::ErrorKind::input) return std::string("(wrong kind) ") + e.what();
        return e.what();
    }
    return "(no error)";
}

std::string load_error(const json& j, const std::string& config = {}) {
    return input_error([&] { moe::Tokenizer::from_json(j.dump(), config, "bad/tokenizer.json"); });
}

#define EXPECT_MESSAGE(message, ...)                                                                   \
    do {                                                                                               \
        const std::string m_ = (message);                                                              \
        for (const char* part : {__VA_ARGS__})                                                         \
            if (m_.find(part) == std::string::npos)                                                    \
                QFAIL(qPrintable(QString("error message lacks '%1': %2").arg(part, QString::fromStdString(m_)))); \
    } while (0)

bool valid_utf8(const std::string& s) { return moe::utf8_replace_invalid(s) == s; }

}  // namespace

class TestTokenizer : public QObject {
    Q_OBJECT

private slots:
    void loads_fixture();
    void truncated_json();
    void wrong_model_type();
    void merges_naming_unknown_tokens();
    void duplicate_ids();
    void invalid_regex();
    void unsupported_components();
    void bad_tokenizer_config();
    void missing_file();
    void invalid_utf8_names_offset();
    void replacement_policy();
    void added_tokens_are_whole();
    void bos_eos_policy();
    void decode_errors_and_skip_special();
    void token_text_is_raw_bytes();
    void stream_decoder_holds_partial_characters();
    void stream_decoder_generic_path();
    void long_piece_round_trips();
    void concurrent_encode_is_consistent();
};

void TestTokenizer::loads_fixture() {
    const moe::Tokenizer t = tiny();
    QCOMPARE(t.vocab_size(), 958);  // 256 bytes + 700 merges + BOS + EOS
    QCOMPARE(t.token_id("<｜begin▁of▁sentence｜>"), std::optional<int32_t>(956));
    QCOMPARE(t.bos_id(), std::optional<int32_t>(956));
    QCOMPARE(t.eos_id(), std::optional<int32_t>(957));
    QVERIFY(t.adds_bos());
    QVERIFY(!t.adds_eos());
    QVERIFY(t.is_special(957));
    QVERIFY(!t.is_special(5));
    QCOMPARE(QString::fromStdString(t.token_content(*t.token_id("Ġthe"))), QString("Ġthe"));
    QCOMPARE(QString::fromStdString(t.token_text(*t.token_id("Ġthe"))), QString(" the"));
}

void TestTokenizer::truncated_json() {
    const std::string text = read_text(kFixtures + "/tiny-llm/tokenizer.json");
    const std::string m = input_error([&] { moe::Tokenizer::from_json(text.substr(0, text.size() / 2), {}, "cut/tokenizer.json"); });
    EXPECT_MESSAGE(m, "cut/tokenizer.json", "not valid JSON", "byte ");
    EXPECT_MESSAGE(input_error([&] { moe::Tokenizer::from_json("", {}, "empty.json"); }), "empty.json", "not valid JSON");
    EXPECT_MESSAGE(input_error([&] { moe::Tokenizer::from_json("[1,2]", {}, "array.json"); }), "array.json", "expected an object");
}

void TestTokenizer::wrong_model_type() {
    json j = tiny_json();
    j["model"]["type"] = "Unigram";
    EXPECT_MESSAGE(load_error(j), "bad/tokenizer.json", "model.type", "Unigram", "only BPE");
    j = tiny_json();
    j["model"].erase("merges");
    EXPECT_MESSAGE(load_error(j), "model", "merges");
    j = tiny_json();
    j["model"]["dropout"] = 0.1;
    EXPECT_MESSAGE(load_error(j), "model.dropout");
}

void TestTokenizer::merges_naming_unknown_tokens() {
    json j = tiny_json();
    j["model"]["merges"][5] = "Ġt nosuchtoken";
    EXPECT_MESSAGE(load_error(j), "model.merges[5]", "'nosuchtoken'", "not in the vocab");
    j = tiny_json();
    j["model"]["merges"][7] = json::array({"zz", "Ġt"});
    EXPECT_MESSAGE(load_error(j), "model.merges[7]", "'zz'");
    j = tiny_json();
    j["model"]["merges"].push_back("q j");  // both parts exist, "qj" does not
    EXPECT_MESSAGE(load_error(j), "merged token 'qj'");
    j = tiny_json();
    j["model"]["merges"][0] = "a b c";
    EXPECT_MESSAGE(load_error(j), "model.merges[0]", "two tokens");
}

void TestTokenizer::duplicate_ids() {
    json j = tiny_json();
    j["model"]["vocab"]["zzz"] = 3;
    EXPECT_MESSAGE(load_error(j), "model.vocab", "duplicate id 3");
    j = tiny_json();
    j["added_tokens"][1]["id"] = j["added_tokens"][0]["id"];
    EXPECT_MESSAGE(load_error(j), "added_tokens[1].id", "duplicate id 956");
    j = tiny_json();
    j["added_tokens"][0]["id"] = 10;  // an id the vocab already gives to another token
    EXPECT_MESSAGE(load_error(j), "added_tokens[0]", "id 10");
    j = tiny_json();
    j["model"]["vocab"]["neg"] = -4;
    EXPECT_MESSAGE(load_error(j), "model.vocab['neg']", "out of range");
}

void TestTokenizer::invalid_regex() {
    json j = tiny_json();
    j["pre_tokenizer"]["pretokenizers"][1]["pattern"]["Regex"] = "\\s?[A-Z+";
    EXPECT_MESSAGE(load_error(j), "bad/tokenizer.json", "pre_tokenizer.pretokenizers[1].pattern.Regex",
                   "invalid regular expression");
    j = tiny_json();
    j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways";
    EXPECT_MESSAGE(load_error(j), "pre_tokenizer.pretokenizers[0].behavior", "Sideways");
    // The model-spec copy of the DeepSeek LLM letter class is NFC-normalised, which turns the
    // range ῐ-ΐ (U+1FD0-U+1FD3) into ῐ-ΐ (U+1FD0-U+0390): out of order, refused.
    j = tiny_json();
    j["pre_tokenizer"]["pretokenizers"][1]["pattern"]["Regex"] = "[\u1FD0-\u0390]+";
    EXPECT_MESSAGE(load_error(j), "invalid regular expression");
}

void TestTokenizer::unsupported_components() {
    json j = tiny_json();
    j["pre_tokenizer"]["pretokenizers"][2] = {{"type", "Metaspace"}, {"replacement", "▁"}};
    EXPECT_MESSAGE(load_error(j), "pre_tokenizer.pretokenizers[2].type", "'Metaspace' is not supported");
    j = tiny_json();
    j["normalizer"] = {{"type", "NFC"}};
    EXPECT_MESSAGE(load_error(j), "normalizer.type", "'NFC' is not supported");
    j = tiny_json();
    j["decoder"] = {{"type", "WordPiece"}, {"prefix", "##"}};
    EXPECT_MESSAGE(load_error(j), "decoder.type", "'WordPiece' is not supported");
    j = tiny_json();
    j["post_processor"] = {{"type", "TemplateProcessing"}, {"single", json::array({{{"SpecialToken", {{"id", "<x>"}}}}})}};
    EXPECT_MESSAGE(load_error(j), "post_processor.single[0]", "'<x>'");
    j = tiny_json();
    j["model"]["continuing_subword_prefix"] = "##";
    EXPECT_MESSAGE(load_error(j), "model.continuing_subword_prefix");
    j = tiny_json();
    j["version"] = "2.0";
    EXPECT_MESSAGE(load_error(j), "version");
}

void TestTokenizer::bad_tokenizer_config() {
    const json j = tiny_json();
    EXPECT_MESSAGE(load_error(j, R"({"add_bos_token": true, "bos_token": "<nope>"})"), "(config)", "bos_token", "'<nope>'");
    EXPECT_MESSAGE(load_error(j, R"({"add_bos_token": "yes"})"), "add_bos_token", "true or false");
    EXPECT_MESSAGE(load_error(j, R"({"add_bos_token": true,)"), "(config)", "not valid JSON");
}

void TestTokenizer::missing_file() {
    EXPECT_MESSAGE(input_error([] { moe::Tokenizer::load_dir("/nonexistent/model"); }), "/nonexistent/model/tokenizer.json",
                   "cannot open");
}

void TestTokenizer::invalid_utf8_names_offset() {
    const moe::Tokenizer t = tiny();
    EXPECT_MESSAGE(input_error([&] { t.encode("ab\xff" "cd"); }), "byte offset 2", "0xff");
    EXPECT_MESSAGE(input_error([&] { t.encode("abc\xe4\xbd"); }), "byte offset 3");        // truncated at the end
    EXPECT_MESSAGE(input_error([&] { t.encode("x\xc0\xaf"); }), "byte offset 1");          // overlong
    EXPECT_MESSAGE(input_error([&] { t.encode("\xed\xa0\x80"); }), "byte offset 0");       // surrogate
    EXPECT_MESSAGE(input_error([&] { t.encode("\xf4\x90\x80\x80"); }), "byte offset 0");   // above U+10FFFF
    EXPECT_MESSAGE(input_error([&] { t.encode("ok \xe4\xbd\xa0 \x80"); }), "byte offset 7"); // lone continuation
    QCOMPARE(t.encode(std::string("a\0b", 3), false).size(), size_t(3));                  // NUL is valid UTF-8
}

void TestTokenizer::replacement_policy() {
    // One U+FFFD per maximal ill-formed subpart (as Python's errors="replace" and Rust's lossy).
    QCOMPARE(QString::fromStdString(moe::utf8_replace_invalid("a\xe4\xbd" "b")), QString("a\uFFFDb"));
    QCOMPARE(QString::fromStdString(moe::utf8_replace_invalid("\xf0\x9f\x98")), QString("\uFFFD"));
    QCOMPARE(QString::fromStdString(moe::utf8_replace_invalid("\xc0\xaf")), QString("\uFFFD\uFFFD"));
    QCOMPARE(QString::fromStdString(moe::utf8_replace_invalid("\xed\xa0\x80")), QString("\uFFFD\uFFFD\uFFFD"));
    // Shown on its own, a piece of a character keeps its bytes.
    QCOMPARE(moe::utf8_escape_invalid("a\xe4\xbd" "b"), std::string("a<0xE4><0xBD>b"));
    QCOMPARE(moe::utf8_escape_invalid("\xe4\xbd\xa0\xff"), std::string("\xe4\xbd\xa0<0xFF>"));
    QCOMPARE(moe::utf8_escape_invalid("\xed\xa0\x80"), std::string("<0xED><0xA0><0x80>"));
    QCOMPARE(moe::utf8_escape_invalid(""), std::string());
    const moe::Tokenizer t = tiny();
    QVERIFY(!t.encode(moe::utf8_replace_invalid("bad \xff byte"), false).empty());
}

void TestTokenizer::added_tokens_are_whole() {
    const moe::Tokenizer t = tiny();
    const int32_t eos = *t.eos_id();
    const auto ids = t.encode("a<｜end▁of▁sentence｜>b<｜end▁of▁sentence｜><｜end▁of▁sentence｜>", false);
    QCOMPARE(std::count(ids.begin(), ids.end(), eos), 3L);
    QCOMPARE(QString::fromStdString(t.decode(ids)), QString("a<｜end▁of▁sentence｜>b<｜end▁of▁sentence｜><｜end▁of▁sentence｜>"));
    QCOMPARE(QString::fromStdString(t.decode(ids, true)), QString("ab"));
    // A prefix of a special token is ordinary text.
    const auto partial = t.encode("<｜end▁of▁sentence and <｜begin", false);
    QCOMPARE(std::count(partial.begin(), partial.end(), eos), 0L);
    QCOMPARE(std::count(partial.begin(), partial.end(), *t.bos_id()), 0L);
}

void TestTokenizer::bos_eos_policy() {
    const std::string tj = read_text(kFixtures + "/tiny-llm/tokenizer.json");
    const moe::Tokenizer with_bos = tiny();
    const auto plain = with_bos.encode("hello", false);
    auto special = with_bos.encode("hello", true);
    QCOMPARE(special.front(), 956);
    QVERIFY(std::equal(plain.begin(), plain.end(), special.begin() + 1));
    // The config decides; both flags.
    const auto both = moe::Tokenizer::from_json(
        tj, R"({"add_bos_token": true, "add_eos_token": true, "bos_token": {"content": "<｜begin▁of▁sentence｜>"},
                "eos_token": "<｜end▁of▁sentence｜>"})");
    special = both.encode("hello", true);
    QCOMPARE(special.front(), 956);
    QCOMPARE(special.back(), 957);
    QCOMPARE(special.size(), plain.size() + 2);
    // No config: the tokenizer.json post-processor (ByteLevel here) adds nothing.
    const auto none = moe::Tokenizer::from_json(tj);
    QCOMPARE(none.encode("hello", true), plain);
    QVERIFY(!none.adds_bos());
    QCOMPARE(none.bos_id(), std::optional<int32_t>());
    // Template post-processor without config: BOS/EOS come from the template.
    const auto gpt2 = moe::Tokenizer::load_file(kFixtures + "/tiny-gpt2/tokenizer.json");
    QVERIFY(gpt2.adds_bos() && gpt2.adds_eos());
    QCOMPARE(gpt2.bos_id(), std::optional<int32_t>(956));
    QCOMPARE(gpt2.encode("", true), (std::vector<int32_t>{956, 957}));
    QCOMPARE(gpt2.encode("", false), std::vector<int32_t>{});
}

void TestTokenizer::decode_errors_and_skip_special() {
    const moe::Tokenizer t = tiny();
    const std::vector<int32_t> bad{5, 958};
    EXPECT_MESSAGE(input_error([&] { t.decode(bad); }), "ids[1]", "958", "not in the vocabulary");
    const std::vector<int32_t> negative{-1};
    EXPECT_MESSAGE(input_error([&] { t.decode(negative); }), "ids[0]");
    QCOMPARE(QString::fromStdString(t.decode(std::vector<int32_t>{})), QString());
}

void TestTokenizer::token_text_is_raw_bytes() {
    const moe::Tokenizer t = tiny();
    // "龘" is E9 BE 98; the tiny vocab has no merge for its bytes, so each is its own token.
    const auto ids = t.encode("龘", false);
    QCOMPARE(ids.size(), size_t(3));
    std::string joined;
    for (int32_t id : ids) {
        QCOMPARE(t.token_text(id).size(), size_t(1));
        joined += t.token_text(id);
    }
    QCOMPARE(joined, std::string("\xe9\xbe\x98"));
    QCOMPARE(QString::fromStdString(t.decode(std::vector<int32_t>{ids[0]})), QString("\uFFFD"));
    QCOMPARE(t.token_text(957), std::string("<｜end▁of▁sentence｜>"));
}

void TestTokenizer::stream_decoder_holds_partial_characters() {
    const moe::Tokenizer t = tiny();
    const std::string text = "混合专家 🧠👨‍👩‍👧 façade Ω end";
    const auto ids = t.encode(text, false);
    moe::StreamDecoder stream(t);
    std::string out;
    int empty_pushes = 0;
    for (int32_t id : ids) {
        const std::string chunk = stream.push(id);
        QVERIFY2(valid_utf8(chunk), "a chunk ended inside a character");
        if (chunk.empty()) ++empty_pushes;
        out += chunk;
    }
    out += stream.finish();
    QCOMPARE(QString::fromStdString(out), QString::fromStdString(text));
    QVERIFY(empty_pushes > 0);  // the multi-byte characters were held back at least once
    // A stream that ends inside a character flushes one U+FFFD, like decode().
    const std::vector<int32_t> cut(ids.begin(), ids.begin() + 2);
    moe::StreamDecoder s2(t);
    std::string partial = s2.push(cut[0]);
    partial += s2.push(cut[1]);
    QCOMPARE(partial, std::string());
    partial += s2.finish();
    QCOMPARE(QString::fromStdString(partial), QString::fromStdString(t.decode(cut)));
    // Skipping special tokens.
    moe::StreamDecoder s3(t, true);
    QCOMPARE(s3.push(956), std::string());
    QCOMPARE(s3.push(*t.token_id("a")), std::string("a"));
}

void TestTokenizer::stream_decoder_generic_path() {
    // Llama-style decoder chain (Replace ▁, ByteFallback, Fuse, Strip): output of a token
    // depends on its position; the window method must still add up to decode().
    const moe::Tokenizer t = moe::Tokenizer::load_file(kFixtures + "/tiny-fallback/tokenizer.json");
    for (const std::string text : {"the thing", "ünïcödé 你好 🧠", " two  spaces "}) {
        const auto ids = t.encode(text, true);
        moe::StreamDecoder stream(t, true);
        std::string out;
        for (int32_t id : ids) {
            const std::string chunk = stream.push(id);
            QVERIFY(valid_utf8(chunk));
            out += chunk;
        }
        out += stream.finish();
        QCOMPARE(QString::fromStdString(out), QString::fromStdString(t.decode(ids, true)));
    }
}

void TestTokenizer::long_piece_round_trips() {
    const moe::Tokenizer t = tiny();
    // One piece of 200,000 bytes: the heap merge path, which must stay fast and exact.
    std::string text;
    while (text.size() < 200000) text += "thereinthe";
    const auto ids = t.encode(text, false);
    QVERIFY(ids.size() < text.size());
    QCOMPARE(t.decode(ids), text);
    // The cached and uncached paths agree.
    QCOMPARE(t.encode("the theme of these", false), t.encode("the theme of these", false));
}

void TestTokenizer::concurrent_encode_is_consistent() {
    const moe::Tokenizer t = tiny();
    const std::vector<std::string> texts = {"The router picks six experts.", "混合专家模型", "x = 1234 + 5678;\n\ty",
                                            "Grüße, ça va? 🎉", "   spaced   out   "};
    std::vector<std::vector<int32_t>> want;
    const moe::Tokenizer fresh = tiny();  // its own, empty word cache
    for (const auto& s : texts) want.push_back(fresh.encode(s));
    std::vector<int> failures(4, 0);
    std::vector<std::thread> threads;
    for (int k = 0; k < 4; ++k)
        threads.emplace_back([&, k] {
            for (int round = 0; round < 200; ++round)
                for (size_t i = 0; i < texts.size(); ++i)
                    if (t.encode(texts[i]) != want[i]) ++failures[static_cast<size_t>(k)];
        });
    for (auto& th : threads) th.join();
    QCOMPARE(failures, std::vector<int>(4, 0));
}

QTEST_GUILESS_MAIN(TestTokenizer)
#include "test_tokenizer.moc"
