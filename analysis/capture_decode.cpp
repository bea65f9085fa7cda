// Decoding SGLang and vLLM routing payloads; see capture_decode.h and docs/capture.md.
#include "analysis/capture_decode.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace moe::analysis {

namespace {

using json = nlohmann::json;

// Payloads are little-endian; int32 ones are decoded straight into int32 arrays.
static_assert(std::endian::native == std::endian::little, "capture decoding assumes a little-endian host");

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// One table per position in a 4-character quantum, values pre-shifted into a 24-bit group;
// 0xFFFFFFFF marks a character outside the alphabet.
struct Base64Tables {
    std::array<uint32_t, 256> t[4];
    Base64Tables() {
        for (auto& tab : t) tab.fill(0xFFFFFFFFu);
        for (uint32_t i = 0; i < 64; ++i) {
            const auto c = static_cast<uint8_t>(kAlphabet[i]);
            t[0][c] = i << 18;
            t[1][c] = i << 12;
            t[2][c] = i << 6;
            t[3][c] = i;
        }
    }
};

const Base64Tables& tables() {
    static const Base64Tables t;
    return t;
}

std::string fmt_i(int64_t v) {
    return std::to_string(v);
}

size_t dtype_size(const std::string& dtype) {
    if (dtype == "int32" || dtype == "uint32") return 4;
    if (dtype == "int64") return 8;
    if (dtype == "int16" || dtype == "uint16") return 2;
    if (dtype == "uint8" || dtype == "int8") return 1;
    return 0;
}

// Little-endian integers of `dtype` → int32 (values outside int32 become -1, which the
// range check then refuses).
void widen(const uint8_t* src, size_t n, const std::string& dtype, int32_t* out) {
    if (n == 0) return;  // an empty payload: no pointers to pass to memcpy
    if (dtype == "int32" || dtype == "uint32") {
        std::memcpy(out, src, n * 4);  // the host is little-endian
        if (dtype == "uint32")
            for (size_t i = 0; i < n; ++i) out[i] = out[i] < 0 ? -1 : out[i];
    } else if (dtype == "int64") {
        for (size_t i = 0; i < n; ++i) {
            int64_t v;
            std::memcpy(&v, src + 8 * i, 8);
            out[i] = v < INT32_MIN || v > INT32_MAX ? -1 : static_cast<int32_t>(v);
        }
    } else if (dtype == "int16") {
        for (size_t i = 0; i < n; ++i) {
            int16_t v;
            std::memcpy(&v, src + 2 * i, 2);
            out[i] = v;
        }
    } else if (dtype == "uint16") {
        for (size_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(src[2 * i] | (src[2 * i + 1] << 8));
    } else if (dtype == "uint8") {
        for (size_t i = 0; i < n; ++i) out[i] = src[i];
    } else {  // int8
        for (size_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(src[i]);
    }
}

// The value of `'key': ...` in a .npy header (a Python dict literal), up to the next
// top-level comma or closing brace.
std::string npy_field(const std::string& header, const std::string& key, const std::string& where) {
    const std::string pat = "'" + key + "'";
    size_t p = header.find(pat);
    if (p == std::string::npos) throw_input_error(where, ".npy header has no '" + key + "': " + header);
    p = header.find(':', p + pat.size());
    if (p == std::string::npos) throw_input_error(where, ".npy header is malformed: " + header);
    ++p;
    while (p < header.size() && header[p] == ' ') ++p;
    size_t e = p;
    int depth = 0;
    for (; e < header.size(); ++e) {
        const char c = header[e];
        if (c == '(') ++depth;
        if (c == ')') --depth;
        if (depth == 0 && (c == ',' || c == '}')) break;
    }
    std::string v = header.substr(p, e - p);
    while (!v.empty() && v.back() == ' ') v.pop_back();
    return v;
}

// Strings of `key` ("routed_experts") in a JSON body, cut out so that the rest parses fast:
// a base64 payload of megabytes is never scanned by the JSON parser. A value with an escape
// is left in place (the parser handles it).
struct Cuts {
    std::string rest;  // the body with the cut values emptied ("")
    std::vector<std::pair<std::string, std::string_view>> values;
    std::optional<std::string_view> find(const std::string& key) const {
        for (const auto& [k, v] : values)
            if (k == key) return v;
        return std::nullopt;
    }
};

Cuts cut_strings(std::string_view body, const std::vector<std::string>& keys) {
    struct Span {
        size_t begin, end;
        std::string key;
    };
    std::vector<Span> spans;
    for (const std::string& key : keys) {
        const std::string pat = "\"" + key + "\"";
        size_t p = body.find(pat);
        while (p != std::string_view::npos) {
            size_t q = p + pat.size();
            if (p == 0 || body[p - 1] != '\\') {
                while (q < body.size() && std::isspace(static_cast<unsigned char>(body[q]))) ++q;
                if (q < body.size() && body[q] == ':') {
                    ++q;
                    while (q < body.size() && std::isspace(static_cast<unsigned char>(body[q]))) ++q;
                    if (q < body.size() && body[q] == '"') {
                        const size_t vb = q + 1;
                        const void* endq = std::memchr(body.data() + vb, '"', body.size() - vb);
                        if (endq) {
                            const size_t ve = static_cast<size_t>(static_cast<const char*>(endq) - body.data());
                            if (!std::memchr(body.data() + vb, '\\', ve - vb)) spans.push_back({vb, ve, key});
                        }
                    }
                    break;  // the first occurrence as a key is the one (n = 1)
                }
            }
            p = body.find(pat, p + 1);
        }
    }
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
    Cuts out;
    size_t total = body.size();
    for (const Span& s : spans) total -= s.end - s.begin;
    out.rest.reserve(total);
    size_t at = 0;
    for (const Span& s : spans) {
        out.rest.append(body.substr(at, s.begin - at));
        out.values.emplace_back(s.key, body.substr(s.begin, s.end - s.begin));
        at = s.end;
    }
    out.rest.append(body.substr(at));
    return out;
}

std::optional<int64_t> int_field(const json& obj, const char* key) {
    if (!obj.is_object()) return std::nullopt;
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_number_integer()) return std::nullopt;
    return it->get<int64_t>();
}

std::vector<int32_t> id_list(const json& v, const std::string& where, const char* what) {
    std::vector<int32_t> out;
    if (!v.is_array()) throw_input_error(where, std::string(what) + " is not a list of token ids");
    out.reserve(v.size());
    for (const json& e : v) {
        if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > INT32_MAX)
            throw_input_error(where, std::string(what) + " holds " + e.dump() + ", not a token id");
        out.push_back(static_cast<int32_t>(e.get<int64_t>()));
    }
    return out;
}

std::string error_message_of(const json& j) {
    if (!j.is_object()) return {};
    if (auto it = j.find("error"); it != j.end()) {
        if (it->is_string()) return it->get<std::string>();
        if (it->is_object() && it->contains("message") && (*it)["message"].is_string())
            return (*it)["message"].get<std::string>();
        return it->dump();
    }
    // (value() would throw json's own error on an "object" that is not a string)
    if (j.contains("object") && j["object"] == "error" && j.contains("message") && j["message"].is_string())
        return j["message"].get<std::string>();
    return {};
}

// The string value of a routing field: from the cut-out slice when it was cut, else the
// parsed value; nullopt when absent or null.
std::optional<std::string_view> routing_string(const json& obj, const char* key, const Cuts& cuts,
                                               const std::string& where) {
    if (!obj.is_object()) return std::nullopt;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) throw_input_error(where, std::string(key) + " is not a base64 string");
    const std::string& s = it->get_ref<const std::string&>();
    if (s.empty())
        if (auto v = cuts.find(key)) return *v;
    return std::string_view(s);
}

