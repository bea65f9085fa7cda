// Corpus discovery and document reading; see corpus.h.
#include "analysis/corpus.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/tokenizer.h"

namespace moe::analysis {

namespace fs = std::filesystem;

namespace {

bool is_jsonl(const fs::path& p) {
    return p.extension() == ".jsonl";
}

constexpr int64_t kValidationEvery = 20;  // GSM8K's validation rule (docs/datasets.md)

struct Manifest {
    struct Entry {
        std::string name, source, licence, path;  // path: external domains only
    };
    std::vector<Entry> domains, external;
};

std::string string_field(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// datasets/manifest.json: domain order, source and licence; external domains.
Manifest read_manifest(const fs::path& dir) {
    Manifest out;
    const fs::path p = dir / "manifest.json";
    std::ifstream in(p, std::ios::binary);
    if (!in) return out;
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        throw_input_error(p.string(), std::string("not valid JSON: ") + e.what());
    }
    if (!j.is_object()) return out;
    for (const char* list : {"domains", "external"}) {
        if (!j.contains(list) || !j[list].is_array()) continue;
        for (const auto& d : j[list]) {
            if (!d.is_object() || string_field(d, "name").empty()) continue;
            Manifest::Entry e{string_field(d, "name"), string_field(d, "origin"), string_field(d, "licence"),
                              string_field(d, "path")};
            if (auto s = d.find("source"); s != d.end()) {
                if (s->is_string()) {
                    e.source = s->get<std::string>();
                } else if (s->is_object() && !string_field(*s, "package").empty()) {
                    e.source = "Debian package " + string_field(*s, "package");
                    if (!string_field(*s, "version").empty()) e.source += " " + string_field(*s, "version");
                }
            }
            (std::string(list) == "domains" ? out.domains : out.external).push_back(std::move(e));
        }
    }
    return out;
}

std::string absolute_path(const fs::path& p) {
    std::error_code ec;
    fs::path a = fs::weakly_canonical(fs::absolute(p), ec);
    return (ec ? fs::absolute(p) : a).string();
}

std::string name_of(const fs::path& abs) {
    return abs.filename().empty() ? abs.parent_path().filename().string() : abs.filename().string();
}

// A directory holding <split>.jsonl files (one domain); nullopt when it has none for `split`.
std::optional<CorpusDomain> split_directory(const fs::path& dir, const std::string& split, const std::string& name) {
    std::error_code ec;
    const std::string dname = name_of(dir);
    CorpusDomain d{name, "", "", (dir / (split + ".jsonl")).string(), dname + "-" + split + "-", 0, false};
    const bool gsm8k_layout = fs::is_regular_file(dir / "train.jsonl", ec) &&
                              fs::is_regular_file(dir / "test.jsonl", ec) && !fs::exists(dir / "validation.jsonl", ec);
    if (gsm8k_layout && (split == "validation" || split == "train")) {
        d.file = (dir / "train.jsonl").string();
        d.id_prefix = dname + "-train-";
        d.holdout_every = kValidationEvery;
        d.holdout = split == "validation";
        return d;
    }
    if (fs::is_regular_file(d.file, ec)) return d;
    return std::nullopt;
}

}  // namespace

Corpus open_corpus(const std::string& path, const std::string& split, const std::optional<std::string>& domain) {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw_input_error(path, "no such corpus file or directory");
    if (split.empty() || split.find('/') != std::string::npos)
        throw_input_error("--split", "'" + split + "' is not a split name");
    Corpus c;
    c.path = absolute_path(path);
    c.split = split;
    const fs::path root(c.path);
    const std::string file = split + ".jsonl";
    if (!fs::is_directory(root, ec)) {
        c.name = root.stem().string();
        c.domains.push_back(
            {domain.value_or(root.stem().string()), "", "", c.path, root.stem().string() + "-", 0, false});
        return c;
    }
    c.name = name_of(root);
    if (auto d = split_directory(root, split, domain.value_or(c.name))) {  // one domain (e.g. GSM8K)
        c.domains.push_back(std::move(*d));
        return c;
    }
    // A directory of domains: the manifest's order, then other domain directories by name,
    // then the manifest's external domains that are present.
    const Manifest manifest = read_manifest(root);
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(root, ec))
        if (entry.is_directory() && fs::is_regular_file(entry.path() / file))
            found.push_back(entry.path().filename().string());
    std::sort(found.begin(), found.end());
    std::vector<CorpusDomain> all;
    std::set<std::string> taken;
    for (const auto& m : manifest.domains) {
        if (std::find(found.begin(), found.end(), m.name) == found.end()) continue;
        all.push_back(
            {m.name, m.source, m.licence, (root / m.name / file).string(), m.name + "-" + split + "-", 0, false});
        taken.insert(m.name);
    }
    for (const std::string& n : found)
        if (taken.insert(n).second)
            all.push_back({n, "", "", (root / n / file).string(), n + "-" + split + "-", 0, false});
    for (const auto& m : manifest.external) {
        if (m.path.empty() || taken.count(m.name)) continue;
        const fs::path dir = fs::path(m.path).is_absolute() ? fs::path(m.path) : root.parent_path() / m.path;
        if (!fs::is_directory(dir, ec)) continue;
        if (auto d = split_directory(dir, split, m.name)) {
            d->source = m.source;
            d->licence = m.licence;
            all.push_back(std::move(*d));
            taken.insert(m.name);
        }
    }
    if (all.empty())
        throw_input_error(path, "not a corpus: neither " + file + " nor domain directories <domain>/" + file);
    for (CorpusDomain& d : all)
        if (!domain || *domain == d.name) c.domains.push_back(std::move(d));
    if (c.domains.empty()) {
        std::string have;
        for (const std::string& n : taken) have += (have.empty() ? "" : ", ") + n;
        throw_input_error("--domain",
                          "no domain '" + *domain + "' with " + file + " in " + path + " (it has: " + have + ")");
    }
    return c;
}

