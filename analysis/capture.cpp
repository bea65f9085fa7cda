// The capture job; see capture.h and docs/capture.md. Threads: the calling thread builds
// the work list, reports progress and owns the store connection; `concurrency` workers each
// own an HttpClient, take whole documents from a shared index, send their windows in order
// and submit the finished DocumentRouting to the TraceWriter (under submit_mutex). The first
// worker error stops the others after their current request; it is rethrown on the calling
// thread once the writer has committed what was finished.
#include "analysis/capture.h"

#include "analysis/run_resume.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <span>
#include <sstream>
#include <thread>
#include <tuple>

#include <nlohmann/json.hpp>

#include "analysis/corpus_tokens.h"
#include "analysis/fingerprint.h"
#include "engine/error.h"

namespace moe::analysis {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string trim_slash(std::string s) {
    while (!s.empty() && s.back() == '/') s.pop_back();
    return s;
}

// The server's version: SGLang's /get_server_info ("version"), else /version (both engines).
std::string probe_version(HttpClient& http, const std::string& base, CaptureEngine engine, double timeout) {
    std::vector<std::string> paths;
    if (engine == CaptureEngine::sglang) paths.push_back("/get_server_info");
    paths.push_back("/version");
    for (const std::string& p : paths) {
        const HttpResponse r = http.get(base + p, timeout);
        if (r.status != 200) continue;
        const json j = json::parse(r.body, nullptr, false);
        if (j.is_object() && j.contains("version") && j["version"].is_string()) return j["version"].get<std::string>();
    }
    return {};
}

std::string probe_served_model(HttpClient& http, const std::string& base, double timeout) {
    const HttpResponse r = http.get(base + "/v1/models", timeout);
    if (r.status != 200) return {};
    const json j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("data") && j["data"].is_array() && !j["data"].empty() &&
        j["data"][0].contains("id") && j["data"][0]["id"].is_string())
        return j["data"][0]["id"].get<std::string>();
    return {};
}

std::string request_body(CaptureEngine engine, std::span<const int32_t> ids, int64_t max_new,
                         const std::string& served_model) {
    json j;
    if (engine == CaptureEngine::sglang) {
        j["input_ids"] = std::vector<int32_t>(ids.begin(), ids.end());
        j["sampling_params"] = {{"max_new_tokens", max_new}, {"temperature", 0}};
        j["return_routed_experts"] = true;
    } else {
        if (!served_model.empty()) j["model"] = served_model;
        j["prompt"] = std::vector<int32_t>(ids.begin(), ids.end());
        j["max_tokens"] = max_new;
        j["temperature"] = 0;
        j["return_token_ids"] = true;
    }
    return j.dump();
}

std::string http_problem(const HttpResponse& r, CaptureEngine engine) {
    if (r.status == 0) return "no answer: " + r.error;
    std::string msg = "HTTP " + std::to_string(r.status);
    const json j = json::parse(r.body, nullptr, false);
    std::string detail;
    if (j.is_object()) {
        if (j.contains("message") && j["message"].is_string()) detail = j["message"].get<std::string>();
        else if (j.contains("error") && j["error"].is_object() && j["error"].contains("message"))
            detail = j["error"]["message"].is_string() ? j["error"]["message"].get<std::string>() : j["error"].dump();
        else if (j.contains("error")) detail = j["error"].dump();
        else if (j.contains("detail")) detail = j["detail"].dump();
    }
    if (detail.empty()) detail = r.body.substr(0, 300);
    if (!detail.empty()) msg += ": " + detail;
    if (detail.find("routed_experts") != std::string::npos || detail.find("routed experts") != std::string::npos)
        msg += std::string(" (start the ") + (engine == CaptureEngine::sglang ? "SGLang" : "vLLM") +
               " server with --enable-return-routed-experts)";
    return msg;
}

struct WorkItem {
    std::unique_ptr<DocumentRouting> doc;
    std::string domain;
    std::vector<int32_t> prompt;  // the document's tokens; doc->token_ids receives what is stored
};

}  // namespace

ModelRecord describe_capture_model(const ModelConfig& c, const Tokenizer& tokenizer, const std::string& dir) {
    ModelRecord r = model_record_from_config(c, dir);
    Hasher h;
    h.update(std::string_view("moe-workbench capture model fingerprint 1"));
    h.update(r.config_json);
    h.update(read_file_or_empty(tokenizer.source()));
    r.content_hash = "cfg1:" + h.hex();
    const int32_t V = tokenizer.vocab_size();
    r.vocab.resize(static_cast<size_t>(V));
    for (int32_t id = 0; id < V; ++id) {
        try {
            r.vocab[static_cast<size_t>(id)] = utf8_escape_invalid(tokenizer.token_text(id));
        } catch (const Error&) {
            // an id that names no token: empty text
        }
    }
    return r;
}

int64_t capture_window(int64_t context, int64_t gen_tokens) {
    return context - std::max<int64_t>(gen_tokens, 1);
}

