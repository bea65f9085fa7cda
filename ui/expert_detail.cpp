// ExpertDetail; see expert_detail.h.
#include "ui/expert_detail.h"

#include <qcustomplot.h>

#include <QFileDialog>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QPushButton>
#include <QSignalBlocker>
#include <QTabWidget>
#include <QVBoxLayout>
#include <algorithm>

#include "engine/error.h"
#include "ui/plot_export.h"
#include "ui/widget_helpers.h"

namespace moe::ui {

namespace {
QString q(const std::string& s) { return QString::fromStdString(s); }
}  // namespace

ExpertDetail load_expert_detail(analysis::RoutingStore& store, int64_t run_id, int64_t layer, int64_t expert,
                                int64_t min_count) {
    ExpertDetail d;
    d.run_id = run_id;
    d.layer = layer;
    d.expert = expert;
    d.min_count = min_count;
    for (const analysis::ExpertShare& s : analysis::expert_shares(store, run_id, layer))
        if (s.expert == expert) d.domains.push_back(s);
    if (d.domains.empty())
        throw_input_error("run " + std::to_string(run_id),
                          "has no expert " + std::to_string(expert) + " in layer " + std::to_string(layer));
    for (analysis::ExpertVocabulary& v : analysis::vocabulary_specialisation(store, run_id, layer, std::nullopt, kDetailTopTokens, min_count))
        if (v.expert == expert) {
            d.selections = v.selections;
            d.top_tokens = std::move(v.top);
        }
    for (const analysis::Coactivation& c : analysis::coactivation(store, run_id, layer)) {
        if (c.domain != analysis::kAllDomains || expert >= c.n_expert) continue;
        const int64_t mine = c.selected[static_cast<size_t>(expert)];
        for (int64_t e = 0; e < c.n_expert; ++e) {
            if (e == expert || c.pair(expert, e) == 0) continue;
            d.coactivated.push_back({e, c.pair(expert, e), mine > 0 ? static_cast<double>(c.pair(expert, e)) / static_cast<double>(mine) : 0.0,
                                     c.pair_lift(expert, e)});
        }
    }
    std::sort(d.coactivated.begin(), d.coactivated.end(), [](const CoactivatedExpert& a, const CoactivatedExpert& b) {
        return a.together != b.together ? a.together > b.together : a.expert < b.expert;
    });
    if (d.coactivated.size() > kDetailCoactivated) d.coactivated.resize(kDetailCoactivated);
    return d;
}

ExpertDetailView::ExpertDetailView(QWidget* parent)
    : QWidget(parent),
      title_(new QLabel(this)),
      chart_(new QCustomPlot(this)),
      table_(new QTableWidget(this)),
      tokens_(new QTableWidget(this)),
      min_count_(new QSpinBox(this)),
      tokens_note_(new QLabel(this)),
      coactivated_(new QTableWidget(this)) {
    setObjectName("expertDetail");
    title_->setObjectName("expertDetailTitle");
    title_->setWordWrap(true);
    chart_->setObjectName("expertDetailChart");
    chart_->setMinimumSize(360, 220);
    chart_->yAxis->setLabel(tr("share of the layer's selections"));
    bars_ = add_category_bars(chart_, QColor("#21918c"));  // viridis' middle, as the heatmap
    table_->setObjectName("expertDetailTable");
    table_->setColumnCount(6);
    table_->setHorizontalHeaderLabels({tr("Domain"), tr("Selected"), tr("Tokens"), tr("Share"), tr("Ratio to uniform"),
                                       tr("Mean gate weight")});
    tokens_->setObjectName("expertDetailTokens");
    tokens_->setColumnCount(5);
    tokens_->setHorizontalHeaderLabels({tr("Token"), tr("Routed here"), tr("Occurrences"), tr("P(token | expert)"), tr("Enrichment")});
    tokens_->horizontalHeaderItem(4)->setToolTip(tr("P(token | expert) / P(token): how much more often the token comes here than its frequency in the run"));
    coactivated_->setObjectName("expertDetailCoactivated");
    coactivated_->setColumnCount(4);
    coactivated_->setHorizontalHeaderLabels({tr("Expert"), tr("Tokens together"), tr("P(with | this)"), tr("Lift")});
    coactivated_->horizontalHeaderItem(3)->setToolTip(tr("P(both) / (P(this) P(other)): 1 when they are chosen independently"));
    for (QTableWidget* t : {table_, tokens_, coactivated_}) {
        t->verticalHeader()->hide();
        t->setEditTriggers(QAbstractItemView::NoEditTriggers);
        t->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    }
    auto* tabs = new QTabWidget(this);
    tabs->setObjectName("expertDetailTabs");
    tabs->addTab(table_, tr("By domain"));
    // The minimum count of the top tokens, the same as `moewb stats --vocab-min-count`.
    min_count_->setObjectName("expertDetailMinCount");
    min_count_->setRange(1, 1000000);
    min_count_->setValue(static_cast<int>(analysis::kVocabMinCount));
    min_count_->setToolTip(tr("Tokens routed to this expert fewer times are left out (moewb stats --vocab-min-count)"));
    connect(min_count_, &QSpinBox::valueChanged, this, [this](int n) { emit minCountChanged(n); });
    tokens_note_->setObjectName("expertDetailTokensNote");
    auto* tokens_page = new QWidget(this);
    auto* count_row = new QHBoxLayout;
    count_row->addWidget(new QLabel(tr("Routed here at least"), tokens_page));
    count_row->addWidget(min_count_);
    count_row->addWidget(new QLabel(tr("times"), tokens_page));
    count_row->addWidget(tokens_note_, 1);
    auto* tokens_layout = new QVBoxLayout(tokens_page);
    tokens_layout->setContentsMargins(0, 4, 0, 0);
    tokens_layout->addLayout(count_row);
    tokens_layout->addWidget(tokens_);
    tabs->addTab(tokens_page, tr("Top tokens"));
    tabs->addTab(coactivated_, tr("Co-activated experts"));
    auto* export_chart = new QPushButton(tr("Export chart…"), this);
    export_chart->setObjectName("exportExpertChart");
    export_chart->setToolTip(tr("Write the bar chart as PNG, SVG, PDF or JPEG"));
    connect(export_chart, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export chart"), QString(), plot_file_filter());
        if (!path.isEmpty() && !exportChart(path))
            showError(tr("could not write the chart to %1 (give it a .png, .svg, .pdf or .jpg name)").arg(path));
    });
    auto* top = new QHBoxLayout;
    top->addWidget(title_, 1);
    top->addWidget(export_chart, 0, Qt::AlignTop);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addWidget(chart_, 3);
    layout->addWidget(tabs, 2);
}

