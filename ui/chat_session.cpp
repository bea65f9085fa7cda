// ChatSession; see chat_session.h.
#include "ui/chat_session.h"

#include <QCoreApplication>
#include <QDeadlineTimer>
#include <QMetaObject>
#include <QNetworkRequest>
#include <QTimer>
#include <QUrl>
#include <algorithm>
#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/model.h"
#include "engine/routing.h"
#include "engine/tokenizer.h"
#include "ui/job.h"
#include "ui/workbench.h"

namespace moe::ui {

namespace {
struct Answer {
    GenerateResult result;
    TokenRouting routing;
};
}  // namespace

ChatSession::ChatSession(Workbench* workbench, QObject* parent) : QObject(parent), workbench_(workbench) {}

ChatSession::~ChatSession() {
    if (control_) control_->detach();
}

bool ChatSession::waitIdle(int timeout_ms) { return wait_for_jobs(jobs_, timeout_ms); }

void ChatSession::clear() {
    if (running_) return;
    messages_.clear();
    partial_.clear();
    last_from_server_ = false;
    last_.reset();
    routing_.reset();
}

void ChatSession::stop() {
    if (running_ && control_) control_->stop = true;
    if (running_ && reply_) {
        server_stopped_ = true;
        reply_->abort();  // finished() follows, with OperationCanceledError
    }
}

void ChatSession::takeStreamed(const std::shared_ptr<Control>& control, bool now) {
    if (!now && control == control_ && streamed_at_.isValid() && streamed_at_.elapsed() < kStreamIntervalMs) {
        // control->queued stays set: the worker queues no other delivery meanwhile.
        QTimer::singleShot(kStreamIntervalMs - static_cast<int>(streamed_at_.elapsed()), this,
                           [this, control] { takeStreamed(control); });
        return;
    }
    QString text;
    int pieces = 0;
    {
        std::lock_guard lock(control->mutex);
        text.swap(control->pending);
        std::swap(pieces, control->pending_pieces);
        control->queued = false;
    }
    if (control != control_ || text.isEmpty()) return;  // an earlier answer's, or nothing new
    partial_ += text;
    pieces_ += pieces;
    streamed_at_.start();
    emit textStreamed(text);
}

void ChatSession::send(const QString& text, const ChatSettings& settings, const ExpertMask* mask) {
    QString problem;
    if (running_) problem = tr("an answer is still being generated: Stop it first");
    else if (!workbench_->hasModelConfig()) problem = tr("open a model first");
    else if (!settings.server && !workbench_->hasModel())
        problem = tr("this model directory has no weights: chat with a server that runs it instead");
    else if (!workbench_->tokenizer()) problem = tr("this model has no usable tokenizer: it cannot chat");
    else if (text.trimmed().isEmpty()) problem = tr("type a message first");
    if (!problem.isEmpty()) {
        emit answerFinished(false, problem);
        return;
    }
    running_ = true;
    ++jobs_;
    pieces_ = 0;
    partial_.clear();
    control_ = std::make_shared<Control>();
    control_->target = this;
    streamed_at_.invalidate();  // the answer's first piece shows at once

    std::vector<ChatMessage> conversation = messages_;
    if (settings.use_template && !settings.system.empty() && conversation.empty())
        conversation.push_back({"system", settings.system});
    conversation.push_back({"user", text.toStdString()});
    messages_ = conversation;  // the user's turn is part of the chat from now on
    emit answerStarted();
    if (settings.server) {
        sendToServer(settings);
        return;
    }
    last_from_server_ = false;

    auto model = workbench_->model();
    auto tokenizer = workbench_->tokenizer();
    auto control = control_;
    const std::string dir = workbench_->modelSummary().dir;
    const std::optional<ExpertMask> mask_copy = mask && !mask->empty() ? std::optional<ExpertMask>(*mask) : std::nullopt;
    run_job<Answer>(
        this,
        [=] {
            std::vector<int32_t> prompt;
            GenerateParams gp;
            gp.sampling = settings.sampling;
            gp.max_new_tokens = settings.max_new_tokens;
            if (settings.use_template) {
                const ChatTemplate tmpl = chat_template_for(dir, model->config());
                prompt = tokenizer->encode(render_chat(tmpl, conversation, true), /*add_special=*/false);
                if (auto eos = tokenizer->token_id(tmpl.eos)) gp.eos_ids.push_back(*eos);
            } else {
                prompt = tokenizer->encode(conversation.back().content);
            }
            if (mask_copy) gp.mask = &*mask_copy;
            RoutingRecorder recorder;
            gp.observer = &recorder;
            Answer a;
            a.result = generate(*model, tokenizer.get(), prompt, gp, [control](std::string_view piece) {
                const QString text = QString::fromUtf8(piece.data(), static_cast<qsizetype>(piece.size()));
                std::lock_guard lock(control->mutex);
                control->pending += text;
                ++control->pending_pieces;
                if (ChatSession* target = control->target; target && !control->queued) {
                    control->queued = true;
                    QMetaObject::invokeMethod(target, [target, control] { target->takeStreamed(control); }, Qt::QueuedConnection);
                }
                return !control->stop.load();
            });
            std::vector<int32_t> ids = prompt;
            ids.insert(ids.end(), a.result.tokens.begin(), a.result.tokens.end());
            std::vector<std::string> texts;
            for (int32_t id : ids) texts.push_back(utf8_escape_invalid(tokenizer->token_text(id)));
            a.routing = token_routing_from_recorder(
                recorder, ids, texts,
                "chat answer: " + std::to_string(prompt.size()) + " prompt + " + std::to_string(a.result.tokens.size()) +
                    " generated tokens" + (mask_copy ? " · mask " + mask_copy->spec() : ""));
            return a;
        },
        [this, control](JobResult<Answer> r) {
            takeStreamed(control, /*now=*/true);  // the last pieces, before the answer ends
            --jobs_;
            running_ = false;
            if (!r.ok()) {
                emit workbench_->logMessage(2, tr("chat: ") + r.error);
                emit answerFinished(false, r.error);
                return;
            }
            last_ = r.value->result;
            routing_ = std::move(r.value->routing);
            // The answer as streamed (the pieces arrived before this, in order).
            messages_.push_back({"assistant", last_->text});
            const GenerateResult& g = *last_;
            const double rate = g.decode_seconds > 0 ? static_cast<double>(g.tokens.size()) / g.decode_seconds : 0.0;
            emit answerFinished(true, tr("%1 tokens (%2), %3 prompt tokens, %4 tokens/s")
                                          .arg(g.tokens.size())
                                          .arg(QString::fromStdString(g.stop_reason))
                                          .arg(g.prompt_tokens)
                                          .arg(rate, 0, 'f', 1));
        });
}

// ---- A server's answer -------------------------------------------------------------------

namespace {

// "http://host:port/" or ".../v1" -> "http://host:port".
QString server_base(const std::string& url) {
    QString u = QString::fromStdString(url).trimmed();
    while (u.endsWith('/')) u.chop(1);
    if (u.endsWith("/v1")) u.chop(3);
    return u;
}

QNetworkRequest json_request(const QString& url, int timeout_ms) {
    QNetworkRequest req{QUrl(url)};
    req.setHeader(QNetworkRequest::ContentTypeHeader, QStringLiteral("application/json"));
    req.setTransferTimeout(timeout_ms);
    return req;
}

// The message of an error body ({"error": {"message"}}, {"message"}, {"detail"}), else the body.
QString server_message(const QByteArray& body) {
    const auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
    if (j.is_object()) {
        for (const auto* obj : {&j, j.contains("error") ? &j["error"] : nullptr}) {
            if (!obj || !obj->is_object()) continue;
            for (const char* key : {"message", "detail"})
                if (obj->contains(key) && (*obj)[key].is_string()) return QString::fromStdString((*obj)[key].get<std::string>());
        }
        if (j.contains("error") && j["error"].is_string()) return QString::fromStdString(j["error"].get<std::string>());
    }
    return QString::fromUtf8(body.left(300)).trimmed();
}

}  // namespace

QString ChatSession::serverWhere() const {
    return QStringLiteral("%1 server %2")
        .arg(QString::fromUtf8(analysis::capture_engine_name(server_.engine)), server_base(server_.url));
}

void ChatSession::sendToServer(const ChatSettings& settings) {
    server_ = *settings.server;
    server_plain_ = !settings.use_template;
    server_stopped_ = false;
    server_error_.clear();
    finish_reason_.clear();
    sse_buffer_.clear();
    last_from_server_ = true;
    last_.reset();
    routing_.reset();
    const int generation = ++server_generation_;
    const QString base = server_base(server_.url);
    const QUrl url(base);
    if (base.isEmpty() || !url.isValid() || (url.scheme() != "http" && url.scheme() != "https")) {
        finishServer(false, tr("the server URL must be http://host:port (got \"%1\")").arg(base));
        return;
    }
    if (server_.engine == analysis::CaptureEngine::vllm && server_.served_model.empty()) {
        finishServer(false, tr("vLLM needs the served model name (the id GET /v1/models lists)"));
        return;
    }
    nlohmann::json body;
    body["model"] = server_.served_model.empty() ? std::string("default") : server_.served_model;
    body["stream"] = true;
    body["max_tokens"] = settings.max_new_tokens;
    body["temperature"] = settings.sampling.temperature;
    body["top_p"] = settings.sampling.top_p;
    body["seed"] = settings.sampling.seed;
    QString path;
    if (server_plain_) {
        path = "/v1/completions";
        body["prompt"] = messages_.back().content;
    } else {
        path = "/v1/chat/completions";
        body["messages"] = nlohmann::json::array();
        for (const ChatMessage& m : messages_) body["messages"].push_back({{"role", m.role}, {"content", m.content}});
    }
    if (!net_) net_ = new QNetworkAccessManager(this);
    QNetworkRequest req = json_request(base + path, server_.timeout_ms);
    req.setRawHeader("Accept", "text/event-stream");
    server_clock_.start();
    emit progress(tr("Waiting for %1…").arg(serverWhere()));
    reply_ = net_->post(req, QByteArray::fromStdString(body.dump()));
    connect(reply_, &QNetworkReply::readyRead, this, [this, generation] {
        if (generation == server_generation_) serverDataArrived();
    });
    connect(reply_, &QNetworkReply::finished, this, [this, generation] {
        if (generation == server_generation_) serverStreamFinished();
    });
}

void ChatSession::serverDataArrived() {
    if (!reply_) return;
    const int status = reply_->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    if (status != 200) return;  // an error body: read whole when finished
    sse_buffer_ += reply_->readAll();
    // Server-sent events: "data: {...}" lines; "data: [DONE]" ends the stream.
    qsizetype nl;
    while ((nl = sse_buffer_.indexOf('\n')) >= 0) {
        QByteArray line = sse_buffer_.left(nl).trimmed();
        sse_buffer_.remove(0, nl + 1);
        if (!line.startsWith("data:")) continue;
        line = line.mid(5).trimmed();
        if (line == "[DONE]") continue;
        const auto j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
        if (!j.is_object()) continue;
        if (j.contains("error")) {
            server_error_ = server_message(line);
            continue;
        }
        if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) continue;
        const auto& c = j["choices"][0];
        std::string piece;
        if (c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content") &&
            c["delta"]["content"].is_string())
            piece = c["delta"]["content"].get<std::string>();
        else if (c.contains("text") && c["text"].is_string())
            piece = c["text"].get<std::string>();
        if (c.contains("finish_reason") && c["finish_reason"].is_string())
            finish_reason_ = c["finish_reason"].get<std::string>();
        if (piece.empty()) continue;
        bool first = false;
        {
            std::lock_guard lock(control_->mutex);
            first = pieces_ == 0 && control_->pending_pieces == 0;
            control_->pending += QString::fromStdString(piece);
            ++control_->pending_pieces;
        }
        if (first) emit progress(tr("Streaming from %1…").arg(serverWhere()));
    }
    // Shown as a local answer's pieces are: at most every kStreamIntervalMs.
    bool take = false;
    {
        std::lock_guard lock(control_->mutex);
        take = !control_->queued && !control_->pending.isEmpty();
        if (take) control_->queued = true;
    }
    if (take) takeStreamed(control_);
}

