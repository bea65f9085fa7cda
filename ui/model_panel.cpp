// ModelPanel; see model_panel.h.
#include "ui/model_panel.h"

#include <QFormLayout>
#include <QHBoxLayout>
#include <QStandardItemModel>
#include <QVBoxLayout>

#include "ui/model_summary.h"
#include "ui/workbench.h"

namespace moe::ui {

namespace {
const char* const kFields[][2] = {
    {"architecture", "Architecture"}, {"layers", "Layers"},         {"routed", "Routed experts"},
    {"shared", "Shared experts"},     {"topk", "Top-k"},            {"router", "Router"},
    {"attention", "Attention"},       {"total", "Parameters"},
    {"activated", "Activated"},       {"dtype", "Weights"},         {"backend", "Backend"},
    {"threads", "Threads"},           {"tokenizer", "Tokenizer"},
};

QString q(const std::string& s) { return QString::fromStdString(s); }

// "1–27" for consecutive layers, else a list.
QString layer_list(const std::vector<int64_t>& layers) {
    if (layers.empty()) return "none";
    bool consecutive = true;
    for (size_t i = 1; i < layers.size(); ++i) consecutive &= layers[i] == layers[i - 1] + 1;
    if (consecutive && layers.size() > 2) return QString("%1–%2").arg(layers.front()).arg(layers.back());
    QStringList parts;
    for (int64_t l : layers) parts << QString::number(l);
    return parts.join(", ");
}
}  // namespace

ModelPanel::ModelPanel(Workbench* workbench, QWidget* parent)
    : QWidget(parent), workbench_(workbench), path_(new QLabel(this)), status_(new QLabel(this)),
      open_(new QPushButton(tr("Open model…"), this)), backend_(new QComboBox(this)), fields_box_(new QWidget(this)) {
    path_->setObjectName("modelPath");
    path_->setWordWrap(true);
    path_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    path_->setText(tr("No model open"));
    status_->setObjectName("modelStatus");
    status_->setWordWrap(true);
    status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    status_->hide();
    open_->setObjectName("openModel");
    open_->setToolTip(tr("Open a Hugging Face model directory (config.json, *.safetensors, tokenizer.json) — Ctrl+O"));

    backend_->setObjectName("modelBackend");
    backend_->addItem(tr("CPU"), static_cast<int>(Backend::cpu));
    backend_->addItem(tr("CUDA GPU"), static_cast<int>(Backend::cuda));
    backend_->setToolTip(tr("Where the model runs; changing it opens the model again there"));
    if (!backend_available(Backend::cuda)) {
        // Greyed out, with the reason, rather than hidden: the researcher sees why.
        if (auto* m = qobject_cast<QStandardItemModel*>(backend_->model())) {
            m->item(1)->setEnabled(false);
            m->item(1)->setToolTip(tr("This build has no CUDA backend (the CUDA toolkit was not found when it was built)"));
        }
    }
    backend_->setCurrentIndex(workbench_->backend() == Backend::cuda ? 1 : 0);
    connect(backend_, &QComboBox::currentIndexChanged, this, &ModelPanel::backendChosen);

    auto* form = new QFormLayout(fields_box_);
    form->setContentsMargins(0, 0, 0, 0);
    form->setLabelAlignment(Qt::AlignRight);
    for (const auto& f : kFields) {
        auto* value = new QLabel(QStringLiteral("—"), fields_box_);
        value->setObjectName(QString("field_") + f[0]);
        value->setWordWrap(true);
        value->setTextInteractionFlags(Qt::TextSelectableByMouse);
        form->addRow(tr(f[1]) + ":", value);
        fields_.emplace_back(f[0], value);
    }
    fields_box_->setEnabled(false);

    auto* top = new QHBoxLayout;
    top->addWidget(path_, 1);
    top->addWidget(backend_);
    top->addWidget(open_);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addWidget(status_);
    layout->addWidget(fields_box_);
    // As tall as its fields, no taller: the dock below it gets the rest. When fitHeight makes it
    // taller, it paints its own background over the place the docks' separator was drawn.
    setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Maximum);
    setAutoFillBackground(true);

