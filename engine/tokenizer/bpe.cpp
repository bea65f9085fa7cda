// BPE model: loading vocab and merges, and encoding one pre-tokenized piece; see bpe.h.
// Merge order is HF tokenizers' (min rank, then leftmost); short words use a linear scan, long
// ones a heap so that a megabyte-long piece stays O(n log n).
#include "engine/tokenizer/bpe.h"

#include <limits>
#include <queue>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/utf8.h"

namespace moe::tok {

namespace {

int32_t lookup(const StringIdMap& vocab, std::string_view s) {
    auto it = vocab.find(s);
    return it == vocab.end() ? -1 : it->second;
}

std::string quote_token(std::string_view s) {
    std::string q;
    q.reserve(s.size() + 2);
    q.push_back('\'');
    q.append(s);
    q.push_back('\'');
    return q;
}

}  // namespace

std::unique_ptr<BpeModel> BpeModel::parse(const Json& j, const std::string& path) {
    auto m = std::make_unique<BpeModel>();
    const Json* type = json_optional(j, "type");
    if (type && !(type->is_string() && type->get<std::string>() == "BPE"))
        json_error(path + ".type", "model type " + type->dump() + " is not supported (only BPE)");
    if (const Json* d = json_optional(j, "dropout"))
        if (!d->is_number() || d->get<double>() != 0.0)
            json_error(path + ".dropout", "BPE dropout is a training-time option; refusing a model with dropout " + d->dump());
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (const Json* v = json_optional(j, key))
            if (!(v->is_string() && v->get<std::string>().empty()))
                json_error(path + "." + key, "is not supported (found " + v->dump() + ", expected null)");
    m->fuse_unk_ = json_bool_or(j, "fuse_unk", false, path);
    m->byte_fallback_ = json_bool_or(j, "byte_fallback", false, path);
    m->ignore_merges_ = json_bool_or(j, "ignore_merges", false, path);

    const Json& vocab = json_field(j, "vocab", path);
    if (!vocab.is_object()) json_error(path + ".vocab", "expected an object {token: id}, found " + json_kind(vocab));
    m->vocab_.reserve(vocab.size());
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        const int32_t id = json_token_id(it.value(), path + ".vocab[" + quote_token(it.key()) + "]");
        if (static_cast<size_t>(id) >= m->id_to_token_.size()) {
            if (id > static_cast<int64_t>(vocab.size()) * 4 + 1'000'000)
                json_error(path + ".vocab", "id " + std::to_string(id) + " of " + quote_token(it.key()) +
                                                " is far beyond the vocabulary size " + std::to_string(vocab.size()));
            m->id_to_token_.resize(static_cast<size_t>(id) + 1);
        }
        if (it.key().empty()) json_error(path + ".vocab", "empty token string (id " + std::to_string(id) + ")");
        std::string& slot = m->id_to_token_[static_cast<size_t>(id)];
        if (!slot.empty())
            json_error(path + ".vocab", "duplicate id " + std::to_string(id) + ": given to both " + quote_token(slot) +
                                            " and " + quote_token(it.key()));
        slot = it.key();
        m->vocab_.emplace(it.key(), id);
    }

