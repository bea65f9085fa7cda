// The chat panel: a multi-turn chat with the model (its chat template, or plain completion),
// the answer streaming into the transcript as it is generated, Stop, the sampling settings
// (temperature, top-p, max tokens, seed) and the ablation panel's current mask applied to
// each answer when "Apply the mask" is on. "Inspect routing" sends the last answer's tokens
// to the token routing inspector; a click on a token of a finished answer sends that answer's
// tokens with the clicked one marked. "Server" instead of "Local model" sends the chat to a
// SGLang / vLLM server (URL, engine, served model name); after each of its answers the
// routing the server returned is shown in the inspector (the mask is not applied there).
// Presentation only: generation and the requests are ui/chat_session.h's job.
#pragma once

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QTextBrowser>
#include <QWidget>
#include <functional>
#include <map>
#include <optional>

#include "engine/chat_template.h"
#include "engine/expert_mask.h"
#include "ui/chat_session.h"

namespace moe::ui {

class Workbench;

class ChatPanel : public QWidget {
    Q_OBJECT
public:
    explicit ChatPanel(Workbench* workbench, QWidget* parent = nullptr);

    ChatSession* session() const { return session_; }
    // The unmasked twin of each masked answer, shown beside it when "also without the mask" is on.
    ChatSession* twin() const { return twin_; }
    QString twinTranscript() const { return twin_view_->toPlainText(); }
    bool twinShown() const { return twin_view_->isVisibleTo(this); }
    void setCompare(bool on);
    QString transcript() const { return view_->toPlainText(); }
    QString statusText() const { return status_->text(); }
    void setMaxTokens(int n);
    void setTemperature(double t);
    // Where the current mask comes from (the ablation panel); called at every send.
    void setMaskSource(std::function<std::optional<ExpertMask>()> source) { mask_source_ = std::move(source); }
    void setApplyMask(bool on);
    // Chat with a server (engine "sglang" | "vllm") instead of the local model, or back.
    void setServer(const QString& url, const QString& engine, const QString& served_model);
    void setLocal();

    // The transcript position of an answer's generated token (`row`: its row in the answer's
    // routing); -1 when not shown. tokenRowAt: the reverse, for a transcript position.
    int transcriptPosition(int answer, int64_t row) const;
    std::optional<std::pair<int, int64_t>> tokenAt(int position) const;  // (answer, row)
    int answers() const { return answer_no_; }
    // Sends what a click at that transcript position would (false: no token there).
    bool inspectTokenAt(int position);
    // The transcript position of the character under a point of its viewport; -1: none.
    int characterAt(const QPoint& viewport_pos) const;
    QTextBrowser* transcriptView() const { return view_; }

signals:
    void inspectRequested(const moe::ui::TokenRouting& routing);
    void inspectTokenRequested(const moe::ui::TokenRouting& routing, qint64 row);

public slots:
    void send();
    void showMaskSpec(const QString& spec);  // the mask the next answer would use

private:
    void appendTurn(const QString& who, const QString& text, const QString& colour);
    void answerFinished(bool ok, const QString& summary);
    void showPieces(const std::vector<ThinkingSplitter::Piece>& pieces);
    void tagTokens(int answer, const TokenRouting& routing, const std::vector<int32_t>& generated);
    bool eventFilter(QObject* watched, QEvent* event) override;

    Workbench* workbench_;
    ChatSession* session_;
    // A thinking model's answer (R1) is split into its thinking, shown grey under a heading,
    // and the answer; set up per answer.
    std::optional<ThinkingSplitter> splitter_;
    bool next_opens_thinking_ = false;
    QString answer_label_;  // "Model", or "Model with the mask" when the answer runs under one
    int shown_ = -1;  // -1 nothing of this answer yet, 0 answer, 1 thinking
    int answer_no_ = 0;  // answers of this chat so far; the one being written
    bool answering_ = false;  // an answer started and has not finished (a refused send starts none)
    std::map<int, TokenRouting> answer_routing_;  // by answer, once finished
    std::function<std::optional<ExpertMask>()> mask_source_;
    QString mask_spec_;  // the ablation panel's, as last shown
    QTextBrowser* view_;
    ChatSession* twin_;
    QTextBrowser* twin_view_;
    QCheckBox* compare_;
    QLineEdit* input_;
    QPushButton* send_;
    QPushButton* stop_;
    QPushButton* clear_;
    QPushButton* inspect_;
    QComboBox* style_;
    QComboBox* backend_;
    QWidget* server_row_;
    QLineEdit* server_url_;
    QComboBox* server_engine_;
    QLineEdit* served_model_;
    QDoubleSpinBox* temperature_;
    QDoubleSpinBox* top_p_;
    QSpinBox* max_tokens_;
    QSpinBox* seed_;
    QCheckBox* apply_mask_;
    QLabel* mask_label_;
    QLabel* status_;
};

}  // namespace moe::ui