    connect(open_, &QPushButton::clicked, this, &ModelPanel::openRequested);
    connect(workbench_, &Workbench::modelLoadingStarted, this, [this](const QString& dir) {
        {
            const QSignalBlocker block(backend_);
            backend_->setCurrentIndex(workbench_->backend() == Backend::cuda ? 1 : 0);
        }
        path_->setText(dir);
        status_->setStyleSheet("color: palette(text)");
        status_->setText(tr("Loading…"));
        status_->show();
        fitHeight();
    });
    connect(workbench_, &Workbench::modelOpened, this, &ModelPanel::showModel);
    connect(workbench_, &Workbench::modelFailed, this, &ModelPanel::showError);
}

void ModelPanel::backendChosen(int index) {
    const auto b = static_cast<Backend>(backend_->itemData(index).toInt());
    if (b == workbench_->backend()) return;
    workbench_->setBackend(b);
    const std::string dir = workbench_->modelSummary().dir;
    const QString shown = path_->text();
    // The open model (or the one that failed to open) again, on the chosen backend.
    if (!dir.empty()) workbench_->openModel(QString::fromStdString(dir));
    else if (!shown.isEmpty() && shown != tr("No model open")) workbench_->openModel(shown);
}

QString ModelPanel::errorText() const { return status_->property("error").toString(); }

QString ModelPanel::fieldText(const QString& name) const {
    for (const auto& [n, label] : fields_)
        if (n == name) return label->text();
    return {};
}

void ModelPanel::setField(const QString& name, const QString& value) {
    for (auto& [n, label] : fields_)
        if (n == name) label->setText(value);
}

void ModelPanel::showModel() {
    const ModelSummary& s = workbench_->modelSummary();
    path_->setText(q(s.dir));
    status_->setProperty("error", QString());
    status_->hide();
    fields_box_->setEnabled(true);
    setField("architecture", QString("%1 (model_type \"%2\")").arg(q(s.architecture), q(s.model_type)));
    setField("layers", QString("%1: %2 dense, %3 MoE (%4)")
                           .arg(s.layers)
                           .arg(s.layers - static_cast<int64_t>(s.moe_layers.size()))
                           .arg(s.moe_layers.size())
                           .arg(layer_list(s.moe_layers)));
    setField("routed", QString("%1 per MoE layer (FFN width %2)").arg(s.n_routed_experts).arg(s.expert_ffn));
    setField("shared", QString::number(s.n_shared_experts));
    setField("topk", QString::number(s.n_expert_used));
    setField("router", q(s.router));
    setField("attention", QString("%1, KV cache %2 per token")
                              .arg(s.attention == "mla" ? tr("multi-head latent (MLA)") : tr("multi-head"),
                                   q(format_bytes(s.kv_cache_bytes_per_token))));
    setField("total", q(format_count(s.total_params)));
    setField("activated", q(format_count(s.activated_params)) + tr(" per token"));
    if (s.weights_present)
        setField("dtype", QString("%1, %2").arg(q(s.dtype), q(format_bytes(s.weight_bytes))));
    else
        setField("dtype", tr("not in this directory (config and tokenizer only): %1, %2 to run it — chat with a "
                             "server that runs it")
                              .arg(q(s.dtype), q(format_bytes(s.weight_bytes))));
    setField("backend", q(s.backend));
    setField("threads", QString::number(s.threads));
    if (s.tokenizer_problem.empty()) {
        setField("tokenizer", tr("tokenizer.json (%1 ids)").arg(s.vocab_size));
    } else {
        setField("tokenizer", tr("cannot trace text: %1").arg(q(s.tokenizer_problem)));
    }
    fitHeight();
}

// A published model's fields wrap over two or three lines at the dock's width (V3's router and
// weights); the panel is kept as tall as its wrapped text, so no line is cut off and the runs
// dock below gives up the height.
void ModelPanel::fitHeight() {
    // The labels' new texts have invalidated the form's layout, not yet the panel's cached size
    // of the form (that comes with a posted event).
    fields_box_->updateGeometry();
    const int need = heightForWidth(width());
    if (need > 0 && need != minimumHeight()) setMinimumHeight(need);
}

void ModelPanel::resizeEvent(QResizeEvent* event) {
    QWidget::resizeEvent(event);
    fitHeight();
}

void ModelPanel::showError(const QString& dir, const QString& error) {
    path_->setText(dir);
    status_->setProperty("error", error);
    status_->setStyleSheet("color: #b3261e");
    status_->setText(tr("Could not open this model:\n%1").arg(error));
    status_->show();
    // The panel keeps showing the previously opened model's fields, if any, greyed out.
    fields_box_->setEnabled(false);
    fitHeight();
}

}  // namespace moe::ui