RoutingPayload concat_rows(RoutingPayload a, const RoutingPayload& b, const std::string& where) {
    if (a.rows == 0) return b;
    if (b.rows == 0) return a;
    if (a.layers != b.layers || a.k != b.k)
        throw_input_error(where, "prompt_routed_experts is [" + fmt_i(a.rows) + ", " + fmt_i(a.layers) + ", " +
                                     fmt_i(a.k) + "] but routed_experts is [" + fmt_i(b.rows) + ", " +
                                     fmt_i(b.layers) + ", " + fmt_i(b.k) + "]");
    a.ids.insert(a.ids.end(), b.ids.begin(), b.ids.end());
    a.rows += b.rows;
    return a;
}

}  // namespace

const char* capture_engine_name(CaptureEngine e) {
    return e == CaptureEngine::sglang ? "sglang" : "vllm";
}

CaptureEngine parse_capture_engine(const std::string& s, const std::string& where) {
    if (s == "sglang") return CaptureEngine::sglang;
    if (s == "vllm") return CaptureEngine::vllm;
    throw_input_error(where, "'" + s + "' is not an engine: expected sglang or vllm");
}

const char* layer_axis_name(LayerAxis a) {
    switch (a) {
        case LayerAxis::absolute: return "absolute";
        case LayerAxis::moe: return "moe";
        default: return "auto";
    }
}

