// PCRE2 wrapper of the tokenizer; see regex.h. PCRE2 is compiled with UTF|UCP|MULTILINE so that
// \p{..} classes are Unicode and ^/$ are line anchors as in Oniguruma's Ruby syntax. Matching
// uses one match-data block, match context and JIT stack per thread (created on first use).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/tokenizer/regex.h"

#include <pcre2.h>

#include "engine/error.h"
#include "engine/tokenizer/unicode_supplement.h"
#include "engine/tokenizer/utf8.h"

namespace moe::tok {

struct Regex::Code {
    pcre2_code* code = nullptr;
    bool literal = false;
    std::string text;  // the literal text, when literal
    ~Code() {
        if (code) pcre2_code_free(code);
    }
};

namespace {

// Per-thread matching state; JIT needs a bigger stack than the default 32 KiB for long runs
// of whitespace under patterns such as \s+(?!\S).
struct ThreadState {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    pcre2_jit_stack* stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
    pcre2_match_context* context = [this] {
        pcre2_match_context* c = pcre2_match_context_create(nullptr);
        if (stack) pcre2_jit_stack_assign(c, nullptr, stack);
        pcre2_set_match_limit(c, 50'000'000);
        return c;
    }();
    ~ThreadState() {
        pcre2_match_context_free(context);
        if (stack) pcre2_jit_stack_free(stack);
        pcre2_match_data_free(data);
    }
};

ThreadState& thread_state() {
    thread_local ThreadState state;
    return state;
}

std::string pcre2_message(int code) {
    PCRE2_UCHAR buf[256];
    if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "error " + std::to_string(code);
    return reinterpret_cast<const char*>(buf);
}

}  // namespace

namespace {

const char* supplement_for(std::string_view category) {
    for (const auto& s : kUnicodeSupplement)
        if (category == s.category) return *s.ranges ? s.ranges : nullptr;
    return nullptr;
}

}  // namespace

// Oniguruma (Ruby syntax, UTF-8) and PCRE2 (UTF|UCP) differ on:
//  - \s: Oniguruma's is the Unicode White_Space property; PCRE2's adds U+180E (and its \S
//    excludes it), so \s and \S become \p{White_Space} / \P{White_Space};
//  - \h / \H: a hex digit in Oniguruma, horizontal space in PCRE2;
//  - the Unicode version of \p{..}: the code points assigned since PCRE2's tables (see
//    unicode_supplement.h) are added to general categories, \p{L} -> [\p{L}\x{..}-\x{..}...].
//    A negated category inside a class ([^..] is fine, [\P{L}] is not) keeps PCRE2's tables.
// Everything else the tokenizer files use (classes, lookaheads, {m,n}) is the same.
std::string translate_oniguruma(const std::string& p, const std::string& where) {
    std::string out;
    out.reserve(p.size() + 16);
    int class_depth = 0;
    for (size_t i = 0; i < p.size(); ++i) {
        const char c = p[i];
        if (c == '\\' && i + 1 < p.size()) {
            const char n = p[i + 1];
            ++i;
            if ((n == 'p' || n == 'P') && i + 1 < p.size() && p[i + 1] == '{') {
                const size_t close = p.find('}', i + 1);
                if (close == std::string::npos) {
                    out += c;
                    out += n;
                    continue;
                }
                std::string_view name = std::string_view(p).substr(i + 2, close - i - 2);
                bool negated = n == 'P';
                if (!name.empty() && name.front() == '^') {
                    negated = !negated;
                    name.remove_prefix(1);
                }
                const std::string prop = std::string(negated ? "\\P{" : "\\p{") + std::string(name) + "}";
                const char* extra = supplement_for(name);
                if (!extra || (negated && class_depth)) out += prop;
                else if (class_depth) out += "\\p{" + std::string(name) + "}" + extra;
                else out += std::string(negated ? "[^" : "[") + "\\p{" + std::string(name) + "}" + extra + "]";
                i = close;
                continue;
            }
            if ((n == 'd' || n == 'D') && supplement_for("Nd")) {
                // Oniguruma's \d is Unicode Nd too; give it the same supplement.
                if (class_depth) out += n == 'd' ? std::string("\\p{Nd}") + supplement_for("Nd") : std::string("\\D");
                else out += std::string(n == 'd' ? "[" : "[^") + "\\p{Nd}" + supplement_for("Nd") + "]";
                continue;
            }
            switch (n) {
                case 's': out += "\\p{White_Space}"; break;
                case 'S': out += "\\P{White_Space}"; break;
                case 'h': out += class_depth ? "0-9a-fA-F" : "[0-9a-fA-F]"; break;
                case 'H':
                    if (class_depth) moe::throw_input_error(where, "\\H inside a character class is not supported");
                    out += "[^0-9a-fA-F]";
                    break;
                default: out += c; out += n;
            }
            continue;
        }
        if (c == '[') {
            ++class_depth;
            out += c;
            // A ']' right after '[' or '[^' is a literal in both dialects.
            if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
            if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
            continue;
        }
        if (c == ']' && class_depth > 0) --class_depth;
        out += c;
    }
    return out;
}

Regex::Regex(const std::string& pattern, const std::string& where) : source_(pattern) {
    const std::string translated = translate_oniguruma(pattern, where);
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &err_offset, nullptr);
    if (!code)
        moe::throw_input_error(where, "invalid regular expression /" + pattern + "/: " + pcre2_message(err) +
                                          " (at offset " + std::to_string(err_offset) + " of the PCRE2 form)");
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
    auto c = std::make_shared<Code>();
    c->code = code;
    code_ = std::move(c);
}

Regex Regex::literal(const std::string& text, const std::string& where) {
    if (find_invalid_utf8(text) != std::string::npos) moe::throw_input_error(where, "string pattern is not valid UTF-8");
    Regex r;
    auto c = std::make_shared<Code>();
    c->literal = true;
    c->text = text;
    r.code_ = std::move(c);
    r.source_ = text;
    return r;
}

void Regex::find_all(std::string_view subject, std::vector<Span>& out) const {
    out.clear();
    if (code_->literal) {
        const std::string& t = code_->text;
        if (t.empty()) return;  // as in HF tokenizers: an empty string pattern matches nothing
        for (size_t pos = subject.find(t); pos != std::string_view::npos; pos = subject.find(t, pos + t.size()))
            out.push_back({pos, pos + t.size()});
        return;
    }
    ThreadState& ts = thread_state();
    const auto* s = reinterpret_cast<PCRE2_SPTR>(subject.data());
    size_t start = 0;
    bool have_last = false;
    size_t last_end = 0;
    while (start <= subject.size()) {
        const int rc = pcre2_match(code_->code, s, subject.size(), start, PCRE2_NO_UTF_CHECK, ts.data, ts.context);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0)
            moe::throw_input_error("regex /" + source_ + "/", "matching failed: " + pcre2_message(rc));
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(ts.data);
        const size_t b = ov[0], e = ov[1];
        if (b == e && have_last && last_end == e) {
            // Oniguruma/Rust rule: no empty match right after the previous match; retry one
            // character further on.
            if (start >= subject.size()) break;
            start += static_cast<size_t>(utf8_sequence_length(subject, start) > 0 ? utf8_sequence_length(subject, start) : 1);
            continue;
        }
        out.push_back({b, e});
        have_last = true;
        last_end = e;
        start = e;
        if (b == e) {
            // Advance past an empty match so the loop terminates (the next search from e
            // would find the same empty match, which the rule above skips anyway).
            if (start >= subject.size()) break;
        }
    }
}

}  // namespace moe::tok
