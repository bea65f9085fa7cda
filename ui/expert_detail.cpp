// ExpertDetail; see expert_detail.h.
#include "ui/expert_detail.h"

#include <qcustomplot.h>

#include <QHeaderView>
#include <QVBoxLayout>

#include "engine/error.h"

namespace moe::ui {

namespace {
QString q(const std::string& s) { return QString::fromStdString(s); }

QTableWidgetItem* cell(const QString& text, bool right = true) {
    auto* it = new QTableWidgetItem(text);
    it->setFlags(Qt::ItemIsSelectable | Qt::ItemIsEnabled);
    if (right) it->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return it;
}
}  // namespace

ExpertDetail load_expert_detail(analysis::RoutingStore& store, int64_t run_id, int64_t layer, int64_t expert) {
    ExpertDetail d{run_id, layer, expert, {}};
    for (const analysis::ExpertShare& s : analysis::expert_shares(store, run_id, layer))
        if (s.expert == expert) d.domains.push_back(s);
    if (d.domains.empty())
        throw_input_error("run " + std::to_string(run_id),
                          "has no expert " + std::to_string(expert) + " in layer " + std::to_string(layer));
    return d;
}

ExpertDetailView::ExpertDetailView(QWidget* parent)
    : QWidget(parent), title_(new QLabel(this)), chart_(new QCustomPlot(this)), table_(new QTableWidget(this)) {
    setObjectName("expertDetail");
    title_->setObjectName("expertDetailTitle");
    title_->setWordWrap(true);
    chart_->setObjectName("expertDetailChart");
    chart_->setMinimumSize(360, 220);
    chart_->yAxis->setLabel(tr("share of the layer's selections"));
    bars_ = new QCPBars(chart_->xAxis, chart_->yAxis);
    bars_->setWidth(0.6);
    bars_->setPen(Qt::NoPen);
    bars_->setBrush(QColor("#21918c"));  // viridis' middle, as the heatmap
    table_->setObjectName("expertDetailTable");
    table_->setColumnCount(6);
    table_->setHorizontalHeaderLabels({tr("Domain"), tr("Selected"), tr("Tokens"), tr("Share"), tr("Ratio to uniform"),
                                       tr("Mean gate weight")});
    table_->verticalHeader()->hide();
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(title_);
    layout->addWidget(chart_, 3);
    layout->addWidget(table_, 2);
}

void ExpertDetailView::showError(const QString& error) {
    title_->setStyleSheet("color: #b3261e");
    title_->setText(tr("Cannot show this expert: %1").arg(error));
}

void ExpertDetailView::showDetail(const ExpertDetail& d) {
    detail_ = d;
    title_->setStyleSheet(QString());
    const analysis::ExpertShare& first = d.domains.front();
    // Shares of a layer sum to 1: a uniform router gives every expert 1 / E of the selections.
    const double uniform = first.n_expert > 0 ? 1.0 / static_cast<double>(first.n_expert) : 0.0;
    title_->setText(tr("<b>Expert %1 of layer %2</b> — run %3 (%4) · the dashed line is the uniform share 1 / E = %5")
                        .arg(d.expert)
                        .arg(d.layer)
                        .arg(d.run_id)
                        .arg(q(first.model).toHtmlEscaped())
                        .arg(uniform, 0, 'g', 4));
    QVector<double> keys, values;
    auto ticks = QSharedPointer<QCPAxisTickerText>::create();
    table_->setRowCount(static_cast<int>(d.domains.size()));
    double hi = uniform;
    for (int i = 0; i < static_cast<int>(d.domains.size()); ++i) {
        const analysis::ExpertShare& s = d.domains[static_cast<size_t>(i)];
        keys << i;
        values << s.share;
        hi = std::max(hi, s.share);
        ticks->addTick(i, q(s.domain));
        table_->setItem(i, 0, cell(q(s.domain), false));
        table_->setItem(i, 1, cell(QString::number(s.count)));
        table_->setItem(i, 2, cell(QString::number(s.tokens)));
        table_->setItem(i, 3, cell(QString::number(s.share, 'f', 4)));
        table_->setItem(i, 4, cell(QString::number(s.ratio_to_uniform, 'f', 3)));
        table_->setItem(i, 5, cell(s.mean_gate_weight ? QString::number(*s.mean_gate_weight, 'f', 4) : tr("—")));
    }
    bars_->setData(keys, values);
    chart_->xAxis->setTicker(ticks);
    chart_->xAxis->setRange(-0.6, static_cast<double>(keys.size()) - 0.4);
    chart_->yAxis->setRange(0, std::max(hi * 1.15, 1e-6));
    // The uniform share as a dashed horizontal line.
    if (chart_->itemCount() == 0) new QCPItemStraightLine(chart_);
    auto* line = static_cast<QCPItemStraightLine*>(chart_->item(0));
    line->setPen(QPen(QColor("#555"), 1, Qt::DashLine));
    line->point1->setCoords(0, uniform);
    line->point2->setCoords(1, uniform);
    chart_->replot();
}

}  // namespace moe::ui
