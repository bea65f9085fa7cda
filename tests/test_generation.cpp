// Generation: the sampler (greedy, top-k, top-p, temperature, repetition penalty, seeds),
// the stop-string filter that holds back text which may become a stop string, the
// deepseek-moe chat template, and the generation loop on a fixture checkpoint (greedy
// generation must equal argmax of a full re-computation at every step).
#include <QtTest>

#include <fstream>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "engine/chat_template.h"
#include "engine/model_config.h"
#include "tests/test_support.h"
#include "engine/error.h"
#include "engine/generator.h"
#include "engine/model.h"
#include "engine/random_weights.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

namespace {

// n choices of a sampler of `p` from the same logits.
std::vector<int32_t> draws(const std::vector<float>& logits, const moe::SamplingParams& p, int n) {
    moe::Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < n; ++i) {
        std::vector<float> l = logits;
        out.push_back(s.sample(l, {}));
    }
    return out;
}

// A random-weight model of `vocab_size` ids, small enough to generate with at once.
std::unique_ptr<moe::Model> small_random_model(int64_t vocab_size, uint64_t seed) {
    const moe::ModelConfig cfg = moe::parse_model_config(
        R"({"model_type":"deepseek","vocab_size":)" + std::to_string(vocab_size) + R"(,"hidden_size":32,
        "intermediate_size":64,"moe_intermediate_size":16,"num_hidden_layers":2,"num_attention_heads":2,
        "n_routed_experts":8,"n_shared_experts":1,"num_experts_per_tok":2,"first_k_dense_replace":1})",
        "generation-test-config");
    moe::LoadOptions lo;
    lo.threads = 2;
    return moe::make_model(cfg, moe::make_random_tensors(cfg, moe::DType::bf16, seed), lo);
}

}  // namespace