bool ExpertDetailView::exportChart(const QString& path) {
    if (detail_.domains.empty()) return false;
    return save_plot(chart_, path, 900);
}

void ExpertDetailView::showError(const QString& error) {
    title_->setStyleSheet("color: #b3261e");
    title_->setText(tr("Cannot show this expert: %1").arg(error));
}

void ExpertDetailView::showDetail(const ExpertDetail& d) {
    // A detail loaded for a minimum count typed over since is stale: the one for the count
    // now in the box follows it.
    if (!detail_.domains.empty() && d.run_id == detail_.run_id && d.layer == detail_.layer && d.expert == detail_.expert &&
        d.min_count != min_count_->value())
        return;
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
        table_->setItem(i, 0, table_cell(q(s.domain), false));
        table_->setItem(i, 1, table_cell(QString::number(s.count), true));
        table_->setItem(i, 2, table_cell(QString::number(s.tokens), true));
        table_->setItem(i, 3, table_cell(QString::number(s.share, 'f', 4), true));
        table_->setItem(i, 4, table_cell(QString::number(s.ratio_to_uniform, 'f', 3), true));
        table_->setItem(i, 5, table_cell(s.mean_gate_weight ? QString::number(*s.mean_gate_weight, 'f', 4) : tr("—"), true));
    }
    {
        const QSignalBlocker quiet(min_count_);
        min_count_->setValue(static_cast<int>(std::min<int64_t>(d.min_count, min_count_->maximum())));
    }
    tokens_note_->setText(d.top_tokens.empty() ? tr("— no token is routed here that often") : QString());
    tokens_->setRowCount(static_cast<int>(d.top_tokens.size()));
    for (int i = 0; i < static_cast<int>(d.top_tokens.size()); ++i) {
        const analysis::TokenEnrichment& t = d.top_tokens[static_cast<size_t>(i)];
        // The token as text, with its whitespace made visible; the id where the text is unknown.
        QString text = q(t.text);
        text.replace(' ', QChar(0x2423)).replace('\n', QChar(0x21B5)).replace('\t', QChar(0x2192));
        tokens_->setItem(i, 0, table_cell(text.isEmpty() ? tr("#%1").arg(t.token_id) : text, false));
        tokens_->item(i, 0)->setToolTip(tr("token id %1").arg(t.token_id));
        tokens_->setItem(i, 1, table_cell(QString::number(t.with_expert), true));
        tokens_->setItem(i, 2, table_cell(QString::number(t.occurrences), true));
        tokens_->setItem(i, 3, table_cell(QString::number(t.p_token_given_expert, 'f', 4), true));
        tokens_->setItem(i, 4, table_cell(QString::number(t.enrichment, 'f', 2), true));
    }
    coactivated_->setRowCount(static_cast<int>(d.coactivated.size()));
    for (int i = 0; i < static_cast<int>(d.coactivated.size()); ++i) {
        const CoactivatedExpert& c = d.coactivated[static_cast<size_t>(i)];
        coactivated_->setItem(i, 0, table_cell(QString::number(c.expert), true));
        coactivated_->setItem(i, 1, table_cell(QString::number(c.together), true));
        coactivated_->setItem(i, 2, table_cell(QString::number(c.p_with, 'f', 4), true));
        coactivated_->setItem(i, 3, table_cell(QString::number(c.lift, 'f', 2), true));
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