    const Json& merges = json_field(j, "merges", path);
    if (!merges.is_array()) json_error(path + ".merges", "expected an array, found " + json_kind(merges));
    m->merges_.reserve(merges.size());
    uint32_t rank = 0;
    for (size_t i = 0; i < merges.size(); ++i) {
        const std::string where = path + ".merges[" + std::to_string(i) + "]";
        const Json& e = merges[i];
        std::string a, b;
        if (e.is_string()) {
            const std::string line = e.get<std::string>();
            if (line.rfind("#version", 0) == 0) continue;  // header line of merges.txt, skipped by HF too
            const size_t sp = line.find(' ');
            if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
                json_error(where, "merge " + quote_token(line) + " is not two tokens separated by one space");
            a = line.substr(0, sp);
            b = line.substr(sp + 1);
        } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
            a = e[0].get<std::string>();
            b = e[1].get<std::string>();
        } else {
            json_error(where, "expected \"a b\" or [\"a\", \"b\"], found " + e.dump());
        }
        const int32_t ia = lookup(m->vocab_, a), ib = lookup(m->vocab_, b), ir = lookup(m->vocab_, a + b);
        if (ia < 0) json_error(where, "merge names " + quote_token(a) + ", which is not in the vocab");
        if (ib < 0) json_error(where, "merge names " + quote_token(b) + ", which is not in the vocab");
        if (ir < 0) json_error(where, "merged token " + quote_token(a + b) + " is not in the vocab");
        m->merges_[pair_key(ia, ib)] = {rank++, ir};  // a repeated pair keeps the later rank, as in HF
    }

    if (const Json* unk = json_optional(j, "unk_token")) {
        const std::string u = json_string(*unk, path + ".unk_token");
        const int32_t id = lookup(m->vocab_, u);
        if (id < 0) json_error(path + ".unk_token", quote_token(u) + " is not in the vocab");
        m->unk_id_ = id;
    }
    const ByteLevelTable& table = byte_level_table();
    for (int byte = 0; byte < 256; ++byte) {
        m->byte_char_id_[byte] = lookup(m->vocab_, table.byte_to_utf8[byte]);
        m->byte_fallback_id_[byte] = lookup(m->vocab_, byte_token(static_cast<uint8_t>(byte)));
    }
    return m;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
    const int32_t id = lookup(vocab_, token);
    return id < 0 ? std::nullopt : std::optional<int32_t>(id);
}

// One symbol per character; characters missing from the vocab become byte-fallback tokens or
// the unknown token (consecutive ones fused when fuse_unk), or vanish when there is neither.
void BpeModel::initial_symbols(std::string_view text, std::vector<int32_t>& symbols) const {
    bool pending_unk = false;
    size_t i = 0;
    while (i < text.size()) {
        const size_t start = i;
        next_code_point(text, i);
        const int32_t id = lookup(vocab_, text.substr(start, i - start));
        if (id >= 0) {
            if (pending_unk) symbols.push_back(*unk_id_);
            pending_unk = false;
            symbols.push_back(id);
            continue;
        }
        if (byte_fallback_) {
            bool all = true;
            for (size_t k = start; k < i; ++k) all = all && byte_fallback_id_[static_cast<uint8_t>(text[k])] >= 0;
            if (all) {
                for (size_t k = start; k < i; ++k) symbols.push_back(byte_fallback_id_[static_cast<uint8_t>(text[k])]);
                continue;  // like HF: a pending unk stays pending across byte-fallback tokens
            }
        }
        if (unk_id_) {
            if (pending_unk && !fuse_unk_) symbols.push_back(*unk_id_);
            pending_unk = true;
        }
    }
    if (pending_unk) symbols.push_back(*unk_id_);
}

