// RoutingInspector; see routing_inspector.h.
#include "ui/routing_inspector.h"

#include <QFontDatabase>
#include <QGuiApplication>
#include <QGridLayout>
#include <QVBoxLayout>

#include "ui/routing_inspector_view.h"
#include "ui/widget_helpers.h"
#include "ui/workbench.h"

namespace moe::ui {

namespace {
QString q(const std::string& s) { return QString::fromStdString(s); }
}  // namespace

RoutingInspector::RoutingInspector(Workbench* workbench, QWidget* parent)
    : QWidget(parent), workbench_(workbench), documents_(new QComboBox(this)), expert_(new QSpinBox(this)),
      title_(new QLabel(this)), message_(new QLabel(this)), hover_(new QLabel(this)) {
    documents_->setObjectName("inspectorDocument");
    documents_->setMinimumContentsLength(8);
    documents_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    documents_->setToolTip(tr("A finished document of the selected run"));
    expert_->setObjectName("inspectorExpert");
    expert_->setRange(-1, 65535);
    expert_->setValue(-1);
    expert_->setSpecialValueText(tr("none"));
    expert_->setToolTip(tr("Highlight one expert across all tokens: orange where it is among the k selected "
                           "(brighter for a higher rank), grey elsewhere. None: cells take the hue of the rank-0 expert."));
    title_->setObjectName("inspectorTitle");
    title_->setWordWrap(true);
    message_->setObjectName("inspectorMessage");
    message_->setWordWrap(true);
    message_->hide();
    hover_->setObjectName("inspectorHover");
    hover_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    hover_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    hover_->setMinimumHeight(hover_->fontMetrics().height() * 2);
    hover_->setWordWrap(true);

    // Two short rows rather than one long one: the dock stays narrow beside the heatmap.
    auto* controls = new QGridLayout;
    controls->addWidget(new QLabel(tr("Document:"), this), 0, 0);
    controls->addWidget(documents_, 0, 1);
    controls->addWidget(new QLabel(tr("Highlight expert:"), this), 1, 0);
    controls->addWidget(expert_, 1, 1, Qt::AlignLeft);
    controls->setColumnStretch(1, 1);

    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addLayout(controls);
    layout->addWidget(title_);
    layout->addWidget(message_);
    if (ImGuiWidget::glAvailable()) {
        view_ = new RoutingInspectorView(this);
        view_->setObjectName("inspectorView");
        layout->addWidget(view_, 1);
        connect(view_, &RoutingInspectorView::cellHovered, this, &RoutingInspector::showHover);
        connect(expert_, &QSpinBox::valueChanged, view_, &RoutingInspectorView::setHighlightExpert);
    } else {
        auto* placeholder = new QLabel(tr("The token routing inspector draws with OpenGL, which this display "
                                          "(Qt platform \"%1\") does not offer. Run the workbench on a desktop "
                                          "or under xvfb-run to see it.")
                                           .arg(QGuiApplication::platformName()),
                                       this);
        placeholder->setObjectName("inspectorPlaceholder");
        placeholder->setWordWrap(true);
        placeholder->setAlignment(Qt::AlignCenter);
        layout->addWidget(placeholder, 1);
    }
    layout->addWidget(hover_);

    connect(documents_, &QComboBox::currentIndexChanged, this, &RoutingInspector::documentChosen);
    connect(workbench_, &Workbench::documentsReady, this, &RoutingInspector::showDocuments);
    connect(workbench_, &Workbench::tokenRoutingReady, this, [this](const TokenRouting& r) {
        if (r.run_id == run_id_ && r.doc_id == currentDocument()) showRouting(r);
    });
    connect(workbench_, &Workbench::tokenRoutingFailed, this, [this](const QString& e) { showMessage(e, true); });
    showMessage(tr("Select a run to inspect its tokens' routing."), false);
}

void RoutingInspector::showMessage(const QString& text, bool error) {
    message_->setStyleSheet(error ? "color: #b3261e" : "");
    message_->setText(text);
    message_->setVisible(!text.isEmpty());
}

int64_t RoutingInspector::currentDocument() const {
    return documents_->currentIndex() >= 0 ? documents_->currentData().toLongLong() : 0;
}

void RoutingInspector::selectDocument(int64_t doc_id) {
    const int i = documents_->findData(static_cast<qlonglong>(doc_id));
    if (i >= 0) documents_->setCurrentIndex(i);
}

void RoutingInspector::setRun(qint64 run_id) {
    if (run_id == run_id_ && documents_->count() > 0) {
        // The run may have grown (a live trace): read its list again, keep the document.
        workbench_->requestDocuments(run_id);
        return;
    }
    run_id_ = run_id;
    shown_ = {};  // another run: its first document replaces a chat answer
    {
        QSignalBlocker block(documents_);
        documents_->clear();
        documents_->setPlaceholderText({});
    }
    if (run_id) workbench_->requestDocuments(run_id);
}

void RoutingInspector::showDocuments(qint64 run_id) {
    if (run_id != run_id_) return;
    const int64_t keep = currentDocument();
    const bool external = showingExternal();  // a chat answer stays until a document is picked
    {
        QSignalBlocker block(documents_);
        documents_->clear();
        for (const auto& d : workbench_->documents())
            documents_->addItem(QString("%1 · %2 (%3 tokens)").arg(q(d.domain), q(d.name)).arg(d.n_tokens),
                                static_cast<qlonglong>(d.doc_id));
        const int i = documents_->findData(static_cast<qlonglong>(keep));
        documents_->setCurrentIndex(external ? -1 : i >= 0 ? i : (documents_->count() > 0 ? 0 : -1));
    }
    if (external) return;
    if (documents_->count() == 0) showMessage(tr("Run %1 has no finished document yet.").arg(run_id), false);
    else if (currentDocument() != keep) documentChosen();
}

bool RoutingInspector::showingExternal() const { return shown_.run_id == 0 && shown_.n_tokens() > 0; }

void RoutingInspector::documentChosen() {
    const int64_t doc = currentDocument();
    if (!run_id_ || !doc) return;
    showMessage(tr("Reading the document's routing…"), false);
    workbench_->requestTokenRouting(run_id_, doc);
}

void RoutingInspector::showRouting(const TokenRouting& routing) {
    shown_ = routing;
    showMessage({}, false);
    if (showingExternal()) {
        // Not a document of the run: the chooser names none, so that any document, the one it
        // named before too, can be picked to go back.
        QSignalBlocker block(documents_);
        documents_->setPlaceholderText(tr("a chat answer · pick a document"));
        documents_->setCurrentIndex(-1);
    }
    title_->setText(breakable(q(routing.title).toHtmlEscaped()) + (routing.has_gate_weights() ? QString() : tr(" — no gate weights")));
    int64_t max_e = routing.max_experts() - 1;
    expert_->setMaximum(static_cast<int>(std::max<int64_t>(max_e, 0)));
    hover_->clear();
    if (view_) view_->setRouting(routing);
}

void RoutingInspector::showToken(const TokenRouting& routing, qint64 row) {
    showRouting(routing);
    if (row < 0 || row >= routing.n_tokens()) return;
    if (view_) {
        view_->scrollToRow(std::max<qint64>(row - 3, 0));
        view_->setMarkedRow(row);
    }
    // Its k experts in each layer, rank order.
    QStringList layers;
    for (int64_t l = 0; l < routing.n_layers(); ++l) {
        QStringList experts;
        for (int64_t r = 0; r < routing.layer_k[static_cast<size_t>(l)]; ++r)
            experts << QString::number(routing.expert(row, l, r));
        layers << tr("L%1: %2").arg(routing.layers[static_cast<size_t>(l)]).arg(experts.join(' '));
    }
    hover_->setText(tr("token %1 %2 — %3")
                        .arg(row)
                        .arg(q("“" + routing.token_texts[static_cast<size_t>(row)] + "”"))
                        .arg(layers.join("  ·  ")));
}

void RoutingInspector::showHover(qint64 row, qint64 column) {
    if (row < 0 || !view_) {
        hover_->clear();
        return;
    }
    hover_->setText(q(view_->routing().describe_line(row, column)));
}

}  // namespace moe::ui