void ChatSession::serverStreamFinished() {
    QNetworkReply* reply = reply_;
    reply_ = nullptr;
    if (!reply) return;
    reply->deleteLater();
    const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    if (!server_stopped_ && status == 200) serverDataArrived();  // the rest, if any
    takeStreamed(control_, /*now=*/true);
    const double seconds = static_cast<double>(server_clock_.elapsed()) / 1000.0;
    GenerateResult g;
    g.text = partial_.toStdString();
    g.decode_seconds = seconds;
    if (server_stopped_) {
        g.stop_reason = "cancelled";
        last_ = g;
        messages_.push_back({"assistant", g.text});
        finishServer(true, tr("stopped after %1 pieces from %2 (a stopped answer gets no routing)")
                               .arg(pieces_)
                               .arg(serverWhere()));
        return;
    }
    if (reply->error() != QNetworkReply::NoError || status != 200 || !server_error_.isEmpty()) {
        QString problem = server_error_;
        if (problem.isEmpty() && status != 200 && status != 0) {
            const QByteArray body = reply->readAll();
            problem = QStringLiteral("HTTP %1: %2").arg(status).arg(server_message(body));
        }
        if (problem.isEmpty()) problem = reply->errorString();
        if (reply->error() == QNetworkReply::OperationCanceledError || reply->error() == QNetworkReply::TimeoutError)
            problem = tr("no answer within %1 s").arg(server_.timeout_ms / 1000);
        if (status == 404)
            problem += tr(" (is this an OpenAI-compatible server at %1?)").arg(reply->url().toString());
        finishServer(false, serverWhere() + ": " + problem);
        return;
    }
    g.stop_reason = finish_reason_ == "stop" ? "eos" : finish_reason_ == "length" ? "max_new_tokens" : finish_reason_;
    last_ = g;
    messages_.push_back({"assistant", g.text});
    emit progress(tr("Answer complete (%1 pieces); asking %2 for its routing…").arg(pieces_).arg(serverWhere()));

    // The conversation as token ids: the prompt in the model directory's chat template (or
    // the plain text with BOS) and the answer, tokenized on a worker thread.
    auto config = workbench_->modelConfig();
    auto tokenizer = workbench_->tokenizer();
    const std::string dir = workbench_->modelSummary().dir;
    std::vector<ChatMessage> prompt_turns(messages_.begin(), messages_.end() - 1);
    const bool plain = server_plain_;
    const std::string answer = g.text;
    const int generation = server_generation_;
    struct Ids {
        std::vector<int32_t> ids;
        int64_t n_prompt = 0;
    };
    run_job<Ids>(
        this,
        [=] {
            Ids out;
            if (plain) {
                out.ids = tokenizer->encode(prompt_turns.back().content);
            } else {
                const ChatTemplate tmpl = chat_template_for(dir, *config);
                out.ids = tokenizer->encode(render_chat(tmpl, prompt_turns, true), /*add_special=*/false);
            }
            out.n_prompt = static_cast<int64_t>(out.ids.size());
            const std::vector<int32_t> a = tokenizer->encode(answer, /*add_special=*/false);
            out.ids.insert(out.ids.end(), a.begin(), a.end());
            return out;
        },
        [this, generation](JobResult<Ids> r) {
            if (generation != server_generation_) return;
            if (!r.ok()) {
                finishServer(false, tr("the answer is complete, but tokenizing the conversation failed: ") + r.error);
                return;
            }
            if (server_stopped_) {
                finishServer(true, tr("stopped before the routing was asked for"));
                return;
            }
            requestServerRouting(std::move(r.value->ids), r.value->n_prompt);
        });
}

