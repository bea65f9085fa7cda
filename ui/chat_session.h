// The chat panel's conversation and its generation job: a multi-turn chat rendered with the
// model's chat template (engine/chat_template.h) or a plain completion, generated on a worker
// thread by engine/generator.h generate() with the sampling settings and an expert mask; the
// text streams back piece by piece as queued calls on the GUI thread, and Stop makes the
// streaming callback return false. The routing of the last answer (prompt and generated
// tokens) is kept for the token routing inspector. No widgets here.
//
// Or the answer comes from a SGLang / vLLM server (docs/capture.md, "Chat with a server"):
// the conversation goes to its OpenAI-compatible POST /v1/chat/completions (or
// /v1/completions for plain completion) with "stream": true through Qt Network, the
// server-sent events' text appended as it arrives; Stop aborts the request. After the
// answer, the conversation rendered with the model directory's chat template and tokenized
// here (prompt + answer) is sent once as token ids to the engine's native endpoint that
// returns routing (SGLang POST /generate with return_routed_experts, vLLM POST
// /v1/completions with max_tokens 1), decoded by analysis/capture_decode.h on a worker thread.
#pragma once

#include "ui/job.h"

#include <QByteArray>
#include <QElapsedTimer>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QObject>
#include <QPointer>
#include <QString>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "analysis/capture_decode.h"
#include "engine/chat_template.h"
#include "engine/expert_mask.h"
#include "engine/generator.h"
#include "ui/token_routing.h"

namespace moe::ui {

class Workbench;

// A SGLang or vLLM server that answers instead of the local model.
struct ChatServer {
    std::string url;  // http://host:port (a trailing "/" or "/v1" is ignored)
    analysis::CaptureEngine engine = analysis::CaptureEngine::sglang;
    std::string served_model;  // the "model" of the requests; needed by vLLM
    int timeout_ms = 600000;   // without a byte from the server
};

struct ChatSettings {
    bool use_template = true;  // false: plain completion of the user's text
    std::string system;        // system message ("" none)
    SamplingParams sampling;
    int64_t max_new_tokens = 256;
    std::optional<ChatServer> server;  // none: the local model
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
    // The last answer came from a server (its routing: the server's, re-run as a prompt).
    bool lastFromServer() const { return last_from_server_; }

public slots:
    // Sends a user turn; `mask` (may be null: none) is copied and applied to this answer.
    void send(const QString& text, const moe::ui::ChatSettings& settings, const moe::ExpertMask* mask);
    void stop();
    void clear();  // forgets the conversation (not while generating)

signals:
    void answerStarted();
    void textStreamed(const QString& piece);
    void answerFinished(bool ok, const QString& summary);
    void progress(const QString& status);  // a step of a server answer

private:
    void sendToServer(const ChatSettings& settings);
    void serverDataArrived();
    void serverStreamFinished();
    void requestServerRouting(std::vector<int32_t> ids, int64_t n_prompt);
    void finishServer(bool ok, const QString& summary);
    QString serverWhere() const;

    Workbench* workbench_;
    std::vector<ChatMessage> messages_;
    QString partial_;
    int pieces_ = 0;
    bool running_ = false;
    int jobs_ = 0;
    std::optional<GenerateResult> last_;
    std::optional<TokenRouting> routing_;
    // The worker's pieces wait here until the GUI thread takes them: at most one delivery is
    // queued at a time, and the answer grows on screen at most every kStreamIntervalMs, so a
    // fast generator costs the window one repaint per frame, not one per token (a repaint
    // per token, where the window is composed in software, took more CPU than the tokens).
    struct Control : JobControl<ChatSession> {
        QString pending;
        int pending_pieces = 0;
        bool queued = false;
    };
    static constexpr int kStreamIntervalMs = 33;
    std::shared_ptr<Control> control_;
    QElapsedTimer streamed_at_;  // when the answer last grew on screen
    // `now`: take what is pending even if the answer grew less than an interval ago.
    void takeStreamed(const std::shared_ptr<Control>& control, bool now = false);

    // The server answer in flight.
    bool last_from_server_ = false;
    QNetworkAccessManager* net_ = nullptr;
    QPointer<QNetworkReply> reply_;
    ChatServer server_;
    bool server_plain_ = false;
    bool server_stopped_ = false;
    QByteArray sse_buffer_;
    QString server_error_;
    std::string finish_reason_;
    QElapsedTimer server_clock_;
    int server_generation_ = 0;
};

}  // namespace moe::ui