LayerAxis parse_layer_axis(const std::string& s, const std::string& where) {
    if (s == "auto") return LayerAxis::auto_detect;
    if (s == "absolute") return LayerAxis::absolute;
    if (s == "moe") return LayerAxis::moe;
    throw_input_error(where, "'" + s + "' is not a layer axis: expected auto, absolute or moe");
}

namespace {

size_t base64_size(std::string_view text, const std::string& where) {
    if (text.size() % 4 != 0)
        throw_input_error(where, "truncated base64: " + fmt_i(static_cast<int64_t>(text.size())) +
                                     " characters, not a multiple of 4");
    size_t pad = 0;
    if (!text.empty() && text.back() == '=') pad = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
    return text.size() / 4 * 3 - pad;
}

// Decodes into `o`, which holds base64_size(text) bytes.
void base64_decode_into(std::string_view text, uint8_t* o, const std::string& where) {
    const Base64Tables& tb = tables();
    size_t pad = 0;
    if (!text.empty() && text.back() == '=') pad = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
    const size_t quanta = text.size() / 4;
    const auto* s = reinterpret_cast<const uint8_t*>(text.data());
    const size_t full = pad ? quanta - 1 : quanta;
    uint32_t bad = 0;
    for (size_t q = 0; q < full; ++q, s += 4, o += 3) {
        const uint32_t v = tb.t[0][s[0]] | tb.t[1][s[1]] | tb.t[2][s[2]] | tb.t[3][s[3]];
        bad |= v & 0xFF000000u;
        o[0] = static_cast<uint8_t>(v >> 16);
        o[1] = static_cast<uint8_t>(v >> 8);
        o[2] = static_cast<uint8_t>(v);
    }
    if (pad) {
        const uint32_t v = tb.t[0][s[0]] | tb.t[1][s[1]] | (pad == 1 ? tb.t[2][s[2]] : 0u);
        bad |= v & 0xFF000000u;
        o[0] = static_cast<uint8_t>(v >> 16);
        if (pad == 1) o[1] = static_cast<uint8_t>(v >> 8);
    }
    if (bad) {
        size_t i = 0;
        while (i < text.size() - pad && tb.t[0][static_cast<uint8_t>(text[i])] != 0xFFFFFFFFu) ++i;
        throw_input_error(where, "invalid base64: character " + fmt_i(static_cast<int64_t>(i)) +
                                     " is not in the base64 alphabet");
    }
}

}  // namespace

std::vector<uint8_t> base64_decode(std::string_view text, const std::string& where) {
    std::vector<uint8_t> out(base64_size(text, where));
    base64_decode_into(text, out.data(), where);
    return out;
}