class GenerationTest : public QObject {
    Q_OBJECT
private slots:
    void greedy_takes_argmax_lowest_id_on_ties() {
        moe::Sampler s({});
        std::vector<float> l = {0.5f, 2.0f, -1.0f, 2.0f};
        QCOMPARE(s.sample(l, {}), 1);
    }
    void argmax_is_the_first_largest() {
        // Against the loop it stands for, on lengths around its lanes and a vocabulary's, with
        // ties, infinities and NaNs (wherever they fall) drawn at random.
        const auto loop = [](const std::vector<float>& v) {
            int64_t best = 0;
            for (int64_t i = 1; i < static_cast<int64_t>(v.size()); ++i)
                if (v[i] > v[best]) best = i;
            return static_cast<int32_t>(best);
        };
        std::mt19937 rng(5);
        const float special[] = {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 3.0f};
        for (size_t n : {size_t(0), size_t(1), size_t(2), size_t(31), size_t(32), size_t(33), size_t(64), size_t(100),
                         size_t(1000), size_t(102400)})
            for (int trial = 0; trial < 40; ++trial) {
                std::vector<float> v(n);
                // Few distinct values in some trials (many ties), continuous ones in others.
                for (auto& x : v)
                    x = trial % 2 ? static_cast<float>(rng() % 4) : std::ldexp(float(rng() % 100000), -10);
                const int specials = n ? static_cast<int>(rng() % 4) : 0;
                for (int k = 0; k < specials; ++k) v[rng() % n] = special[rng() % std::size(special)];
                if (n && trial % 5 == 0) v[0] = special[rng() % std::size(special)];
                QCOMPARE(moe::argmax(v), loop(v));
            }
        // The largest value the first of equals in different lanes, and after the lanes' end.
        std::vector<float> v(70, 1.0f);
        v[40] = v[9] = v[69] = 2.0f;
        QCOMPARE(moe::argmax(v), 9);
        v[9] = 1.0f;
        v[69] = 3.0f;
        QCOMPARE(moe::argmax(v), 69);
    }
    void repetition_penalty_as_published() {
        std::vector<float> l = {2.0f, -2.0f, 1.0f};
        const int32_t hist[] = {0, 1, 1};
        moe::apply_repetition_penalty(l, hist, 2.0f);
        QCOMPARE(l[0], 1.0f);   // positive: divided
        QCOMPARE(l[1], -4.0f);  // negative: multiplied (once, though seen twice)
        QCOMPARE(l[2], 1.0f);   // unseen: unchanged
        moe::Sampler s({0.0f, 0, 1.0f, 3.0f, 0});
        std::vector<float> m = {3.0f, 2.0f};
        const int32_t h0[] = {0};
        QCOMPARE(s.sample(m, h0), 1);  // 3/3 = 1 < 2
    }
    void sampling_is_seeded_and_respects_top_k_and_top_p() {
        const std::vector<float> base = {1.0f, 0.9f, 0.8f, 0.7f, -5.0f};
        auto draw = [&](const moe::SamplingParams& p, int n) { return draws(base, p, n); };
        moe::SamplingParams p;
        p.temperature = 1.0f;
        p.seed = 42;
        QCOMPARE(draw(p, 50), draw(p, 50));
        auto a = draw(p, 400);
        QVERIFY(std::count(a.begin(), a.end(), 3) > 20);  // all four likely tokens appear
        p.top_k = 2;
        for (int32_t id : draw(p, 200)) QVERIFY(id == 0 || id == 1);
        p.top_k = 0;
        p.top_p = 0.01f;  // only the most probable token survives
        for (int32_t id : draw(p, 50)) QCOMPARE(id, 0);
        p.top_p = 1.0f;
        p.temperature = 0.01f;  // nearly greedy
        for (int32_t id : draw(p, 50)) QCOMPARE(id, 0);
    }
    void top_p_and_top_k_cut_a_large_vocabulary_exactly() {
        // 4,000 ids, most far below the few that matter, so the cut is found among many.
        std::vector<float> base(4000);
        for (size_t i = 0; i < base.size(); ++i) base[i] = -30.0f + 0.001f * static_cast<float>(i % 97);
        base[7] = std::log(0.5f);
        base[3] = std::log(0.25f);   // ties with id 10: the lower id ranks first
        base[10] = std::log(0.25f);
        base[2500] = std::log(0.2f);
        auto seen = [&](const moe::SamplingParams& p) {
            const std::vector<int32_t> ids = draws(base, p, 600);
            return std::set<int32_t>(ids.begin(), ids.end());
        };
        moe::SamplingParams p;
        p.temperature = 1.0f;
        p.seed = 9;
        p.top_p = 0.4f;  // 7 holds 0.5 / 1.2 of the mass
        QCOMPARE(seen(p), (std::set<int32_t>{7}));
        p.top_p = 0.6f;  // 7 and 3 hold 0.75 / 1.2
        QCOMPARE(seen(p), (std::set<int32_t>{7, 3}));
        p.top_p = 0.7f;  // 0.625 < 0.7: id 10 too (0.833), not yet 2500
        QCOMPARE(seen(p), (std::set<int32_t>{7, 3, 10}));
        p.top_p = 0.9f;
        QCOMPARE(seen(p), (std::set<int32_t>{7, 3, 10, 2500}));
        p.top_p = 1.0f;
        p.top_k = 2;
        QCOMPARE(seen(p), (std::set<int32_t>{7, 3}));
        p.top_k = 3;
        p.top_p = 0.6f;  // within the top 3 (mass 1.0): 7 and 3
        QCOMPARE(seen(p), (std::set<int32_t>{7, 3}));
    }
    void sampled_frequencies_follow_the_softmax() {
        std::vector<float> base(10000);
        std::mt19937 rng(3);
        std::normal_distribution<float> noise(0.0f, 2.0f);
        for (auto& x : base) x = noise(rng);
        for (int i = 0; i < 5; ++i) base[static_cast<size_t>(1000 * i + 17)] = 12.0f - static_cast<float>(i);
        moe::SamplingParams p;
        p.temperature = 0.8f;
        p.top_p = 0.95f;
        p.seed = 5;
        // The reference: the whole vocabulary sorted, softmax, the nucleus renormalised.
        std::vector<int32_t> order(base.size());
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return base[a] > base[b]; });
        std::vector<double> w;
        double sum = 0;
        for (int32_t id : order) sum += w.emplace_back(std::exp((base[id] - base[order[0]]) / p.temperature));
        size_t cut = 0;
        for (double acc = 0; acc < p.top_p * sum; ++cut) acc += w[cut];
        double kept = 0;
        for (size_t i = 0; i < cut; ++i) kept += w[i];
        const int n = 8000;
        std::map<int32_t, int> count;
        for (int32_t id : draws(base, p, n)) ++count[id];
        for (const auto& [id, c] : count)
            QVERIFY2(std::find(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(cut), id) != order.begin() + static_cast<std::ptrdiff_t>(cut),
                     std::to_string(id).c_str());
        for (size_t i = 0; i < 5; ++i) {
            const double q = w[i] / kept, f = static_cast<double>(count[order[i]]) / n;
            QVERIFY2(std::abs(f - q) < 5 * std::sqrt(q * (1 - q) / n) + 1e-3,
                     (std::to_string(order[i]) + ": " + std::to_string(f) + " vs " + std::to_string(q)).c_str());
        }
    }
    void bad_sampling_parameters_are_refused() {
        QVERIFY_THROWS_EXCEPTION(moe::Error, moe::Sampler({-1.0f, 0, 1.0f, 1.0f, 0}));
        QVERIFY_THROWS_EXCEPTION(moe::Error, moe::Sampler({1.0f, 0, 0.0f, 1.0f, 0}));
        QVERIFY_THROWS_EXCEPTION(moe::Error, moe::Sampler({1.0f, 0, 1.0f, 0.0f, 0}));
    }
    void stop_filter_holds_back_possible_stops() {
        moe::StopStringFilter f({"\n\nUser:", "###"});
        QCOMPARE(f.push("Hello"), std::string("Hello"));
        QCOMPARE(f.push(" wor#"), std::string(" wor"));  // '#' may start "###"
        QCOMPARE(f.push("#x"), std::string("##x"));        // it did not
        QCOMPARE(f.push("\n"), std::string(""));
        QCOMPARE(f.push("\nUs"), std::string(""));
        QVERIFY(!f.stopped());
        QCOMPARE(f.push("er: next"), std::string(""));
        QVERIFY(f.stopped());
        QCOMPARE(f.push("more"), std::string(""));
        moe::StopStringFilter g({"END"});
        QCOMPARE(g.push("abcEN"), std::string("abc"));
        QCOMPARE(g.finish(), std::string("EN"));
        moe::StopStringFilter h({"stop"});
        QCOMPARE(h.push("xxstopyy"), std::string("xx"));
        QVERIFY(h.stopped());
    }
    void deepseek_moe_chat_template() {
        const auto t = moe::deepseek_moe_chat_template();
        QCOMPARE(t.bos, std::string("<｜begin▁of▁sentence｜>"));
        QCOMPARE(t.eos, std::string("<｜end▁of▁sentence｜>"));
        const std::string s = moe::render_chat(
            t, {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "2+2?"}}, true);
        QCOMPARE(s, std::string("<｜begin▁of▁sentence｜>Be brief.\n\nUser: Hi\n\nAssistant: Hello!"
                                "<｜end▁of▁sentence｜>User: 2+2?\n\nAssistant:"));
        QCOMPARE(moe::render_chat(t, {{"user", "x"}}, false), std::string("<｜begin▁of▁sentence｜>User: x\n\n"));
        QVERIFY_THROWS_EXCEPTION(moe::Error, moe::render_chat(t, {{"robot", "x"}}, true));
    }
    void v3_and_r1_chat_templates() {
        const std::vector<moe::ChatMessage> conv{{"system", "Be brief."},
                                                 {"user", "Hi"},
                                                 {"assistant", "<think>\nThey greet me.\n</think>\n\nHello!"},
                                                 {"user", "2+2?"}};
        QCOMPARE(moe::render_chat(moe::deepseek_v3_chat_template(), conv, true),
                 std::string("<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜><think>\nThey greet me.\n</think>"
                             "\n\nHello!<｜end▁of▁sentence｜><｜User｜>2+2?<｜Assistant｜>"));
        // R1: the history keeps only the answer after </think>; the prompt opens thinking.
        QCOMPARE(moe::render_chat(moe::deepseek_r1_chat_template(), conv, true),
                 std::string("<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hi<｜Assistant｜>\n\nHello!<｜end▁of▁sentence｜>"
                             "<｜User｜>2+2?<｜Assistant｜><think>\n"));
        // Several system messages are joined with a blank line.
        QCOMPARE(moe::render_chat(moe::deepseek_v3_chat_template(), {{"system", "A"}, {"system", "B"}, {"user", "x"}}, false),
                 std::string("<｜begin▁of▁sentence｜>A\n\nB<｜User｜>x"));
    }
    void chat_template_recognised_from_tokenizer_config() {
        QTemporaryDir dir;
        const std::string d = dir.path().toStdString();
        const moe::ModelConfig v2 = moe::load_model_config(test_support::fixture_path("v2lite_yarn"));
        const moe::ModelConfig v3 = moe::load_model_config(test_support::fixture_path("v3_fp8_mtp"));
        QCOMPARE(moe::chat_template_for(d, v2).style, moe::ChatStyle::deepseek_llm);  // no tokenizer_config.json
        QCOMPARE(moe::chat_template_for(d, v3).style, moe::ChatStyle::deepseek_v3);
        auto write = [&](const std::string& tmpl) {
            std::ofstream(d + "/tokenizer_config.json") << nlohmann::json({{"chat_template", tmpl}}).dump();
        };
        write("{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}");
        QCOMPARE(moe::chat_template_for(d, v2).style, moe::ChatStyle::deepseek_v3);
        write("{% set content = content.split('</think>')[-1] %}{{'<｜Assistant｜><think>\\n'}}");
        QCOMPARE(moe::chat_template_for(d, v3).style, moe::ChatStyle::deepseek_r1);
        write("{{ 'Assistant: ' + message['content'] + eos_token }}");
        QCOMPARE(moe::chat_template_for(d, v3).style, moe::ChatStyle::deepseek_llm);
        std::ofstream(d + "/tokenizer_config.json") << "{not json";
        QVERIFY_THROWS_EXCEPTION(moe::Error, moe::chat_template_for(d, v3));
    }
    void thinking_splitter_handles_markers_across_pieces() {
        moe::ThinkingSplitter s(true);
        std::string thinking, answer;
        auto take = [&](const std::vector<moe::ThinkingSplitter::Piece>& ps) {
            for (const auto& p : ps) (p.thinking ? thinking : answer) += p.text;
        };
        for (const char* piece : {"Let me see", ". 2+2=4.</th", "ink>", "\n\nIt is 4", "."}) take(s.push(piece));
        take(s.finish());
        QCOMPARE(thinking, std::string("Let me see. 2+2=4."));
        QCOMPARE(answer, std::string("\n\nIt is 4."));
        QVERIFY(!s.thinking());
        moe::ThinkingSplitter plain(false);  // a section the model opens itself
        thinking.clear();
        answer.clear();
        for (const char* piece : {"<thi", "nk>hmm</think>ok <", "b>"}) take(plain.push(piece));
        take(plain.finish());
        QCOMPARE(thinking, std::string("hmm"));
        QCOMPARE(answer, std::string("ok <b>"));
    }
    void greedy_generation_matches_full_recomputation() {
        moe::LoadOptions lo;
        lo.threads = 2;
        auto m = moe::load_model(std::string(MOE_SOURCE_DIR) + "/tests/fixtures/f32_single", lo);
        const std::vector<int32_t> prompt = {0, 5, 17, 42, 8};
        moe::GenerateParams gp;
        gp.max_new_tokens = 10;
        gp.stop_at_eos = false;
        moe::RoutingRecorder rec;
        gp.observer = &rec;
        const auto r = moe::generate(*m, nullptr, prompt, gp, {});
        QCOMPARE(r.tokens.size(), size_t(10));
        QCOMPARE(r.stop_reason, std::string("max_new_tokens"));
        std::vector<int32_t> seq = prompt;
        for (int32_t next : r.tokens) {
            moe::Session s(*m);
            std::vector<float> logits;
            moe::ForwardOptions o;
            o.all_logits = false;
            s.forward(seq, o, logits);
            QCOMPARE(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()), next);
            seq.push_back(next);
        }
        // Routing covers the prompt (prefill) and every generated token that was fed back.
        const auto& layer = rec.layers().begin()->second;
        QCOMPARE(layer.size(), prompt.size() + r.tokens.size() - 1);
        QCOMPARE(layer.back().source, moe::TokenSource::generated);
        QCOMPARE(layer.front().source, moe::TokenSource::prompt);
    }
    void generation_stops_at_eos() {
        moe::LoadOptions lo;
        lo.threads = 1;
        auto m = moe::load_model(std::string(MOE_SOURCE_DIR) + "/tests/fixtures/f32_single", lo);
        moe::GenerateParams gp;
        gp.max_new_tokens = 10;
        const auto free_run = moe::generate(*m, nullptr, {0, 5, 17}, gp, {});
        gp.eos_ids = {free_run.tokens[2]};  // pretend the third generated token is EOS
        const auto r = moe::generate(*m, nullptr, {0, 5, 17}, gp, {});
        QCOMPARE(r.stop_reason, std::string("eos"));
        QCOMPARE(r.tokens.back(), free_run.tokens[2]);
        QVERIFY(r.tokens.size() <= 3);
    }
    void text_streams_whole_characters_and_honours_stop_strings() {
        // A random-weight model over the vocabulary of a small byte-level BPE tokenizer:
        // sampled ids decode to arbitrary byte sequences, the hard case for streaming.
        const auto tok = moe::Tokenizer::load_dir(std::string(MOE_SOURCE_DIR) + "/tests/fixtures/tokenizers/tiny-llm");
        auto m = small_random_model(tok.vocab_size(), 11);
        const auto prompt = tok.encode("Once upon a time");
        moe::GenerateParams gp;
        gp.max_new_tokens = 60;
        gp.stop_at_eos = false;
        gp.sampling.temperature = 1.5f;
        gp.sampling.seed = 3;
        std::string streamed;
        const auto r = moe::generate(*m, &tok, prompt, gp, [&](std::string_view piece) {
            const std::string p(piece);
            // Every piece is whole UTF-8 by itself.
            if (moe::utf8_replace_invalid(p) != p) return false;
            streamed += p;
            return true;
        });
        QCOMPARE(r.stop_reason, std::string("max_new_tokens"));
        QCOMPARE(streamed, r.text);
        QCOMPARE(r.text, tok.decode(r.tokens));
        QVERIFY(r.text.size() > 20);

        // Stop at a piece of that text: the same seed gives the same tokens up to there.
        const std::string stop = r.text.substr(r.text.size() / 2, 3);
        const size_t at = r.text.find(stop);
        gp.stop_strings = {stop};
        const auto s = moe::generate(*m, &tok, prompt, gp, {});
        QCOMPARE(s.stop_reason, std::string("stop_string"));
        QCOMPARE(s.text, r.text.substr(0, at));
    }
    void ids_that_name_no_token_are_never_generated() {
        // A vocabulary padded far beyond the tokenizer's (as DeepSeekMoE 16B pads 100,015 tokens
        // to 102,400 logits): a random model puts most of its probability on the padding.
        const auto tok = moe::Tokenizer::load_dir(std::string(MOE_SOURCE_DIR) + "/tests/fixtures/tokenizers/tiny-llm");
        auto m = small_random_model(8 * tok.vocab_size(), 5);
        const auto prompt = tok.encode("Once upon a time");
        for (float temperature : {0.0f, 1.5f}) {
            moe::GenerateParams gp;
            gp.max_new_tokens = 40;
            gp.stop_at_eos = false;
            gp.sampling.temperature = temperature;
            gp.sampling.seed = 7;
            const auto r = moe::generate(*m, &tok, prompt, gp, {});
            QCOMPARE(r.tokens.size(), size_t(40));
            for (int32_t id : r.tokens) QVERIFY2(!tok.token_content(id).empty(), std::to_string(id).c_str());
            QCOMPARE(r.text, tok.decode(r.tokens));
            // Without a tokenizer every id of the model may come out, the padding too.
            const auto ids_only = moe::generate(*m, nullptr, prompt, gp, {});
            QVERIFY(std::any_of(ids_only.tokens.begin(), ids_only.tokens.end(),
                                [&](int32_t id) { return id >= tok.vocab_size(); }));
        }
    }
    void chat_prompt_encodes_special_tokens_whole() {
        const auto tok = moe::Tokenizer::load_dir(std::string(MOE_SOURCE_DIR) + "/tests/fixtures/tokenizers/deepseek-llm");
        const auto t = moe::deepseek_moe_chat_template();
        const auto ids = tok.encode(moe::render_chat(t, {{"user", "Hi"}}, true), false);
        QCOMPARE(ids.front(), 100000);  // <｜begin▁of▁sentence｜> as one token, no second BOS
        QCOMPARE(tok.token_id(t.eos).value_or(-1), 100001);
        QCOMPARE(tok.decode(ids, true), std::string("User: Hi\n\nAssistant:"));
    }
};

QTEST_APPLESS_MAIN(GenerationTest)
#include "test_generation.moc"
