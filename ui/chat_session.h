// The chat panel's conversation and its generation job: a multi-turn chat rendered with the
// model's chat template (engine/chat_template.h) or a plain completion, generated on a worker
// thread by engine/generator.h generate() with the sampling settings and an expert mask; the
// text streams back piece by piece as queued calls on the GUI thread, and Stop makes the
// streaming callback return false. The routing of the last answer (prompt and generated
// tokens) is kept for the token routing inspector. No widgets here.
#pragma once

#include <QObject>
#include <QString>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "engine/chat_template.h"
#include "engine/expert_mask.h"
#include "engine/generator.h"
#include "ui/token_routing.h"

namespace moe::ui {

class Workbench;

struct ChatSettings {
    bool use_template = true;  // false: plain completion of the user's text
    std::string system;        // system message ("" none)
    SamplingParams sampling;
    int64_t max_new_tokens = 256;
};

class ChatSession : public QObject {
    Q_OBJECT
public:
    explicit ChatSession(Workbench* workbench, QObject* parent = nullptr);
    ~ChatSession() override;

    bool running() const { return running_; }
    const std::vector<ChatMessage>& messages() const { return messages_; }  // finished turns
    const QString& partialAnswer() const { return partial_; }
    int piecesReceived() const { return pieces_; }
    const std::optional<GenerateResult>& lastResult() const { return last_; }
    const std::optional<TokenRouting>& lastRouting() const { return routing_; }
    bool waitIdle(int timeout_ms);

public slots:
    // Sends a user turn; `mask` (may be null: none) is copied and applied to this answer.
    void send(const QString& text, const moe::ui::ChatSettings& settings, const moe::ExpertMask* mask);
    void stop();
    void clear();  // forgets the conversation (not while generating)

signals:
    void answerStarted();
    void textStreamed(const QString& piece);
    void answerFinished(bool ok, const QString& summary);

private:
    Workbench* workbench_;
    std::vector<ChatMessage> messages_;
    QString partial_;
    int pieces_ = 0;
    bool running_ = false;
    int jobs_ = 0;
    std::optional<GenerateResult> last_;
    std::optional<TokenRouting> routing_;
    struct Control {
        std::atomic<bool> stop{false};
        std::mutex mutex;
        ChatSession* target = nullptr;
    };
    std::shared_ptr<Control> control_;
};

}  // namespace moe::ui