CaptureResult run_capture(RoutingStore& store, const ModelConfig& cfg, const ModelRecord& model_record,
                          const Tokenizer& tokenizer, const Corpus& corpus, const CaptureOptions& opt) {
    const auto t0 = Clock::now();
    if (cfg.n_routed_experts <= 0) throw_input_error(cfg.source, "the model has no routed experts: nothing to capture");
    require_tokenizer_fits(tokenizer, cfg.vocab_size);
    if (opt.server.empty()) throw_input_error("--server", "needs the server's URL, e.g. http://localhost:30000");
    if (opt.gen_tokens < 0) throw_input_error("--gen-tokens", "must be 0 or more");
    if (opt.concurrency < 1) throw_input_error("--concurrency", "must be at least 1");
    const int64_t context = opt.context > 0 ? opt.context : cfg.max_position_embeddings;
    const int64_t window = capture_window(context, opt.gen_tokens);
    if (window < 1)
        throw_input_error("--context", "a context of " + std::to_string(context) + " leaves no room for a prompt and " +
                                           std::to_string(std::max<int64_t>(opt.gen_tokens, 1)) + " generated tokens");
    const std::string base = trim_slash(opt.server);
    const std::string engine_name = capture_engine_name(opt.engine);
    const std::string url = base + (opt.engine == CaptureEngine::sglang ? "/generate" : "/v1/completions");
    const int64_t max_new = std::max<int64_t>(opt.gen_tokens, 1);

    // Every document read and tokenized before the server is asked or the store written.
    std::vector<std::vector<TokenizedDocument>> tokenized =
        given_or_tokenized(opt.tokenized, corpus, tokenizer, opt.max_tokens);

    CaptureResult result;
    std::string served_model = opt.served_model;
    {
        HttpClient probe(opt.http);
        const double t = std::min(opt.http.timeout_s, 10.0);
        result.server_version = probe_version(probe, base, opt.engine, t);
        if (opt.engine == CaptureEngine::vllm && served_model.empty()) served_model = probe_served_model(probe, base, t);
    }

    const int64_t model_id = store.add_model(model_record);
    const int64_t corpus_id = store.add_corpus({corpus.name, corpus.path, "", ""});
    std::vector<int64_t> domain_ids;
    for (const auto& d : corpus.domains) domain_ids.push_back(store.add_domain(corpus_id, {d.name, d.source, d.licence}));

    RunSpec spec;
    spec.model_id = model_id;
    spec.corpus_id = corpus_id;
    spec.source = engine_name;
    spec.engine_version = result.server_version;
    spec.gate_weight_kind.reset();
    spec.has_entropy = false;
    spec.split = corpus.split;
    spec.context = context;
    spec.max_tokens = opt.max_tokens;
    std::string domains;
    for (const auto& d : corpus.domains) domains += d.name + ";";
    spec.trace_key = "capture|corpus=" + corpus.path + "|split=" + corpus.split + "|domains=" + domains +
                     "|max_tokens=" + std::to_string(opt.max_tokens) + "|context=" + std::to_string(context) +
                     "|gen_tokens=" + std::to_string(opt.gen_tokens) + "|source=" + engine_name;
    spec.layers = run_layers(cfg);

    const RunResume resume = RunResume::start(store, spec, opt.new_run);
    if (resume.report_into(result)) return result;

    std::vector<WorkItem> work;
    CaptureProgress progress;
    progress.run_id = result.run_id;
    for (size_t di = 0; di < corpus.domains.size(); ++di) {
        const CorpusDomain& dom = corpus.domains[di];
        for (TokenizedDocument& td : tokenized[di]) {
            if (resume.finished(domain_ids[di], corpus.split, td.id, td.text_hash, dom.file, "captured")) {
                ++result.documents_skipped;
                continue;
            }
            WorkItem item;
            item.doc = std::make_unique<DocumentRouting>();
            item.doc->domain_id = domain_ids[di];
            item.doc->split = corpus.split;
            item.doc->name = std::move(td.id);
            item.doc->text_hash = std::move(td.text_hash);
            item.doc->n_bytes = td.n_bytes;
            item.doc->truncated = td.truncated;
            item.prompt = std::move(td.ids);
            progress.tokens_total += static_cast<int64_t>(item.prompt.size());
            item.domain = dom.name;
            work.push_back(std::move(item));
        }
    }
    progress.documents_total = static_cast<int64_t>(work.size());

    TraceWriter writer(store, result.run_id, opt.writer);
    std::atomic<bool> stop{false};
    std::atomic<size_t> next{0};
    std::atomic<int64_t> docs_done{0}, tokens_sent{0}, tokens_stored{0}, requests{0}, retries{0};
    std::mutex state_mutex;  // guards: axis, first_error, last_domain, writer submits, workers_left
    std::condition_variable changed;
    LayerAxis axis = opt.layer_axis;
    std::exception_ptr first_error;
    std::string last_domain;
    int workers_left = opt.concurrency;

    auto worker = [&] {
        try {
            HttpClient http(opt.http);
            for (;;) {
                if (stop.load()) break;
                const size_t i = next.fetch_add(1);
                if (i >= work.size()) break;
                WorkItem& item = work[i];
                DocumentRouting& doc = *item.doc;
                for (const RunLayer& rl : spec.layers) {
                    DocumentRouting::Layer l;
                    l.layer = rl.layer;
                    l.k = rl.k;
                    doc.layers.push_back(std::move(l));
                }
                const size_t T = item.prompt.size();
                bool aborted = false;
                for (size_t w0 = 0; w0 < T; w0 += static_cast<size_t>(window)) {
                    if (w0 > 0 && stop.load()) {
                        aborted = true;  // the document is not stored; a resumed capture redoes it
                        break;
                    }
                    const size_t wn = std::min(T - w0, static_cast<size_t>(window));
                    const std::span<const int32_t> ids(item.prompt.data() + w0, wn);
                    const std::string where = engine_name + " server " + base + ", document '" + doc.name + "'" +
                                              (T > static_cast<size_t>(window)
                                                   ? " window at token " + std::to_string(w0)
                                                   : std::string());
                    int attempts = 0;
                    const HttpResponse r = http.post_json_retrying(url, request_body(opt.engine, ids, max_new, served_model),
                                                                   &stop, &attempts);
                    requests += attempts;
                    retries += attempts - 1;
                    if (r.status != 200) {
                        const std::string problem = http_problem(r, opt.engine);
                        if (r.status == 0 || r.status >= 500)
                            throw_failure(where, problem + (attempts > 1 ? " (after " + std::to_string(attempts) +
                                                                               " attempts)"
                                                                         : std::string()));
                        throw_input_error(where, problem);
                    }
                    ParsedResponse pr =
                        parse_engine_response(opt.engine, r.body, static_cast<int64_t>(wn), cfg, where);
                    if (pr.n_output < 1)
                        throw_input_error(where, "the server generated no token, so the last prompt token has no "
                                                 "routing row");
                    if (pr.n_output > 1 && static_cast<int64_t>(pr.output_ids.size()) != pr.n_output)
                        throw_input_error(where, "the response lacks the generated token ids (SGLang output_ids, "
                                                 "vLLM choices[0].token_ids), needed with --gen-tokens");
                    LayerAxis use;
                    {
                        std::lock_guard lock(state_mutex);
                        use = resolve_layer_axis(pr.routing, cfg, axis, where);
                        if (axis == LayerAxis::auto_detect && pr.routing.rows > 0 &&
                            !(pr.routing.layers == cfg.num_hidden_layers &&
                              cfg.n_moe_layers() == cfg.num_hidden_layers))
                            axis = use;  // pinned for the run: later payloads must have the same layout
                    }
                    append_routing(pr.routing, cfg, use, doc.layers, where);
                    doc.token_ids.insert(doc.token_ids.end(), ids.begin(), ids.end());
                    doc.token_ids.insert(doc.token_ids.end(), pr.output_ids.begin(),
                                         pr.output_ids.begin() + (pr.n_output - 1));
                    tokens_sent += static_cast<int64_t>(wn);
                }
                if (aborted) break;
                const int64_t stored = static_cast<int64_t>(doc.token_ids.size());
                {
                    std::lock_guard lock(state_mutex);
                    writer.submit(std::move(item.doc));
                    last_domain = item.domain;
                }
                tokens_stored += stored;
                ++docs_done;
                changed.notify_all();
            }
        } catch (...) {
            std::lock_guard lock(state_mutex);
            if (!first_error) first_error = std::current_exception();
            stop = true;
        }
        std::lock_guard lock(state_mutex);
        --workers_left;
        changed.notify_all();
    };

    auto report = [&] {
        progress.documents_done = docs_done.load();
        progress.tokens_done = tokens_sent.load();
        progress.requests = requests.load();
        progress.retries = retries.load();
        progress.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        if (opt.progress && !opt.progress(progress) && !stop.load()) {
            result.stopped = true;
            stop = true;
        }
    };
    report();
    std::vector<std::thread> threads;
    const int n_threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(opt.concurrency), std::max<size_t>(work.size(), 1)));
    workers_left = n_threads;
    for (int i = 0; i < n_threads; ++i) threads.emplace_back(worker);
    {
        std::unique_lock lock(state_mutex);
        while (workers_left > 0) {
            changed.wait_for(lock, std::chrono::milliseconds(200));
            progress.domain = last_domain;
            lock.unlock();
            report();
            lock.lock();
        }
    }
    for (std::thread& t : threads) t.join();
    writer.finish();  // commits every whole document, also when a worker failed
    result.writer = writer.stats();
    result.documents_captured = docs_done.load();
    result.tokens_captured = tokens_stored.load();
    result.requests = requests.load();
    result.retries = retries.load();
    result.layer_axis = axis == LayerAxis::auto_detect ? "" : layer_axis_name(axis);
    if (opt.layer_axis != LayerAxis::auto_detect) result.layer_axis = layer_axis_name(opt.layer_axis);
    report();
    if (first_error) std::rethrow_exception(first_error);
    result.complete = result.documents_captured == static_cast<int64_t>(work.size());
    if (result.complete) store.finish_run(result.run_id, true);
    result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return result;
}

}  // namespace moe::analysis