void BpeModel::merge(std::vector<int32_t>& s) const {
    constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
    auto find = [&](int32_t a, int32_t b) -> const MergeTarget* {
        auto it = merges_.find(pair_key(a, b));
        return it == merges_.end() ? nullptr : &it->second;
    };
    if (s.size() < 2) return;
    if (s.size() <= 48) {
        // Linear scan over cached pair ranks: cheaper than a heap for ordinary words.
        std::vector<MergeTarget> pr(s.size() - 1);
        for (size_t i = 0; i + 1 < s.size(); ++i) {
            const MergeTarget* t = find(s[i], s[i + 1]);
            pr[i] = t ? *t : MergeTarget{kNone, -1};
        }
        while (!pr.empty()) {
            size_t best = 0;
            for (size_t i = 1; i < pr.size(); ++i)
                if (pr[i].rank < pr[best].rank) best = i;
            if (pr[best].rank == kNone) break;
            s[best] = pr[best].id;
            s.erase(s.begin() + static_cast<ptrdiff_t>(best) + 1);
            pr.erase(pr.begin() + static_cast<ptrdiff_t>(best));
            if (best > 0) {
                const MergeTarget* t = find(s[best - 1], s[best]);
                pr[best - 1] = t ? *t : MergeTarget{kNone, -1};
            }
            if (best < pr.size()) {
                const MergeTarget* t = find(s[best], s[best + 1]);
                pr[best] = t ? *t : MergeTarget{kNone, -1};
            }
        }
        return;
    }
    // Heap form of HF's Word::merge_all: entries (rank, pos) with a validity check on pop.
    struct Entry {
        uint32_t rank;
        uint32_t pos;
        int32_t id;
        bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    const size_t n = s.size();
    std::vector<int32_t> prev(n), next(n);
    std::vector<char> alive(n, 1);
    for (size_t i = 0; i < n; ++i) {
        prev[i] = static_cast<int32_t>(i) - 1;
        next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
    }
    std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap;
    for (size_t i = 0; i + 1 < n; ++i)
        if (const MergeTarget* t = find(s[i], s[i + 1])) heap.push({t->rank, static_cast<uint32_t>(i), t->id});
    while (!heap.empty()) {
        const Entry top = heap.top();
        heap.pop();
        const size_t p = top.pos;
        if (!alive[p] || next[p] < 0) continue;
        const size_t r = static_cast<size_t>(next[p]);
        const MergeTarget* t = find(s[p], s[r]);
        if (!t || t->id != top.id) continue;  // stale entry
        s[p] = top.id;
        alive[r] = 0;
        next[p] = next[r];
        if (next[r] >= 0) prev[static_cast<size_t>(next[r])] = static_cast<int32_t>(p);
        if (prev[p] >= 0)
            if (const MergeTarget* u = find(s[static_cast<size_t>(prev[p])], s[p]))
                heap.push({u->rank, static_cast<uint32_t>(prev[p]), u->id});
        if (next[p] >= 0)
            if (const MergeTarget* u = find(s[p], s[static_cast<size_t>(next[p])]))
                heap.push({u->rank, static_cast<uint32_t>(p), u->id});
    }
    size_t w = 0;
    for (size_t i = 0; i < n; ++i)
        if (alive[i]) s[w++] = s[i];
    s.resize(w);
}

void BpeModel::tokenize(const Piece& piece, std::vector<int32_t>& out) const {
    const std::string_view key = piece.text;
    const bool cacheable = key.size() < kCacheMaxBytes;
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        auto it = cache_.find(key);
        if (it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    std::vector<int32_t> symbols;
    symbols.reserve(key.size());
    bool ready = false;  // symbols hold the initial characters
    if (piece.byte_level_pending && !ignore_merges_) {
        // Fast path: each raw byte is one byte-level character with a known id.
        ready = true;
        for (const char c : key) {
            const int32_t id = byte_char_id_[static_cast<uint8_t>(c)];
            ready = ready && id >= 0;
            symbols.push_back(id);
        }
        if (!ready) symbols.clear();
    }
    bool whole_word = false;
    if (!ready) {
        std::string mapped;
        if (piece.byte_level_pending) mapped = byte_level_encode(key);
        const std::string_view text = piece.byte_level_pending ? std::string_view(mapped) : key;
        const int32_t id = ignore_merges_ ? lookup(vocab_, text) : -1;
        if (id >= 0) {
            symbols.push_back(id);
            whole_word = true;
        } else {
            initial_symbols(text, symbols);
        }
    }
    if (!whole_word) merge(symbols);
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        if (cache_.size() < kCacheCapacity) cache_.emplace(std::string(key), symbols);
    }
    out.insert(out.end(), symbols.begin(), symbols.end());
}

}  // namespace moe::tok
