// ChatPanel; see chat_panel.h.
#include "ui/chat_panel.h"

#include <QGridLayout>
#include <QHBoxLayout>
#include <QAbstractTextDocumentLayout>
#include <QMouseEvent>
#include <QScrollBar>
#include <QTextBlock>
#include <QTextCursor>
#include <QVBoxLayout>

#include "engine/error.h"
#include "engine/tokenizer.h"
#include "ui/widget_helpers.h"
#include "ui/workbench.h"

namespace moe::ui {

namespace {
// Character properties of the transcript: the answer a piece of text belongs to (1, 2, …),
// and, once the answer is finished, the routing row of the generated token it came from.
constexpr int kAnswerProperty = QTextFormat::UserProperty + 1;
constexpr int kTokenRowProperty = QTextFormat::UserProperty + 2;

// The format of the character at `position` (the one after the cursor there).
QTextCharFormat format_at(QTextDocument* doc, int position) {
    QTextCursor c(doc);
    c.setPosition(position);
    c.setPosition(position + 1, QTextCursor::KeepAnchor);
    return c.charFormat();
}
}  // namespace

ChatPanel::ChatPanel(Workbench* workbench, QWidget* parent)
    : QWidget(parent), workbench_(workbench), session_(new ChatSession(workbench, this)), view_(new QTextBrowser(this)),
      twin_(new ChatSession(workbench, this)), twin_view_(new QTextBrowser(this)),
      compare_(new QCheckBox(tr("Also without the mask"), this)),
      input_(new QLineEdit(this)), send_(new QPushButton(tr("Send"), this)), stop_(new QPushButton(tr("Stop"), this)),
      clear_(new QPushButton(tr("New chat"), this)), inspect_(new QPushButton(tr("Inspect routing"), this)),
      style_(new QComboBox(this)), backend_(new QComboBox(this)), server_row_(new QWidget(this)),
      server_url_(new QLineEdit(this)), server_engine_(new QComboBox(this)), served_model_(new QLineEdit(this)),
      temperature_(new QDoubleSpinBox(this)), top_p_(new QDoubleSpinBox(this)),
      max_tokens_(new QSpinBox(this)), seed_(new QSpinBox(this)), apply_mask_(new QCheckBox(tr("Apply the mask"), this)),
      mask_label_(new QLabel(this)), status_(new QLabel(this)) {
    view_->setObjectName("chatTranscript");
    twin_view_->setObjectName("chatTwinTranscript");
    twin_view_->setToolTip(tr("The same conversation without the mask"));
    twin_view_->hide();
    compare_->setObjectName("chatCompare");
    compare_->setToolTip(tr("With a mask: generate each answer a second time without it and show it beside"));
    view_->setOpenLinks(false);
    view_->setToolTip(tr("Click a token of an answer to see its routing in the inspector"));
    view_->viewport()->installEventFilter(this);
    view_->viewport()->setMouseTracking(true);
    input_->setObjectName("chatInput");
    input_->setPlaceholderText(tr("Message the model (Enter sends)"));
    send_->setObjectName("chatSend");
    stop_->setObjectName("chatStop");
    stop_->setEnabled(false);
    stop_->setToolTip(tr("Stop generating; the text so far stays"));
    clear_->setObjectName("chatClear");
    inspect_->setObjectName("chatInspect");
    inspect_->setEnabled(false);
    inspect_->setToolTip(tr("Show the last answer's tokens (prompt and generated) in the token routing inspector"));
    style_->setObjectName("chatStyle");
    style_->addItem(tr("Chat template"));
    style_->addItem(tr("Plain completion"));
    style_->setToolTip(tr("Chat: the conversation in the model's chat template. Plain: continue the text typed."));
    backend_->setObjectName("chatBackend");
    backend_->addItem(tr("Local model"));
    backend_->addItem(tr("Server"));
    backend_->setToolTip(tr("Server: a SGLang or vLLM server answers (OpenAI-compatible chat, streamed); its routing "
                            "is asked for after each answer (start it with --enable-return-routed-experts)"));
    server_url_->setObjectName("chatServerUrl");
    server_url_->setPlaceholderText(tr("http://gpu-node:30000"));
    server_engine_->setObjectName("chatServerEngine");
    server_engine_->addItem("sglang");
    server_engine_->addItem("vllm");
    served_model_->setObjectName("chatServedModel");
    served_model_->setPlaceholderText(tr("served model name"));
    served_model_->setToolTip(tr("The \"model\" of the requests (vLLM: an id of GET /v1/models; SGLang: optional)"));
    {
        auto* row = new QHBoxLayout(server_row_);
        row->setContentsMargins(0, 0, 0, 0);
        row->addWidget(server_url_, 2);
        row->addWidget(server_engine_);
        row->addWidget(served_model_, 1);
    }
    server_row_->setVisible(false);
    temperature_->setObjectName("chatTemperature");
    temperature_->setRange(0, 5);
    temperature_->setSingleStep(0.1);
    temperature_->setValue(0.7);
    temperature_->setToolTip(tr("0: greedy"));
    top_p_->setObjectName("chatTopP");
    top_p_->setRange(0.01, 1);
    top_p_->setSingleStep(0.05);
    top_p_->setValue(0.95);
    max_tokens_->setObjectName("chatMaxTokens");
    max_tokens_->setRange(1, 100000);
    max_tokens_->setValue(256);
    seed_->setObjectName("chatSeed");
    seed_->setRange(0, 1'000'000);
    apply_mask_->setObjectName("chatApplyMask");
    apply_mask_->setChecked(true);
    apply_mask_->setToolTip(tr("Generate with the ablation panel's mask (taken when a message is sent)"));
    mask_label_->setObjectName("chatMask");
    mask_label_->setWordWrap(true);
    status_->setObjectName("chatStatus");
    status_->setWordWrap(true);
    status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    showMaskSpec({});

    // Short rows: the dock stays narrow beside the heatmap.
    auto* settings = new QGridLayout;
    settings->addWidget(backend_, 0, 0, 1, 2);
    settings->addWidget(style_, 0, 2, 1, 2);
    settings->addWidget(server_row_, 3, 0, 1, 4);
    settings->addWidget(apply_mask_, 4, 0, 1, 4);
    settings->addWidget(compare_, 5, 0, 1, 4);
    settings->addWidget(new QLabel(tr("Temperature"), this), 1, 0);
    settings->addWidget(temperature_, 1, 1);
    settings->addWidget(new QLabel(tr("Top-p"), this), 1, 2);
    settings->addWidget(top_p_, 1, 3);
    settings->addWidget(new QLabel(tr("Max tokens"), this), 2, 0);
    settings->addWidget(max_tokens_, 2, 1);
    settings->addWidget(new QLabel(tr("Seed"), this), 2, 2);
    settings->addWidget(seed_, 2, 3);
    settings->setColumnStretch(1, 1);
    settings->setColumnStretch(3, 1);
    auto* input_row = new QHBoxLayout;
    input_row->addWidget(input_, 1);
    input_row->addWidget(send_);
    input_row->addWidget(stop_);
    auto* bottom_row = new QHBoxLayout;
    bottom_row->addWidget(status_, 1);
    bottom_row->addWidget(inspect_);
    bottom_row->addWidget(clear_);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addLayout(settings);
    layout->addWidget(mask_label_);
    auto* views = new QHBoxLayout;
    views->addWidget(view_, 1);
    views->addWidget(twin_view_, 1);
    layout->addLayout(views, 1);
    layout->addLayout(input_row);
    layout->addLayout(bottom_row);

    connect(backend_, &QComboBox::currentIndexChanged, this, [this](int i) {
        server_row_->setVisible(i == 1);
        apply_mask_->setEnabled(i == 0);
        compare_->setEnabled(i == 0);
        showMaskSpec(mask_spec_);
    });
    // A directory without weights can only chat through a server: the panel turns to it.
    auto server_if_no_weights = [this] {
        if (!workbench_->hasModel() && workbench_->hasModelConfig()) backend_->setCurrentIndex(1);
    };
    connect(workbench_, &Workbench::modelOpened, this, server_if_no_weights);
    server_if_no_weights();
    connect(session_, &ChatSession::progress, this, [this](const QString& s) { status_->setText(s); });
    connect(input_, &QLineEdit::returnPressed, this, &ChatPanel::send);
    connect(send_, &QPushButton::clicked, this, &ChatPanel::send);
    connect(stop_, &QPushButton::clicked, session_, &ChatSession::stop);
    connect(stop_, &QPushButton::clicked, twin_, &ChatSession::stop);
    connect(compare_, &QCheckBox::toggled, this, [this](bool on) { twin_view_->setVisible(on); });
    connect(twin_, &ChatSession::answerStarted, this, [this] {
        QTextCursor c(twin_view_->document());
        c.movePosition(QTextCursor::End);
        if (!twin_view_->document()->isEmpty()) c.insertBlock();
        c.insertHtml(QString("<b style=\"color:#1f6f3f\">%1</b> ").arg(tr("Without the mask:").toHtmlEscaped()));
        c.setCharFormat(QTextCharFormat());
    });
    connect(twin_, &ChatSession::textStreamed, this, [this](const QString& piece) {
        QTextCursor c(twin_view_->document());
        c.movePosition(QTextCursor::End);
        c.insertText(piece);
    });
    connect(clear_, &QPushButton::clicked, this, [this] {
        session_->clear();
        view_->clear();
        answer_routing_.clear();
        twin_->clear();
        twin_view_->clear();
        inspect_->setEnabled(false);
        status_->clear();
    });
    connect(inspect_, &QPushButton::clicked, this, [this] {
        if (session_->lastRouting()) emit inspectRequested(*session_->lastRouting());
    });
    connect(session_, &ChatSession::answerStarted, this, [this] {
        send_->setEnabled(false);
        stop_->setEnabled(true);
        clear_->setEnabled(false);
        status_->setStyleSheet(QString());
        status_->setText(tr("Generating…"));
        appendTurn(answer_label_, QString(), "#1f6f3f");
        ++answer_no_;
        answering_ = true;
        splitter_.emplace(next_opens_thinking_);
        shown_ = -1;
    });
    connect(session_, &ChatSession::textStreamed, this, [this](const QString& piece) {
        if (splitter_) showPieces(splitter_->push(piece.toStdString()));
    });
    connect(session_, &ChatSession::answerFinished, this, &ChatPanel::answerFinished);
}

void ChatPanel::setMaxTokens(int n) { max_tokens_->setValue(n); }
void ChatPanel::setTemperature(double t) { temperature_->setValue(t); }
void ChatPanel::setApplyMask(bool on) { apply_mask_->setChecked(on); }

void ChatPanel::setServer(const QString& url, const QString& engine, const QString& served_model) {
    server_url_->setText(url);
    server_engine_->setCurrentText(engine);
    served_model_->setText(served_model);
    backend_->setCurrentIndex(1);
}

void ChatPanel::setLocal() { backend_->setCurrentIndex(0); }

void ChatPanel::setCompare(bool on) { compare_->setChecked(on); }

void ChatPanel::showMaskSpec(const QString& spec) {
    mask_spec_ = spec;
    if (backend_->currentIndex() == 1)
        mask_label_->setText(spec.isEmpty() ? tr("Mask: none (the server runs the published model)")
                                            : tr("Mask: not applied — the server runs the published model"));
    else
        mask_label_->setText(spec.isEmpty() ? tr("Mask: none (the published model)")
                                            : tr("Mask: <b>%1</b> (from the ablation panel)").arg(breakable(spec.toHtmlEscaped())));
}

void ChatPanel::appendTurn(const QString& who, const QString& text, const QString& colour) {
    QTextCursor c(view_->document());
    c.movePosition(QTextCursor::End);
    if (!view_->document()->isEmpty()) c.insertBlock();
    c.insertHtml(QString("<b style=\"color:%1\">%2:</b> ").arg(colour, who.toHtmlEscaped()));
    QTextCharFormat plain;
    c.setCharFormat(plain);
    c.insertText(text);
}

void ChatPanel::send() {
    if (session_->running() || twin_->running()) {
        status_->setText(tr("Still generating: Stop first, or wait for the answer."));
        return;
    }
    const QString text = input_->text();
    ChatSettings s;
    s.use_template = style_->currentIndex() == 0;
    s.sampling.temperature = static_cast<float>(temperature_->value());
    s.sampling.top_p = static_cast<float>(top_p_->value());
    s.sampling.seed = static_cast<uint64_t>(seed_->value());
    s.max_new_tokens = max_tokens_->value();
    std::optional<ExpertMask> mask;
    if (backend_->currentIndex() == 1) {
        ChatServer server;
        server.url = server_url_->text().trimmed().toStdString();
        server.engine = server_engine_->currentIndex() == 1 ? analysis::CaptureEngine::vllm : analysis::CaptureEngine::sglang;
        server.served_model = served_model_->text().trimmed().toStdString();
        s.server = server;
    } else if (apply_mask_->isChecked() && mask_source_) {
        mask = mask_source_();
    }
    // R1's template opens the thinking section in the prompt: the stream starts inside it.
    next_opens_thinking_ = false;
    if (s.use_template && !s.server && workbench_->hasModelConfig()) {
        try {
            next_opens_thinking_ =
                chat_template_for(workbench_->modelSummary().dir, *workbench_->modelConfig()).opens_thinking();
        } catch (const Error&) {
            // a broken tokenizer_config.json: the session reports it when it renders the prompt
        }
    }
    if (!text.trimmed().isEmpty() && workbench_->hasModelConfig() && (workbench_->hasModel() || s.server) &&
        workbench_->tokenizer()) {
        appendTurn(tr("You"), text, "#1a4f8b");
        input_->clear();
    }
    // The answer under the mask says so (beside the twin's "Without the mask").
    answer_label_ = mask && !mask->empty() ? tr("Model with the mask") : tr("Model");
    session_->send(text, s, mask ? &*mask : nullptr);
    // The twin answers the same turn without the mask (its own conversation, kept in step).
    if (compare_->isChecked() && !s.server && mask && !mask->empty() && session_->running()) twin_->send(text, s, nullptr);
}

void ChatPanel::showPieces(const std::vector<ThinkingSplitter::Piece>& pieces) {
    QTextCursor c(view_->document());
    c.movePosition(QTextCursor::End);
    for (const auto& p : pieces) {
        const int kind = p.thinking ? 1 : 0;
        if (kind != shown_ && (p.thinking || shown_ == 1)) {
            // A heading where the thinking starts and where the answer follows it.
            if (shown_ != -1) c.insertBlock();
            QTextCharFormat head;
            head.setFontItalic(true);
            head.setForeground(QColor("#6b6b6b"));
            c.insertText(p.thinking ? tr("[thinking] ") : tr("[answer] "), head);
        }
        shown_ = kind;
        QTextCharFormat f;
        f.setProperty(kAnswerProperty, answer_no_);
        if (p.thinking) {
            f.setForeground(QColor("#6b6b6b"));
            f.setFontItalic(true);
        }
        c.insertText(QString::fromStdString(p.text), f);
    }
    view_->verticalScrollBar()->setValue(view_->verticalScrollBar()->maximum());
}

void ChatPanel::answerFinished(bool ok, const QString& summary) {
    // A send refused before it started (no model, an empty message) ends here too: the last
    // answer stays as it was tagged.
    const bool answered = answering_;
    answering_ = false;
    if (splitter_) showPieces(splitter_->finish());
    splitter_.reset();
    send_->setEnabled(true);
    stop_->setEnabled(false);
    clear_->setEnabled(true);
    inspect_->setEnabled(session_->lastRouting().has_value());
    if (answered && session_->lastRouting() && session_->lastResult()) {
        answer_routing_[answer_no_] = *session_->lastRouting();
        tagTokens(answer_no_, *session_->lastRouting(), session_->lastResult()->tokens);
    }
    status_->setStyleSheet(ok ? QString() : QString("color: #b3261e"));
    status_->setText(summary);
    // A server's answer: its routing goes to the inspector at once.
    if (ok && session_->lastFromServer() && session_->lastRouting()) emit inspectRequested(*session_->lastRouting());
}

// Finds each generated token's text in the answer as shown and marks those characters with the
// token's routing row. The answer shown is the generated text less what the engine or the
// thinking splitter held back (a stop string, the <think> markers): tokens whose bytes are not
// at the next place in it are passed over, looked for a few bytes on (text shown with a
// replacement character for a token that split a UTF-8 sequence), else left unmarked.
void ChatPanel::tagTokens(int answer, const TokenRouting& routing, const std::vector<int32_t>& generated) {
    const std::shared_ptr<const Tokenizer> tokenizer = workbench_->tokenizer();
    if (!tokenizer || generated.empty()) return;
    const int64_t first_row = routing.n_tokens() - static_cast<int64_t>(generated.size());
    if (first_row < 0) return;
    // The answer's characters in the transcript, in order: document positions and UTF-8 bytes.
    QTextDocument* doc = view_->document();
    std::vector<int> doc_pos;  // per UTF-16 unit of the shown answer
    QString shown;
    for (QTextBlock b = doc->begin(); b.isValid(); b = b.next()) {
        for (auto it = b.begin(); !it.atEnd(); ++it) {
            const QTextFragment f = it.fragment();
            if (!f.isValid() || f.charFormat().property(kAnswerProperty).toInt() != answer) continue;
            shown += f.text();
            for (int i = 0; i < f.length(); ++i) doc_pos.push_back(f.position() + i);
        }
    }
    if (shown.isEmpty()) return;
    std::vector<int> unit_of_byte;  // the UTF-16 unit each UTF-8 byte of `shown` belongs to
    std::string bytes;
    for (int i = 0; i < shown.size(); ++i) {
        const bool pair = shown[i].isHighSurrogate() && i + 1 < shown.size();
        const QByteArray u = QString(shown.constData() + i, pair ? 2 : 1).toUtf8();
        bytes.append(u.constData(), static_cast<size_t>(u.size()));
        unit_of_byte.insert(unit_of_byte.end(), static_cast<size_t>(u.size()), i);
        if (pair) ++i;
    }
    constexpr size_t kLookAhead = 8;
    size_t at = 0;
    QTextCursor c(doc);
    // One edit: the document lays the answer out again once, not after every token's mark (a
    // few hundred marks on a long answer took over 100 ms of the GUI thread).
    c.beginEditBlock();
    for (size_t t = 0; t < generated.size() && at < bytes.size(); ++t) {
        const std::string piece = tokenizer->token_text(generated[t]);
        if (piece.empty()) continue;
        const size_t found = bytes.find(piece, at);
        if (found == std::string::npos || found > at + kLookAhead) continue;
        const int u0 = unit_of_byte[found], u1 = unit_of_byte[found + piece.size() - 1];
        const int p0 = doc_pos[static_cast<size_t>(u0)];
        const int p1 = doc_pos[static_cast<size_t>(u1)] + ((shown[u1].isHighSurrogate()) ? 2 : 1);
        QTextCharFormat f;
        f.setProperty(kTokenRowProperty, static_cast<qlonglong>(first_row + static_cast<int64_t>(t)));
        c.setPosition(p0);
        c.setPosition(p1, QTextCursor::KeepAnchor);
        c.mergeCharFormat(f);
        at = found + piece.size();
    }
    c.endEditBlock();
}

std::optional<std::pair<int, int64_t>> ChatPanel::tokenAt(int position) const {
    if (position < 0 || position >= view_->document()->characterCount() - 1) return std::nullopt;
    const QTextCharFormat f = format_at(view_->document(), position);
    const int answer = f.property(kAnswerProperty).toInt();
    if (!answer || !f.hasProperty(kTokenRowProperty)) return std::nullopt;
    return std::make_pair(answer, f.property(kTokenRowProperty).toLongLong());
}

int ChatPanel::transcriptPosition(int answer, int64_t row) const {
    QTextDocument* doc = view_->document();
    for (QTextBlock b = doc->begin(); b.isValid(); b = b.next())
        for (auto it = b.begin(); !it.atEnd(); ++it) {
            const QTextCharFormat f = it.fragment().charFormat();
            if (f.property(kAnswerProperty).toInt() == answer && f.hasProperty(kTokenRowProperty) &&
                f.property(kTokenRowProperty).toLongLong() == row)
                return it.fragment().position();
        }
    return -1;
}

int ChatPanel::characterAt(const QPoint& viewport_pos) const {
    const QPoint doc_pos = viewport_pos + QPoint(view_->horizontalScrollBar()->value(), view_->verticalScrollBar()->value());
    return view_->document()->documentLayout()->hitTest(doc_pos, Qt::ExactHit);
}

bool ChatPanel::inspectTokenAt(int position) {
    const auto token = tokenAt(position);
    if (!token) return false;
    const auto r = answer_routing_.find(token->first);
    if (r == answer_routing_.end()) return false;
    emit inspectTokenRequested(r->second, token->second);
    return true;
}

// Clicks on the transcript: a token of a finished answer goes to the inspector; the pointer
// turns into a hand over such tokens.
bool ChatPanel::eventFilter(QObject* watched, QEvent* event) {
    if (watched == view_->viewport()) {
        if (event->type() == QEvent::MouseButtonRelease) {
            auto* m = static_cast<QMouseEvent*>(event);
            if (m->button() == Qt::LeftButton && !view_->textCursor().hasSelection())
                inspectTokenAt(characterAt(m->position().toPoint()));
        } else if (event->type() == QEvent::MouseMove) {
            auto* m = static_cast<QMouseEvent*>(event);
            const bool over = tokenAt(characterAt(m->position().toPoint())).has_value();
            view_->viewport()->setCursor(over ? Qt::PointingHandCursor : Qt::IBeamCursor);
        }
    }
    return QWidget::eventFilter(watched, event);
}

}  // namespace moe::ui
