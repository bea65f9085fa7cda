// moewb generate: plain completion or chat (the model's chat template), streamed to
// stdout as it is generated, optionally with an expert mask.
#include <cstdio>
#include <filesystem>
#include <optional>

#include "app/moewb/cli_common.h"
#include "app/moewb/commands.h"
#include "engine/chat_template.h"
#include "engine/error.h"
#include "engine/generator.h"
#include "engine/tokenizer.h"

namespace moewb {

namespace {

const char* kHelp =
    "usage: moewb generate --model DIR (--prompt TEXT | --ids 1,2,3) [--chat] [--system TEXT]\n"
    "                      [--max-new-tokens N] [--temperature T] [--top-p P] [--top-k K]\n"
    "                      [--repetition-penalty R] [--seed S] [--stop STR]\n"
    "                      [--mask SPEC | --mask-file FILE] [--mask-mode reroute|drop] [--threads N] [--backend cpu|cuda] [--activations exact|bf16] [--stats]\n\n"
    "Streams the generated text to stdout. --chat wraps the prompt in the model's chat\n"
    "template, recognised from tokenizer_config.json (deepseek-llm \"User: ...\\n\\nAssistant:\" for\n"
    "DeepSeekMoE 16B and V2; <｜User｜>/<｜Assistant｜> for V3; R1's thinking section shown under\n"
    "[thinking], the answer under [answer]). Temperature 0 (the\n"
    "default) is greedy. Generation stops at EOS, at --stop STR (not printed) or after\n"
    "--max-new-tokens. Ids of the model's vocabulary that name no token of the tokenizer (a\n"
    "padded vocabulary's last rows) are never chosen. --stats prints token counts and speeds as\n"
    "JSON on stderr.\n"
    MOEWB_MASK_FILE_HELP;

}  // namespace

int cmd_generate(int argc, char** argv) {
    auto flags = model_value_flags();
    flags.insert({"--prompt", "--ids", "--system", "--max-new-tokens", "--temperature", "--top-p", "--top-k",
                  "--repetition-penalty", "--seed", "--stop"});
    Args args(argc, argv, flags, {"--chat", "--stats"});
    if (args.help()) return print_help(kHelp);
    if (args.has("--prompt") == args.has("--ids"))
        moe::throw_input_error("generate", "give exactly one of --prompt TEXT or --ids");
    moe::GenerateParams gp;
    gp.max_new_tokens = args.get_int("--max-new-tokens", 128, 0, 1 << 20);
    gp.sampling.temperature = static_cast<float>(args.get_double("--temperature", 0.0, 0.0, 100.0));
    gp.sampling.top_p = static_cast<float>(args.get_double("--top-p", 1.0, 1e-6, 1.0));
    gp.sampling.top_k = args.get_int("--top-k", 0, 0, 1 << 24);
    gp.sampling.repetition_penalty = static_cast<float>(args.get_double("--repetition-penalty", 1.0, 0.01, 100.0));
    gp.sampling.seed = static_cast<uint64_t>(args.get_int("--seed", 0, 0, INT64_MAX));
    if (args.has("--stop")) {
        if (args.require("--stop").empty()) moe::throw_input_error("--stop", "an empty stop string would stop nothing");
        gp.stop_strings.push_back(args.require("--stop"));
    }

    const std::string dir = args.require("--model");
    // A model directory without tokenizer.json can still generate from --ids: the
    // generated ids are printed as a JSON array instead of text.
    const bool have_tokenizer = std::filesystem::exists(std::filesystem::path(dir) / "tokenizer.json");
    if (!have_tokenizer && !args.has("--ids"))
        moe::throw_input_error(dir, "has no tokenizer.json: use --ids to give token ids");
    std::optional<moe::Tokenizer> tok;
    if (have_tokenizer) tok.emplace(moe::Tokenizer::load_dir(dir));
    auto model = open_model(args);
    if (tok) moe::require_tokenizer_fits(*tok, model->config().vocab_size);
    const moe::ExpertMask mask = mask_from_args(args, model->config());
    gp.mask = &mask;

    std::vector<int32_t> prompt;
    std::optional<moe::ChatTemplate> tmpl;
    if (args.has("--ids")) {
        prompt = parse_id_list(args.require("--ids"), "--ids");
    } else if (args.has("--chat")) {
        std::vector<moe::ChatMessage> msgs;
        if (args.has("--system")) msgs.push_back({"system", args.require("--system")});
        msgs.push_back({"user", args.require("--prompt")});
        tmpl = moe::chat_template_for(dir, model->config());
        prompt = tok->encode(moe::render_chat(*tmpl, msgs, true), /*add_special=*/false);
        if (auto eos = tok->token_id(tmpl->eos)) gp.eos_ids.push_back(*eos);
    } else {
        prompt = tok->encode(args.require("--prompt"));
    }
    // A thinking model's (R1) reasoning is shown as such: under a "thinking" heading until
    // </think>, then the answer under its own.
    const bool thinks = tmpl && tmpl->opens_thinking();
    moe::ThinkingSplitter splitter(thinks);
    int shown = -1;  // -1 nothing yet, 0 answer, 1 thinking
    auto show = [&](const std::vector<moe::ThinkingSplitter::Piece>& pieces) {
        for (const auto& p : pieces) {
            if (thinks && (p.thinking ? 1 : 0) != shown) {
                std::fputs(p.thinking ? "[thinking]\n" : (shown == 1 ? "\n[answer]\n" : "[answer]\n"), stdout);
                shown = p.thinking ? 1 : 0;
            }
            std::fwrite(p.text.data(), 1, p.text.size(), stdout);
        }
        std::fflush(stdout);
    };
    const moe::GenerateResult r =
        moe::generate(*model, tok ? &*tok : nullptr, prompt, gp, [&](std::string_view piece) {
            if (thinks) {
                show(splitter.push(piece));
            } else {
                std::fwrite(piece.data(), 1, piece.size(), stdout);
                std::fflush(stdout);
            }
            return true;
        });
    if (thinks) show(splitter.finish());
    if (!tok) print_json(r.tokens);
    else std::fputc('\n', stdout);
    if (args.has("--stats")) {
        nlohmann::json j = {{"prompt_tokens", r.prompt_tokens},
                            {"generated_tokens", static_cast<int64_t>(r.tokens.size())},
                            {"stop_reason", r.stop_reason},
                            {"prefill_seconds", r.prefill_seconds},
                            {"decode_seconds", r.decode_seconds}};
        std::fprintf(stderr, "%s\n", j.dump().c_str());
    }
    return 0;
}

}  // namespace moewb