void ChatSession::requestServerRouting(std::vector<int32_t> ids, int64_t n_prompt) {
    const QString base = server_base(server_.url);
    nlohmann::json body;
    QString path;
    if (server_.engine == analysis::CaptureEngine::sglang) {
        path = "/generate";
        body = {{"input_ids", ids},
                {"sampling_params", {{"max_new_tokens", 1}, {"temperature", 0}}},
                {"return_routed_experts", true}};
    } else {
        path = "/v1/completions";
        body = {{"model", server_.served_model}, {"prompt", ids}, {"max_tokens", 1}, {"temperature", 0},
                {"return_token_ids", true}};
    }
    const int generation = server_generation_;
    reply_ = net_->post(json_request(base + path, server_.timeout_ms), QByteArray::fromStdString(body.dump()));
    connect(reply_, &QNetworkReply::finished, this, [this, generation, ids = std::move(ids), n_prompt, path] {
        if (generation != server_generation_) return;
        QNetworkReply* reply = reply_;
        reply_ = nullptr;
        if (!reply) return;
        reply->deleteLater();
        const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
        const QByteArray body = reply->readAll();
        if (server_stopped_) {
            finishServer(true, tr("stopped while the routing was asked for: the answer stays, without routing"));
            return;
        }
        if (reply->error() != QNetworkReply::NoError && status == 0) {
            finishServer(false, tr("the answer is complete, but the routing request (POST %1) failed: %2")
                                    .arg(path, reply->errorString()));
            return;
        }
        if (status != 200) {
            finishServer(false, tr("the answer is complete, but the routing request (POST %1) failed: HTTP %2: %3")
                                    .arg(path)
                                    .arg(status)
                                    .arg(server_message(body)));
            return;
        }
        // Decoded and checked on a worker thread (analysis/capture_decode.h).
        auto config = workbench_->modelConfig();
        auto tokenizer = workbench_->tokenizer();
        const analysis::CaptureEngine engine = server_.engine;
        const std::string where = (serverWhere() + ", chat routing").toStdString();
        const std::string title = (serverWhere() + ": ").toStdString() + std::to_string(n_prompt) + " prompt + " +
                                  std::to_string(static_cast<int64_t>(ids.size()) - n_prompt) +
                                  " answer tokens (tokenized here, re-run as one prompt)";
        const std::string text = body.toStdString();
        run_job<TokenRouting>(
            this,
            [=] {
                const ModelConfig& cfg = *config;
                const auto T = static_cast<int64_t>(ids.size());
                analysis::ParsedResponse pr = analysis::parse_engine_response(engine, text, T, cfg, where);
                const analysis::LayerAxis axis =
                    analysis::resolve_layer_axis(pr.routing, cfg, analysis::LayerAxis::auto_detect, where);
                std::vector<analysis::DocumentRouting::Layer> layers;
                for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
                    if (cfg.is_moe_layer(l)) {
                        analysis::DocumentRouting::Layer dl;
                        dl.layer = l;
                        dl.k = cfg.num_experts_per_tok;
                        layers.push_back(std::move(dl));
                    }
                analysis::append_routing(pr.routing, cfg, axis, layers, where);
                if (pr.routing.rows < T)
                    throw_input_error(where, "the routing has " + std::to_string(pr.routing.rows) + " rows for " +
                                                 std::to_string(T) + " tokens");
                TokenRouting out;
                out.title = title;
                out.token_ids = ids;
                for (int32_t id : ids) out.token_texts.push_back(utf8_escape_invalid(tokenizer->token_text(id)));
                for (const auto& dl : layers) {
                    out.layers.push_back(dl.layer);
                    out.layer_k.push_back(dl.k);
                    out.n_experts.push_back(cfg.n_routed_experts);
                    out.k = std::max(out.k, dl.k);
                }
                const int64_t L = out.n_layers(), K = out.k;
                out.experts.assign(static_cast<size_t>(T * L * K), -1);
                for (int64_t li = 0; li < L; ++li) {
                    const auto& dl = layers[static_cast<size_t>(li)];
                    for (int64_t t = 0; t < T; ++t)
                        for (int64_t r = 0; r < dl.k; ++r)
                            out.experts[out.index(t, li, r)] = dl.experts[static_cast<size_t>(t * dl.k + r)];
                }
                return out;
            },
            [this, generation, n_prompt](JobResult<TokenRouting> r) {
                if (generation != server_generation_) return;
                if (!r.ok()) {
                    finishServer(false, tr("the answer is complete, but the server's routing could not be used: ") + r.error);
                    return;
                }
                routing_ = std::move(*r.value);
                if (last_) {
                    last_->prompt_tokens = n_prompt;
                    last_->tokens.assign(routing_->token_ids.begin() + n_prompt, routing_->token_ids.end());
                }
                finishServer(true, tr("%1 pieces (%2) from %3 in %4 s; routing of %5 tokens from the server")
                                       .arg(pieces_)
                                       .arg(QString::fromStdString(last_ ? last_->stop_reason : std::string()))
                                       .arg(serverWhere())
                                       .arg(last_ ? last_->decode_seconds : 0.0, 0, 'f', 1)
                                       .arg(routing_->n_tokens()));
            });
    });
}

void ChatSession::finishServer(bool ok, const QString& summary) {
    --jobs_;
    running_ = false;
    if (!ok) emit workbench_->logMessage(2, tr("chat: ") + summary);
    emit answerFinished(ok, summary);
}

}  // namespace moe::ui
