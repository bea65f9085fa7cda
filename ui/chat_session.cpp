// ChatSession; see chat_session.h.
#include "ui/chat_session.h"

#include <QCoreApplication>
#include <QDeadlineTimer>
#include <QMetaObject>

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
    if (control_) {
        std::lock_guard lock(control_->mutex);
        control_->stop = true;
        control_->target = nullptr;
    }
}

bool ChatSession::waitIdle(int timeout_ms) {
    QDeadlineTimer deadline(timeout_ms);
    while (jobs_ > 0 && !deadline.hasExpired()) QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
    return jobs_ == 0;
}

void ChatSession::clear() {
    if (running_) return;
    messages_.clear();
    partial_.clear();
    last_.reset();
    routing_.reset();
}

void ChatSession::stop() {
    if (running_ && control_) control_->stop = true;
}

void ChatSession::send(const QString& text, const ChatSettings& settings, const ExpertMask* mask) {
    QString problem;
    if (running_) problem = tr("an answer is still being generated: Stop it first");
    else if (!workbench_->hasModel()) problem = tr("open a model first");
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

    std::vector<ChatMessage> conversation = messages_;
    if (settings.use_template && !settings.system.empty() && conversation.empty())
        conversation.push_back({"system", settings.system});
    conversation.push_back({"user", text.toStdString()});
    messages_ = conversation;  // the user's turn is part of the chat from now on
    emit answerStarted();

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
                if (ChatSession* target = control->target)
                    QMetaObject::invokeMethod(
                        target,
                        [target, text] {
                            target->partial_ += text;
                            ++target->pieces_;
                            emit target->textStreamed(text);
                        },
                        Qt::QueuedConnection);
                return !control->stop.load();
            });
            std::vector<int32_t> ids = prompt;
            ids.insert(ids.end(), a.result.tokens.begin(), a.result.tokens.end());
            std::vector<std::string> texts;
            for (int32_t id : ids) texts.push_back(utf8_replace_invalid(tokenizer->token_text(id)));
            a.routing = token_routing_from_recorder(
                recorder, ids, texts,
                "chat answer: " + std::to_string(prompt.size()) + " prompt + " + std::to_string(a.result.tokens.size()) +
                    " generated tokens" + (mask_copy ? " · mask " + mask_copy->spec() : ""));
            return a;
        },
        [this](JobResult<Answer> r) {
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

}  // namespace moe::ui
