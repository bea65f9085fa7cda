// moewb tokenize / detokenize: text -> one JSON array of token ids, ids -> text, with the
// tokenizer of a model directory (--model) or a tokenizer.json (--tokenizer). Thin: the work is
// moe::Tokenizer's; errors (bad file, invalid UTF-8, unknown id) exit 2 via main.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "app/moewb/args.h"
#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "engine/error.h"
#include "engine/tokenizer.h"

namespace moewb {

namespace {

const char* kTokenizeHelp =
    "usage: moewb tokenize (--model DIR | --tokenizer FILE) [--text STR] [--no-special]\n"
    "\n"
    "Prints the token ids of the text as one JSON array on one line.\n"
    "  --model DIR       model directory with tokenizer.json (+ tokenizer_config.json)\n"
    "  --tokenizer FILE  a tokenizer.json (tokenizer_config.json beside it is read if present)\n"
    "  --text STR        the text; without it the text is read from standard input, byte for byte\n"
    "  --no-special      add no BOS/EOS even if the tokenizer config asks for them\n";

const char* kDetokenizeHelp =
    "usage: moewb detokenize (--model DIR | --tokenizer FILE) --ids 1,2,3 [--skip-special]\n"
    "\n"
    "Prints the text of the token ids exactly (no newline is added).\n"
    "  --model DIR       model directory with tokenizer.json (+ tokenizer_config.json)\n"
    "  --tokenizer FILE  a tokenizer.json\n"
    "  --ids LIST        comma-separated token ids\n"
    "  --skip-special    leave out special tokens (BOS, EOS, ...)\n";

moe::Tokenizer open_tokenizer(const Args& args) {
    const auto model = args.get("--model");
    const auto file = args.get("--tokenizer");
    if (model && file) moe::throw_input_error("--model/--tokenizer", "give one of them, not both");
    if (model) return moe::Tokenizer::load_dir(*model);
    if (file) return moe::Tokenizer::load_file(*file);
    moe::throw_input_error("--model/--tokenizer", "one of them is required (see --help)");
}

std::string read_stdin() {
    std::freopen(nullptr, "rb", stdin);
    std::string text;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) text.append(buf, n);
    if (std::ferror(stdin)) moe::throw_failure("standard input", "read error");
    return text;
}

}  // namespace

int cmd_tokenize(int argc, char** argv) {
    const Args args(argc, argv, {"--model", "--tokenizer", "--text"}, {"--no-special"});
    if (args.help()) return print_help(kTokenizeHelp);
    const moe::Tokenizer tok = open_tokenizer(args);
    const auto text = args.get("--text");
    const std::vector<int32_t> ids = tok.encode(text ? *text : read_stdin(), !args.has("--no-special"));
    print_json(nlohmann::json(ids));
    return 0;
}

int cmd_detokenize(int argc, char** argv) {
    const Args args(argc, argv, {"--model", "--tokenizer", "--ids"}, {"--skip-special"});
    if (args.help()) return print_help(kDetokenizeHelp);
    const moe::Tokenizer tok = open_tokenizer(args);
    const std::vector<int32_t> ids = parse_id_list(args.require("--ids"), "--ids");
    const std::string text = tok.decode(ids, args.has("--skip-special"));
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return 0;
}

}  // namespace moewb
