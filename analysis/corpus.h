// Text corpora for tracing: where the documents of each domain are, and reading them.
// A corpus PATH is
//   - a directory of domains: PATH/<domain>/<split>.jsonl for each domain (datasets/), in
//     the order of PATH/manifest.json (which also gives source and licence), then any other
//     domain directory by name, then the manifest's "external" domains (GSM8K at
//     ../shared/datasets/gsm8k, relative to PATH's parent) when they are present;
//   - a directory with PATH/<split>.jsonl itself (one domain, e.g. ../shared/datasets/gsm8k);
//     when it has train.jsonl and test.jsonl but no validation.jsonl, validation is every
//     20th document of train.jsonl (0, 20, 40, ...) and train the others (docs/datasets.md);
//   - a .jsonl file (one domain), or any other file: plain text, one document.
// A JSONL line is {"id", "text"} or {"question", "answer"} (text = question + "\n" + answer);
// without "id" a document is named "<dir>-<file stem>-<index from 0>" ("gsm8k-test-0", as
// tools/corpora/corpus.py names them), or "<file stem>-<index>" for a single file. The domain
// of a single-domain corpus is --domain or the file/directory name. Not a tokenizer and not a
// sampler: documents are read in file order.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace moe::analysis {

struct CorpusDocument {
    std::string id;
    std::string text;  // valid UTF-8
};

struct CorpusDomain {
    std::string name;
    std::string source;
    std::string licence;
    std::string file;       // .jsonl, or a plain-text file (one document)
    std::string id_prefix;  // a document without "id" is id_prefix + its index from 0
    // > 0: only documents whose index % holdout_every == 0 (holdout) or != 0 (!holdout)
    int64_t holdout_every = 0;
    bool holdout = false;
};

struct Corpus {
    std::string name;
    std::string path;  // absolute
    std::string split;
    std::vector<CorpusDomain> domains;  // in name order for a directory of domains
};

// Finds the corpus at `path`; `domain` names a single-domain corpus's domain, or picks one
// domain of a directory of domains. Input errors name the path and what was expected.
Corpus open_corpus(const std::string& path, const std::string& split, const std::optional<std::string>& domain);

// Reads a domain's documents in file order; input errors name the file and line (bad JSON,
// no text, a duplicate id). Invalid UTF-8 in a plain-text file is replaced by U+FFFD.
std::vector<CorpusDocument> read_documents(const CorpusDomain& domain);

}  // namespace moe::analysis