std::vector<CorpusDocument> read_documents(const CorpusDomain& domain) {
    const fs::path p(domain.file);
    std::ifstream in(p, std::ios::binary);
    if (!in) throw_input_error(domain.file, "cannot open");
    std::vector<CorpusDocument> docs;
    if (!is_jsonl(p)) {
        std::ostringstream ss;
        ss << in.rdbuf();
        std::string text = ss.str();
        require_utf8(text, domain.file);
        docs.push_back({p.stem().string(), std::move(text)});
        return docs;
    }
    std::set<std::string> ids;
    std::string line;
    int64_t line_no = 0, index = -1;
    while (std::getline(in, line)) {
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        ++index;
        if (domain.holdout_every > 0 && (index % domain.holdout_every == 0) != domain.holdout) continue;
        const std::string where = domain.file + ":" + std::to_string(line_no);
        require_utf8(line, where);  // byte offsets counted from the line's start
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
            throw_input_error(where, std::string("not JSON: ") + e.what());
        }
        if (!j.is_object()) throw_input_error(where, "expected a JSON object {\"id\", \"text\"}");
        CorpusDocument d;
        auto str = [&](const char* key) -> std::optional<std::string> {
            auto it = j.find(key);
            if (it == j.end()) return std::nullopt;
            if (!it->is_string()) throw_input_error(where, std::string("\"") + key + "\" is not a string");
            return it->get<std::string>();
        };
        if (auto t = str("text")) {
            d.text = *t;
        } else if (auto q = str("question")) {
            auto a = str("answer");
            d.text = a ? *q + "\n" + *a : *q;
        } else {
            throw_input_error(where, "no \"text\" (or \"question\"/\"answer\") field");
        }
        if (auto it = j.find("id"); it != j.end()) {
            d.id = it->is_string() ? it->get<std::string>() : it->dump();
        } else {
            d.id = domain.id_prefix + std::to_string(index);
        }
        if (!ids.insert(d.id).second) throw_input_error(where, "duplicate document id '" + d.id + "'");
        docs.push_back(std::move(d));
    }
    return docs;
}

}  // namespace moe::analysis
