// Offline import of saved SGLang / vLLM responses (JSONL, one request per line) into a run
// of the routing store; see capture.h and docs/capture.md for the line format. The same
// validation as a live capture; every line checked before the store is opened (a file with a
// bad line leaves the store as it was, or makes none); one document per line, written whole or
// not at all; the same file imported again resumes its incomplete run.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>

#include <nlohmann/json.hpp>

#include "analysis/capture.h"
#include "analysis/run_resume.h"
#include "analysis/fingerprint.h"
#include "engine/error.h"

namespace moe::analysis {

namespace {

using json = nlohmann::json;

std::optional<std::vector<int32_t>> ids_at(const json& obj, std::initializer_list<const char*> path) {
    const json* v = &obj;
    for (const char* key : path) {
        if (v->is_array() && !v->empty() && std::string(key) == "0") {
            v = &(*v)[0];
            continue;
        }
        if (!v->is_object() || !v->contains(key)) return std::nullopt;
        v = &(*v)[key];
    }
    if (!v->is_array()) return std::nullopt;
    std::vector<int32_t> out;
    out.reserve(v->size());
    for (const json& e : *v) {
        if (!e.is_number_integer()) return std::nullopt;
        out.push_back(static_cast<int32_t>(e.get<int64_t>()));
    }
    return out;
}

struct Line {
    json obj;
    const json* response = nullptr;
};

}  // namespace

ImportResult run_import(RoutingStore& store, const ModelConfig& cfg, const ModelRecord& model_record,
                        const std::string& responses_path, const ImportOptions& opt) {
    return run_import([&]() -> RoutingStore& { return store; }, cfg, model_record, responses_path, opt);
}

ImportResult run_import(const std::function<RoutingStore&()>& open_store, const ModelConfig& cfg,
                        const ModelRecord& model_record, const std::string& responses_path, const ImportOptions& opt) {
    namespace fs = std::filesystem;
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    if (cfg.n_routed_experts <= 0) throw_input_error(cfg.source, "the model has no routed experts: nothing to import");
    std::ifstream in(responses_path, std::ios::binary);
    if (!in) throw_input_error(responses_path, "cannot open the responses file");
    std::error_code ec;
    const fs::path abs = fs::weakly_canonical(fs::absolute(responses_path), ec);
    const std::string stem = abs.stem().string();

    // Lines are read one at a time; the engine comes from the first response (or --engine).
    std::string text;
    int64_t line_no = 0;
    auto next_line = [&](Line& line) -> bool {
        while (std::getline(in, text)) {
            ++line_no;
            if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
            line.obj = json::parse(text, nullptr, false);
            const std::string where = responses_path + ":" + std::to_string(line_no);
            if (line.obj.is_discarded() || !line.obj.is_object())
                throw_input_error(where, "not a JSON object");
            line.response = line.obj.contains("response") ? &line.obj["response"] : &line.obj;
            if (!line.response->is_object()) throw_input_error(where, "\"response\" is not a JSON object");
            return true;
        }
        return false;
    };
    auto engine_of = [&](const Line& line, const std::string& where) {
        if (opt.engine) return *opt.engine;
        if (line.obj.contains("engine") && line.obj["engine"].is_string())
            return parse_capture_engine(line.obj["engine"].get<std::string>(), where + ": \"engine\"");
        if (line.response->contains("meta_info")) return CaptureEngine::sglang;
        if (line.response->contains("choices")) return CaptureEngine::vllm;
        throw_input_error(where, "neither an SGLang response (meta_info) nor a vLLM one (choices); say which with --engine");
    };

    ImportResult result;
    Line first;
    if (!next_line(first)) throw_input_error(responses_path, "has no responses");
    const CaptureEngine engine = engine_of(first, responses_path + ":" + std::to_string(line_no));
    result.engine = capture_engine_name(engine);
    const std::vector<RunLayer> run_layer_list = run_layers(cfg);

    // One line as a document: every check, the routing laid out by layer. Nothing is stored here.
    struct LineDoc {
        std::string domain;
        std::unique_ptr<DocumentRouting> doc;  // its name and text_hash set
    };
    auto read_doc = [&](const Line& line, int64_t index, LayerAxis& axis) {
        const std::string where = responses_path + ":" + std::to_string(line_no);
        const json& o = line.obj;
        const json& resp = *line.response;
        if (engine_of(line, where) != engine)
            throw_input_error(where, "a " + std::string(capture_engine_name(engine_of(line, where))) +
                                         " response in a file of " + result.engine + " responses");
        LineDoc d;
        d.doc = std::make_unique<DocumentRouting>();
        d.doc->name = stem + "-" + std::to_string(index);
        if (o.contains("id")) d.doc->name = o["id"].is_string() ? o["id"].get<std::string>() : o["id"].dump();
        d.domain = opt.domain;
        if (d.domain.empty())
            d.domain = o.contains("domain") && o["domain"].is_string() ? o["domain"].get<std::string>() : "import";
        auto prompt = ids_at(o, {"prompt_ids"});
        if (!prompt) prompt = ids_at(o, {"input_ids"});
        if (!prompt) prompt = ids_at(o, {"request", "input_ids"});
        if (!prompt) prompt = ids_at(o, {"request", "prompt"});
        if (!prompt) prompt = ids_at(resp, {"prompt_token_ids"});
        if (!prompt) prompt = ids_at(resp, {"choices", "0", "prompt_token_ids"});
        if (!prompt)
            throw_input_error(where, "no prompt token ids (\"prompt_ids\", \"input_ids\", \"request\".\"input_ids\" or "
                                     "\"request\".\"prompt\", or vLLM's prompt_token_ids)");
        for (int32_t id : *prompt)
            if (id < 0 || id >= cfg.vocab_size)
                throw_input_error(where, "prompt token id " + std::to_string(id) + " is outside the model's vocab_size " +
                                             std::to_string(cfg.vocab_size));
        ParsedResponse pr = parse_engine_response(engine, resp.dump(), static_cast<int64_t>(prompt->size()), cfg, where);
        if (pr.output_ids.empty())
            if (auto out = ids_at(o, {"output_ids"})) pr.output_ids = *out;
        if (pr.n_output > 1 && static_cast<int64_t>(pr.output_ids.size()) != pr.n_output)
            throw_input_error(where, "the generated token ids are missing (\"output_ids\"): " + std::to_string(pr.n_output) +
                                         " tokens were generated");
        Hasher h;
        h.update(prompt->data(), prompt->size() * 4);
        h.update_u64(0xFFFFFFFFFFFFFFFFull);
        h.update(pr.output_ids.data(), pr.output_ids.size() * 4);
        d.doc->text_hash = h.hex();
        for (const RunLayer& rl : run_layer_list) {
            DocumentRouting::Layer l;
            l.layer = rl.layer;
            l.k = rl.k;
            d.doc->layers.push_back(std::move(l));
        }
        const LayerAxis use = resolve_layer_axis(pr.routing, cfg, axis, where);
        if (axis == LayerAxis::auto_detect && pr.routing.rows > 0 && cfg.n_moe_layers() != cfg.num_hidden_layers)
            axis = use;
        append_routing(pr.routing, cfg, use, d.doc->layers, where);
        // The rows cover prompt + output − 1 positions: every token but the last generated one.
        d.doc->token_ids = *prompt;
        d.doc->token_ids.insert(d.doc->token_ids.end(), pr.output_ids.begin(), pr.output_ids.end());
        d.doc->token_ids.resize(static_cast<size_t>(pr.routing.rows));
        return d;
    };
    auto report = [&](CaptureProgress& progress, const std::string& domain) {
        progress.documents_done = result.documents_imported;
        progress.tokens_done = result.tokens_imported;
        progress.domain = domain;
        progress.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        return !opt.progress || opt.progress(progress);
    };

    // First every line is read and checked, so a file with a bad line leaves the store as it
    // was; then the file is read again and stored.
    {
        CaptureProgress progress;
        LayerAxis axis = opt.layer_axis;
        Line line = std::move(first);
        int64_t index = 0;
        for (bool have = true; have; have = next_line(line)) {
            read_doc(line, index++, axis);
            if (!report(progress, "checking")) {
                result.stopped = true;
                result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
                return result;
            }
        }
        in.clear();
        in.seekg(0);
        line_no = 0;
        if (!in || !next_line(first)) throw_failure(responses_path, "cannot read the responses file again");
    }

    RoutingStore& store = open_store();
    const int64_t model_id = store.add_model(model_record);
    const int64_t corpus_id = store.add_corpus({stem, abs.string(), "saved " + result.engine + " responses", ""});
    RunSpec spec;
    spec.model_id = model_id;
    spec.corpus_id = corpus_id;
    spec.source = result.engine;
    if (first.obj.contains("server_version") && first.obj["server_version"].is_string())
        spec.engine_version = first.obj["server_version"].get<std::string>();
    spec.gate_weight_kind.reset();
    spec.has_entropy = false;
    spec.split = "import";
    spec.trace_key = "import|responses=" + abs.string() + "|domain=" + opt.domain + "|source=" + result.engine;
    spec.layers = run_layer_list;
    const RunResume resume = RunResume::start(store, spec, opt.new_run);
    if (resume.report_into(result)) return result;
    std::map<std::string, int64_t> domain_ids;

    TraceWriter writer(store, result.run_id, opt.writer);
    LayerAxis axis = opt.layer_axis;
    CaptureProgress progress;
    progress.run_id = result.run_id;
    Line line = std::move(first);
    int64_t index = 0;
    for (bool have = true; have; have = next_line(line)) {
        const std::string where = responses_path + ":" + std::to_string(line_no);
        LineDoc d = read_doc(line, index++, axis);
        auto dit = domain_ids.find(d.domain);
        if (dit == domain_ids.end()) dit = domain_ids.emplace(d.domain, store.add_domain(corpus_id, {d.domain, "", ""})).first;
        const int64_t domain_id = dit->second;
        if (resume.finished(domain_id, spec.split, d.doc->name, d.doc->text_hash, where, "imported")) {
            ++result.documents_skipped;
        } else {
            d.doc->domain_id = domain_id;
            d.doc->split = spec.split;
            result.tokens_imported += static_cast<int64_t>(d.doc->token_ids.size());
            writer.submit(std::move(d.doc));
            ++result.documents_imported;
        }
        if (!report(progress, d.domain)) {
            result.stopped = true;
            break;
        }
    }
    writer.finish();
    result.writer = writer.stats();
    if (axis != LayerAxis::auto_detect) result.layer_axis = layer_axis_name(axis);
    result.complete = !result.stopped;
    if (result.complete) store.finish_run(result.run_id, true);
    result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return result;
}

}  // namespace moe::analysis
