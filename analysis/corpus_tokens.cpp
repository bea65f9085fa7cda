// Tokenized corpus domains; see corpus_tokens.h.
#include "analysis/corpus_tokens.h"

#include "analysis/fingerprint.h"
#include "engine/error.h"

namespace moe::analysis {

std::vector<TokenizedDocument> tokenize_domain(const CorpusDomain& domain, const Tokenizer& tokenizer,
                                               int64_t max_tokens) {
    std::vector<TokenizedDocument> out;
    int64_t used = 0;
    for (CorpusDocument& cd : read_documents(domain)) {
        if (max_tokens > 0 && used >= max_tokens) break;
        TokenizedDocument d;
        try {
            d.ids = tokenizer.encode(cd.text);
        } catch (const Error& e) {
            rethrow_with_context(e, domain.file + ": document '" + cd.id + "'");
        }
        if (max_tokens > 0 && used + static_cast<int64_t>(d.ids.size()) > max_tokens) {
            d.ids.resize(static_cast<size_t>(max_tokens - used));
            d.truncated = true;
        }
        used += static_cast<int64_t>(d.ids.size());
        d.id = std::move(cd.id);
        d.text_hash = text_hash(cd.text);
        d.n_bytes = static_cast<int64_t>(cd.text.size());
        out.push_back(std::move(d));
    }
    return out;
}

std::vector<std::vector<TokenizedDocument>> tokenize_corpus(const Corpus& corpus, const Tokenizer& tokenizer,
                                                            int64_t max_tokens) {
    std::vector<std::vector<TokenizedDocument>> out;
    out.reserve(corpus.domains.size());
    for (const CorpusDomain& d : corpus.domains) out.push_back(tokenize_domain(d, tokenizer, max_tokens));
    return out;
}

std::vector<std::vector<TokenizedDocument>> given_or_tokenized(std::vector<std::vector<TokenizedDocument>>* given,
                                                               const Corpus& corpus, const Tokenizer& tokenizer,
                                                               int64_t max_tokens) {
    std::vector<std::vector<TokenizedDocument>> docs =
        given ? std::move(*given) : tokenize_corpus(corpus, tokenizer, max_tokens);
    for (const auto& domain : docs)
        for (const TokenizedDocument& d : domain)
            if (!d.ids.empty()) return docs;
    throw_input_error(corpus.path, "no text to run: the documents of split '" + corpus.split + "' hold no tokens");
}

}  // namespace moe::analysis
