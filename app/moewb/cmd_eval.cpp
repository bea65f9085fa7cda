// moewb eval: mean loss (nats per predicted token) and perplexity of a text, optionally
// with an expert mask. Long texts are cut into windows of the model's context.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "app/moewb/cli_common.h"
#include "analysis/corpus.h"
#include "analysis/corpus_tokens.h"
#include "app/moewb/commands.h"
#include "engine/error.h"
#include "engine/evaluate.h"
#include "engine/tokenizer.h"

namespace moewb {

namespace {

namespace an = moe::analysis;

const char* kHelp =
    "usage: moewb eval --model DIR (--text FILE | --ids 1,2,3) [--mask SPEC | --mask-file FILE]\n"
    "                  [--mask-mode reroute|drop] [--context N] [--threads N] [--backend cpu|cuda] [--activations exact|bf16] [--json]\n\n"
    "Tokenizes FILE (UTF-8; the tokenizer adds BOS as its config says), runs it through the\n"
    "model in windows of --context tokens (default: the model's max_position_embeddings)\n"
    "and reports the number of tokens, the mean loss in nats per predicted token and the\n"
    "perplexity exp(loss). Each window predicts its tokens after the first. A FILE ending in\n"
    ".jsonl is a corpus file ({\"id\", \"text\"} or {\"question\", \"answer\"} lines, as\n"
    "moewb trace reads it): each document is tokenized and evaluated on its own, and the loss\n"
    "is the mean over all their predicted tokens (\"documents\" in the JSON says how many).\n"
    MOEWB_MASK_FILE_HELP;

}  // namespace

int cmd_eval(int argc, char** argv) {
    auto flags = model_value_flags();
    flags.insert({"--text", "--ids", "--context"});
    Args args(argc, argv, flags, {"--json"});
    if (args.help()) return print_help(kHelp);
    if (args.has("--text") == args.has("--ids")) moe::throw_input_error("eval", "give exactly one of --text FILE or --ids");
    auto model = open_model(args);
    const moe::ExpertMask mask = mask_from_args(args, model->config());
    const int64_t max_positions = model->config().max_position_embeddings;
    if (!args.has("--context") && max_positions < 2)
        moe::throw_input_error(args.require("--model") + "/config.json",
                               "max_position_embeddings is " + std::to_string(max_positions) +
                                   ": a window of one token predicts nothing; give --context N (at least 2)");
    const int64_t context = args.get_int("--context", max_positions, 2, 1 << 24);
    if (context > max_positions)
        std::fprintf(stderr, "note: --context %lld is longer than the model's max_position_embeddings (%lld)\n",
                     static_cast<long long>(context), static_cast<long long>(max_positions));
    // The texts to evaluate, each on its own: the ids given, a plain-text file, or a corpus file's documents.
    std::vector<std::vector<int32_t>> texts;
    if (args.has("--ids")) {
        texts.push_back(parse_id_list(args.require("--ids"), "--ids"));
    } else {
        const std::string path = args.require("--text");
        const moe::Tokenizer tok = moe::Tokenizer::load_dir(args.require("--model"));
        moe::require_tokenizer_fits(tok, model->config().vocab_size);
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) moe::throw_input_error(path, "no such text file");
        if (std::filesystem::is_directory(path, ec))
            moe::throw_input_error(path, "is a directory: --text takes one file (moewb ablate evaluates a corpus directory)");
        if (!std::filesystem::is_regular_file(path, ec)) moe::throw_input_error(path, "not a regular file");
        // Read as moewb trace reads a corpus file: plain text is one document, .jsonl one a line.
        const an::Corpus corpus = an::open_corpus(path, "test", std::nullopt);
        for (an::TokenizedDocument& d : an::tokenize_domain(corpus.domains.at(0), tok, 0)) texts.push_back(std::move(d.ids));
        if (texts.empty()) moe::throw_input_error(path, "no documents");
    }
    if (texts.size() == 1 && texts[0].size() < 2)
        moe::throw_input_error(args.has("--ids") ? std::string("--ids") : args.require("--text"),
                               std::to_string(texts[0].size()) + " token(s): at least 2 are needed to predict one");
    moe::EvalResult r;
    size_t n_tokens = 0;
    for (const std::vector<int32_t>& ids : texts) {
        n_tokens += ids.size();
        if (texts.size() > 1 && ids.size() < 2) continue;  // a corpus document too short to predict anything
        const moe::EvalResult e = moe::evaluate_loss(*model, ids, context, &mask);
        r.total_nll += e.total_nll;
        r.predicted += e.predicted;
    }
    if (r.predicted == 0) moe::throw_input_error("eval", "need at least 2 tokens to predict one");
    if (args.has("--json")) {
        print_json({{"tokens", static_cast<int64_t>(n_tokens)},
                    {"documents", static_cast<int64_t>(texts.size())},
                    {"predicted_tokens", r.predicted},
                    {"loss", r.mean_loss()},
                    {"perplexity", r.perplexity()},
                    {"mask", mask.spec()},
                    {"mask_mode", moe::mask_mode_name(mask.mode())}});
    } else {
        if (texts.size() > 1) std::printf("documents %zu, ", texts.size());
        std::printf("tokens %zu, predicted %lld, loss %.6f nats/token, perplexity %.4f\n", n_tokens,
                    static_cast<long long>(r.predicted), r.mean_loss(), r.perplexity());
    }
    return 0;
}

}  // namespace moewb