std::string base64_encode(const void* data, size_t bytes) {
    const auto* p = static_cast<const uint8_t*>(data);
    std::string out;
    out.reserve((bytes + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= bytes; i += 3) {
        const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    if (i < bytes) {
        uint32_t v = uint32_t{p[i]} << 16;
        if (i + 1 < bytes) v |= uint32_t{p[i + 1]} << 8;
        out += kAlphabet[v >> 18];
        out += kAlphabet[(v >> 12) & 63];
        out += i + 1 < bytes ? kAlphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

RoutingPayload decode_raw_routing(std::string_view base64, const std::string& dtype_in, int64_t expected_rows,
                                  const ModelConfig& cfg, const std::string& where) {
    const std::string dtype = dtype_in.empty() ? "int32" : dtype_in;
    const size_t es = dtype_size(dtype);
    if (!es) throw_input_error(where, "routed_experts_dtype '" + dtype + "' is not an integer type this build reads");
    const size_t n_bytes = base64_size(base64, where);
    if (n_bytes % es)
        throw_input_error(where, "routed_experts has " + fmt_i(static_cast<int64_t>(n_bytes)) +
                                     " bytes, not a whole number of " + dtype + " values");
    const int64_t n = static_cast<int64_t>(n_bytes / es);
    const int64_t L = cfg.num_hidden_layers, M = cfg.n_moe_layers(), K = cfg.num_experts_per_tok;
    RoutingPayload p;
    p.k = K;
    p.rows = expected_rows;
    if (n == expected_rows * L * K) {
        p.layers = L;
    } else if (n == expected_rows * M * K) {
        p.layers = M;
    } else {
        const int64_t per_row = L * K;
        throw_input_error(where, "routed_experts holds " + fmt_i(n) + " " + dtype + " values (" +
                                     (per_row && n % per_row == 0 ? fmt_i(n / per_row) + " rows" : "not whole rows") +
                                     " of " + fmt_i(L) + " layers x top-" + fmt_i(K) + "), expected " +
                                     fmt_i(expected_rows) + " rows (prompt + output - 1)");
    }
    p.ids.resize(static_cast<size_t>(n));
    if (dtype == "int32") {  // little-endian host: the bytes are the values
        base64_decode_into(base64, reinterpret_cast<uint8_t*>(p.ids.data()), where);
    } else {
        std::vector<uint8_t> bytes(n_bytes);
        base64_decode_into(base64, bytes.data(), where);
        widen(bytes.data(), static_cast<size_t>(n), dtype, p.ids.data());
    }
    return p;
}

RoutingPayload decode_npy_routing(std::string_view base64, const std::string& where) {
    const std::vector<uint8_t> b = base64_decode(base64, where);
    static const uint8_t kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (b.size() < 10 || std::memcmp(b.data(), kMagic, 6) != 0)
        throw_input_error(where, "routed_experts is not a NumPy .npy file (no \\x93NUMPY magic)");
    const uint8_t major = b[6];
    size_t header_len = 0, off = 0;
    if (major == 1) {
        header_len = b[8] | (b[9] << 8);
        off = 10;
    } else if (major == 2 || major == 3) {
        if (b.size() < 12) throw_input_error(where, "truncated .npy header");
        header_len = b[8] | (b[9] << 8) | (size_t{b[10]} << 16) | (size_t{b[11]} << 24);
        off = 12;
    } else {
        throw_input_error(where, ".npy format version " + fmt_i(major) + " is not one this build reads");
    }
    if (off + header_len > b.size()) throw_input_error(where, "truncated .npy header");
    const std::string header(reinterpret_cast<const char*>(b.data() + off), header_len);
    std::string descr = npy_field(header, "descr", where);
    const std::string fortran = npy_field(header, "fortran_order", where);
    const std::string shape_text = npy_field(header, "shape", where);
    if (descr.size() < 3 || (descr.front() != '\'' && descr.front() != '"'))
        throw_input_error(where, ".npy descr " + descr + " is not a dtype string");
    descr = descr.substr(1, descr.size() - 2);
    const char order = descr[0];
    const std::string code = descr.substr(1);
    std::string dtype;
    if (code == "i4") dtype = "int32";
    else if (code == "i8") dtype = "int64";
    else if (code == "i2") dtype = "int16";
    else if (code == "u2") dtype = "uint16";
    else if (code == "u4") dtype = "uint32";
    else if (code == "u1") dtype = "uint8";
    else if (code == "i1") dtype = "int8";
    const bool little = order == '<' || order == '|' || (order == '=' && dtype_size(dtype) == 1);
    if (dtype.empty() || !little)
        throw_input_error(where, ".npy dtype '" + descr + "' is not a little-endian integer type");
    if (fortran != "False") throw_input_error(where, ".npy array is in Fortran order; expected C order");
    // Each dimension at most 2^40 (far past any real payload), so the product of three fits in
    // 128 bits and the byte count is compared without overflow.
    constexpr int64_t kMaxDim = int64_t{1} << 40;
    std::vector<int64_t> shape;
    for (size_t i = 0; i < shape_text.size();) {
        if (std::isdigit(static_cast<unsigned char>(shape_text[i]))) {
            int64_t v = 0;
            for (; i < shape_text.size() && std::isdigit(static_cast<unsigned char>(shape_text[i])); ++i) {
                v = v * 10 + (shape_text[i] - '0');
                if (v > kMaxDim) throw_input_error(where, ".npy array has shape " + shape_text + ": a dimension is too large");
            }
            shape.push_back(v);
        } else {
            ++i;
        }
    }
    if (shape.size() != 3)
        throw_input_error(where, ".npy array has shape " + shape_text + "; expected [tokens, layers, top_k]");
    RoutingPayload p;
    p.rows = shape[0];
    p.layers = shape[1];
    p.k = shape[2];
    const size_t es = dtype_size(dtype);
    const size_t data_off = off + header_len;
    const size_t data_bytes = b.size() - data_off;
    const unsigned __int128 need = static_cast<unsigned __int128>(p.rows) * static_cast<unsigned __int128>(p.layers) *
                                   static_cast<unsigned __int128>(p.k) * es;
    if (need != data_bytes)
        throw_input_error(where, ".npy data has " + fmt_i(static_cast<int64_t>(data_bytes)) + " bytes, the shape " +
                                     shape_text + " of " + dtype + " needs " +
                                     (need > static_cast<unsigned __int128>(INT64_MAX) ? std::string("more")
                                                                                       : fmt_i(static_cast<int64_t>(need))) +
                                     " (truncated?)");
    const size_t n = data_bytes / es;
    p.ids.resize(n);
    widen(b.data() + data_off, n, dtype, p.ids.data());
    return p;
}

LayerAxis resolve_layer_axis(const RoutingPayload& p, const ModelConfig& cfg, LayerAxis requested,
                             const std::string& where) {
    const int64_t L = cfg.num_hidden_layers, M = cfg.n_moe_layers(), K = cfg.num_experts_per_tok;
    if (p.k != K)
        throw_input_error(where, "routing has top-" + fmt_i(p.k) + " per layer, the model's num_experts_per_tok is " +
                                     fmt_i(K));
    if (p.layers == M && M != L) {
        if (requested == LayerAxis::absolute)
            throw_input_error(where, "routing has " + fmt_i(M) + " layers, one per MoE layer, so its layer axis is "
                                     "the MoE-layer ordinal, not the absolute layer (--layer-axis)");
        return LayerAxis::moe;
    }
    if (p.layers != L)
        throw_input_error(where, "routing has " + fmt_i(p.layers) + " layers; the model has " + fmt_i(L) +
                                     " layers, " + fmt_i(M) + " of them MoE");
    if (requested != LayerAxis::auto_detect) return requested;
    if (M == L || p.rows == 0) return LayerAxis::absolute;  // both layouts are the same mapping
    // Per payload layer: all rows zero; some row zero (impossible routing for top-k >= 2,
    // whose k experts are distinct).
    std::vector<char> all_zero(static_cast<size_t>(L), 1), some_zero(static_cast<size_t>(L), 0);
    for (int64_t r = 0; r < p.rows; ++r)
        for (int64_t l = 0; l < L; ++l) {
            const int32_t* row = p.ids.data() + (r * L + l) * K;
            bool zero = true;
            for (int64_t j = 0; j < K; ++j) zero = zero && row[j] == 0;
            if (zero) some_zero[static_cast<size_t>(l)] = 1;
            else all_zero[static_cast<size_t>(l)] = 0;
        }
    std::string abs_problem, moe_problem;
    int64_t moe_ordinal = 0;
    for (int64_t l = 0; l < L; ++l) {
        const auto i = static_cast<size_t>(l);
        if (!cfg.is_moe_layer(l)) {
            if (!all_zero[i] && abs_problem.empty())
                abs_problem = "dense layer " + fmt_i(l) + " has non-zero rows";
        } else {
            if (K > 1 && some_zero[i] && abs_problem.empty())
                abs_problem = "MoE layer " + fmt_i(l) + " has zero rows";
        }
        if (moe_ordinal++ < M) {
            if (K > 1 && some_zero[i] && moe_problem.empty())
                moe_problem = "index " + fmt_i(l) + " (MoE layer " + fmt_i(l) + " of " + fmt_i(M) + ") has zero rows";
        } else if (!all_zero[i] && moe_problem.empty()) {
            moe_problem = "index " + fmt_i(l) + " (past the " + fmt_i(M) + " MoE layers) has non-zero rows";
        }
    }
    if (abs_problem.empty() && !moe_problem.empty()) return LayerAxis::absolute;
    if (moe_problem.empty() && !abs_problem.empty()) return LayerAxis::moe;
    if (abs_problem.empty())
        throw_input_error(where, "the routing's layer axis is ambiguous: it reads as absolute layers and as "
                                 "MoE-layer ordinals alike (top-" +
                                     fmt_i(K) + "); say which with --layer-axis absolute|moe");
    throw_input_error(where, "the routing matches neither layer layout: as absolute layers, " + abs_problem +
                                 "; as MoE-layer ordinals, " + moe_problem +
                                 " (non-zero dense rows or a wrong model?)");
}

void append_routing(const RoutingPayload& p, const ModelConfig& cfg, LayerAxis axis,
                    std::vector<DocumentRouting::Layer>& layers, const std::string& where) {
    const int64_t K = p.k, E = cfg.n_routed_experts, PL = p.layers;
    if (K != cfg.num_experts_per_tok)
        throw_input_error(where, "routing has top-" + fmt_i(K) + ", the model's num_experts_per_tok is " +
                                     fmt_i(cfg.num_experts_per_tok));
    MOE_ASSERT(axis != LayerAxis::auto_detect);
    // Payload layer index of each run layer, and the payload layers that must be zero.
    std::vector<int64_t> src(layers.size());
    std::vector<char> is_source(static_cast<size_t>(PL), 0);
    for (size_t m = 0; m < layers.size(); ++m) {
        src[m] = axis == LayerAxis::absolute ? layers[m].layer : static_cast<int64_t>(m);
        if (src[m] >= PL)
            throw_input_error(where, "routing has " + fmt_i(PL) + " layers; MoE layer " + fmt_i(layers[m].layer) +
                                         " is not among them");
        is_source[static_cast<size_t>(src[m])] = 1;
        MOE_ASSERT(layers[m].k == K);
    }
    std::vector<size_t> old(layers.size());
    for (size_t m = 0; m < layers.size(); ++m) {
        old[m] = layers[m].experts.size();
        layers[m].experts.resize(old[m] + static_cast<size_t>(p.rows * K));
    }
    std::vector<int64_t> stamp(static_cast<size_t>(E), -1);  // last row*layers+l an expert was seen
    auto fail = [&](const std::string& what) {
        for (size_t m = 0; m < layers.size(); ++m) layers[m].experts.resize(old[m]);
        throw_input_error(where, what);
    };
    for (int64_t r = 0; r < p.rows; ++r) {
        const int32_t* row = p.ids.data() + r * PL * K;
        for (int64_t l = 0; l < PL; ++l) {
            if (is_source[static_cast<size_t>(l)]) continue;
            for (int64_t j = 0; j < K; ++j)
                if (row[l * K + j] != 0)
                    fail("token row " + fmt_i(r) + ": " +
                         (axis == LayerAxis::absolute ? "dense layer " + fmt_i(l)
                                                      : "layer index " + fmt_i(l) + " (past the MoE layers)") +
                         " has a non-zero row (expert " + fmt_i(row[l * K + j]) +
                         "); dense layers must be zero rows (--layer-axis " + layer_axis_name(axis) + ")");
        }
        for (size_t m = 0; m < layers.size(); ++m) {
            const int32_t* ids = row + src[m] * K;
            int32_t* out = layers[m].experts.data() + old[m] + static_cast<size_t>(r * K);
            const int64_t tag = r * PL + src[m];
            for (int64_t j = 0; j < K; ++j) {
                const int32_t e = ids[j];
                if (e < 0 || e >= E)
                    fail("token row " + fmt_i(r) + ", layer " + fmt_i(layers[m].layer) + ": expert id " + fmt_i(e) +
                         " is outside [0, " + fmt_i(E) + ") (n_routed_experts); logical ids need EPLB / redundant "
                         "experts off");
                if (stamp[static_cast<size_t>(e)] == tag)
                    fail("token row " + fmt_i(r) + ", layer " + fmt_i(layers[m].layer) + ": expert " + fmt_i(e) +
                         " is selected twice");
                stamp[static_cast<size_t>(e)] = tag;
                out[j] = e;
            }
        }
    }
}

std::optional<CaptureEngine> detect_engine(std::string_view body) {
    const Cuts cuts = cut_strings(body, {"routed_experts", "prompt_routed_experts"});
    const json j = json::parse(cuts.rest, nullptr, false);
    if (j.is_object() && j.contains("meta_info")) return CaptureEngine::sglang;
    if (j.is_object() && j.contains("choices")) return CaptureEngine::vllm;
    return std::nullopt;
}

ParsedResponse parse_engine_response(CaptureEngine engine, std::string_view body, int64_t n_prompt,
                                     const ModelConfig& cfg, const std::string& where) {
    const Cuts cuts = cut_strings(body, {"routed_experts", "prompt_routed_experts"});
    json j = json::parse(cuts.rest, nullptr, false);
    if (j.is_discarded())
        throw_input_error(where, "the response is not JSON: " + std::string(body.substr(0, 200)));
    if (j.is_array() && !j.empty()) j = j[0];  // a batch of one
    ParsedResponse out;
    out.engine = engine;
    out.server_message = error_message_of(j);
    if (!out.server_message.empty()) throw_input_error(where, "the server answered with an error: " + out.server_message);
    const char* flag_hint = engine == CaptureEngine::sglang
                                ? "start the SGLang server with --enable-return-routed-experts (requests ask for "
                                  "\"return_routed_experts\": true)"
                                : "start the vLLM server with --enable-return-routed-experts";
    if (engine == CaptureEngine::sglang) {
        if (!j.is_object() || !j.contains("meta_info") || !j["meta_info"].is_object())
            throw_input_error(where, "not an SGLang /generate response (no meta_info)");
        const json& mi = j["meta_info"];
        if (j.contains("output_ids") && j["output_ids"].is_array()) out.output_ids = id_list(j["output_ids"], where, "output_ids");
        out.n_output = out.output_ids.empty() ? int_field(mi, "completion_tokens").value_or(0)
                                              : static_cast<int64_t>(out.output_ids.size());
        out.n_prompt = int_field(mi, "prompt_tokens");
        const auto b64 = routing_string(mi, "routed_experts", cuts, where);
        if (!b64) throw_input_error(where, std::string("the server returned no meta_info.routed_experts: ") + flag_hint);
        if (auto start = int_field(mi, "routed_experts_start_len"); start && *start != 0)
            throw_input_error(where, "routed_experts starts at position " + fmt_i(*start) + "; capture needs it from 0");
        const std::string dtype = mi.contains("routed_experts_dtype") && mi["routed_experts_dtype"].is_string()
                                      ? mi["routed_experts_dtype"].get<std::string>()
                                      : "";
        if (out.n_prompt && *out.n_prompt != n_prompt)
            throw_input_error(where, "the server counted " + fmt_i(*out.n_prompt) + " prompt tokens, " + fmt_i(n_prompt) +
                                         " were sent");
        out.routing = decode_raw_routing(*b64, dtype, n_prompt + out.n_output - 1, cfg, where);
        return out;
    }
    if (!j.is_object() || !j.contains("choices") || !j["choices"].is_array() || j["choices"].empty())
        throw_input_error(where, "not a vLLM completion response (no choices)");
    const json& ch = j["choices"][0];
    if (ch.contains("token_ids") && ch["token_ids"].is_array()) out.output_ids = id_list(ch["token_ids"], where, "token_ids");
    const json usage = j.contains("usage") ? j["usage"] : json::object();
    out.n_output = out.output_ids.empty() ? int_field(usage, "completion_tokens").value_or(0)
                                          : static_cast<int64_t>(out.output_ids.size());
    out.n_prompt = int_field(usage, "prompt_tokens");
    if (out.n_prompt && *out.n_prompt != n_prompt)
        throw_input_error(where, "the server counted " + fmt_i(*out.n_prompt) + " prompt tokens, " + fmt_i(n_prompt) +
                                     " were sent");
    auto choice_b64 = routing_string(ch, "routed_experts", cuts, where);
    auto prompt_b64 = routing_string(j, "prompt_routed_experts", cuts, where);
    if (!prompt_b64) prompt_b64 = routing_string(ch, "prompt_routed_experts", cuts, where);
    if (!choice_b64 && !prompt_b64)
        throw_input_error(where, std::string("the server returned no choices[0].routed_experts: ") + flag_hint);
    const int64_t expected = n_prompt + out.n_output - 1;
    RoutingPayload rp = choice_b64 ? decode_npy_routing(*choice_b64, where + ": routed_experts") : RoutingPayload{};
    if (prompt_b64) {
        RoutingPayload pp = decode_npy_routing(*prompt_b64, where + ": prompt_routed_experts");
        if (pp.rows != n_prompt)
            throw_input_error(where, "prompt_routed_experts has " + fmt_i(pp.rows) + " rows, the prompt " +
                                         fmt_i(n_prompt) + " tokens");
        // The generated tokens' rows: all but the last token (never run through the model);
        // a row for it, where a version sends one, is dropped.
        if (rp.rows == out.n_output && out.n_output > 0) {
            rp.rows -= 1;
            rp.ids.resize(static_cast<size_t>(rp.rows * rp.layers * rp.k));
        }
        rp = concat_rows(std::move(pp), rp, where);
    }
    if (rp.rows != expected)
        throw_input_error(where, "routed_experts has " + fmt_i(rp.rows) + " rows, expected " + fmt_i(expected) +
                                     " (prompt " + fmt_i(n_prompt) + " + output " + fmt_i(out.n_output) + " - 1)");
    out.routing = std::move(rp);
    return out;
}

}  // namespace moe::analysis
