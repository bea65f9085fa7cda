// A corpus domain's documents as token ids, under a per-domain token budget: documents in
// file order, the one that crosses the budget cut short, the rest left out. The trace and
// capture jobs and the ablation evaluator read corpora through this, so all see the same
// tokens for the same (corpus, budget).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/corpus.h"
#include "engine/tokenizer.h"

namespace moe::analysis {

struct TokenizedDocument {
    std::string id;         // the corpus's id of the document
    std::string text_hash;  // text_hash() of its text
    int64_t n_bytes = 0;    // of its text
    bool truncated = false; // cut short by the budget
    std::vector<int32_t> ids;
};

// max_tokens 0: no budget. Tokenizer errors name the domain's file and the document.
std::vector<TokenizedDocument> tokenize_domain(const CorpusDomain& domain, const Tokenizer& tokenizer,
                                               int64_t max_tokens);

// Every domain of the corpus, in its order (one list per domain). The jobs that write to a
// store call this before they write anything, so a bad file leaves the store as it was.
std::vector<std::vector<TokenizedDocument>> tokenize_corpus(const Corpus& corpus, const Tokenizer& tokenizer,
                                                            int64_t max_tokens);

// `given` moved out when a job's caller read the documents already (TraceOptions::tokenized and
// the like); else tokenize_corpus(corpus, tokenizer, max_tokens). A corpus without a token (no
// documents, or only empty ones) is an input error naming it: a run or score of nothing is none.
std::vector<std::vector<TokenizedDocument>> given_or_tokenized(std::vector<std::vector<TokenizedDocument>>* given,
                                                               const Corpus& corpus, const Tokenizer& tokenizer,
                                                               int64_t max_tokens);

}  // namespace moe::analysis
