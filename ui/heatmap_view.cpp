// HeatmapView; see heatmap_view.h.
#include "ui/heatmap_view.h"

#include "ui/plot_export.h"
#include "ui/widget_helpers.h"

#include <qcustomplot.h>

#include <QFileInfo>
#include <QFontMetrics>
#include <QHBoxLayout>
#include <QStandardItemModel>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>

#include "ui/color_maps.h"

namespace moe::ui {

namespace {
QString q(const std::string& s) { return QString::fromStdString(s); }

// Tick spacing for n experts on an axis `width` pixels long: at most 16 labels, and no more
// than fit side by side with two digits' room between them (V3's 256 experts in a narrow map ran
// "112128144160…" together).
double expert_tick_step(int64_t n, int width, const QFont& font) {
    const QFontMetrics fm(font);
    const int label = fm.horizontalAdvance(QString::number(std::max<int64_t>(n - 1, 0))) + fm.horizontalAdvance("00");
    const double most = std::clamp(width / std::max(label, 1), 2, 16);
    for (double step : {1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0})
        if (std::ceil(static_cast<double>(n) / step) <= most) return step;
    return 128.0;
}

// Layer rows are labelled every 1, 2, 5 or 10 layers, at most 30 labels: V3's 58 MoE layers
// would stack their numbers on one another. The hover names every row's layer.
int64_t layer_label_step(int64_t n_rows) {
    for (int64_t step : {1, 2, 5, 10})
        if (n_rows <= 30 * step) return step;
    return 20;
}
}  // namespace

HeatmapView::HeatmapView(QWidget* parent)
    : QWidget(parent), axes_(new QComboBox(this)), measure_(new QComboBox(this)), picker_label_(new QLabel(this)),
      picker_(new QComboBox(this)), minus_(new QComboBox(this)), compare_(new QComboBox(this)), title_(new QLabel(this)), message_(new QLabel(this)), plot_(new QCustomPlot(this)) {
    axes_->setObjectName("heatmapAxes");
    // Short names (the picker beside says which domain or layer): the view shares the window with docks.
    axes_->addItem(tr("Experts × layers"), static_cast<int>(HeatmapAxes::experts_by_layers));
    axes_->addItem(tr("Experts × domains"), static_cast<int>(HeatmapAxes::experts_by_domains));
    axes_->setItemData(0, tr("One domain: a row per MoE layer"), Qt::ToolTipRole);
    axes_->setItemData(1, tr("One layer: a row per domain (the DeepSeekMoE paper's figure)"), Qt::ToolTipRole);
    measure_->setObjectName("heatmapMeasure");
    for (HeatmapMeasure m : {HeatmapMeasure::share, HeatmapMeasure::ratio_to_uniform, HeatmapMeasure::log_ratio,
                             HeatmapMeasure::mean_gate_weight})
        measure_->addItem(tr(measure_name(m)), static_cast<int>(m));
    measure_->setItemData(0, tr("count / (tokens × k): the fraction of the layer's selections"), Qt::ToolTipRole);
    measure_->setItemData(1, tr("(count / tokens) / (k / E): 1 is uniform routing, 2 twice it"), Qt::ToolTipRole);
    measure_->setItemData(2, tr("ln(share in the domain / share in all other domains), smoothed (α = ½); needs 2+ domains"),
                          Qt::ToolTipRole);
    measure_->setItemData(3, tr("mean gate weight of the expert's selections; needs a run with gate weights"),
                          Qt::ToolTipRole);
    // The measure combo may shorten its longest name: the heatmap shares the window with docks.
    measure_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    measure_->setMinimumContentsLength(12);
    minus_->setObjectName("heatmapMinusRun");
    minus_->setToolTip(tr("Another run to compare with: subtracted (same domain, layer and expert, e.g. an ablated "
                          "trace minus its baseline, on the diverging colour map) or drawn beside on the same scale"));
    minus_->addItem(tr("nothing"), 0LL);
    // Run labels are long: the picker shortens them (the tooltip and the title show them whole).
    minus_->setSizeAdjustPolicy(QComboBox::AdjustToMinimumContentsLengthWithIcon);
    minus_->setMinimumContentsLength(10);
    compare_->setObjectName("heatmapCompareMode");
    compare_->addItem(tr("minus"), false);
    compare_->addItem(tr("beside"), true);
    compare_->setItemData(0, tr("This run's values minus the other run's"), Qt::ToolTipRole);
    compare_->setItemData(1, tr("The other run's map beside this one, on the same colour scale"), Qt::ToolTipRole);
    picker_->setObjectName("heatmapPicker");
    picker_->setMinimumContentsLength(10);
    picker_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    // Each as wide as its text where there is room, shortened (elided) on a narrow screen.
    for (QComboBox* c : {axes_, measure_, picker_}) c->setMinimumWidth(c->fontMetrics().averageCharWidth() * 8 + 32);
    title_->setObjectName("heatmapTitle");
    message_->setObjectName("heatmapMessage");
    message_->setWordWrap(true);
    message_->setAlignment(Qt::AlignCenter);
    message_->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto* controls = new QHBoxLayout;
    controls->addWidget(new QLabel(tr("View:"), this));
    controls->addWidget(axes_);
    controls->addSpacing(8);
    controls->addWidget(new QLabel(tr("Measure:"), this));
    controls->addWidget(measure_);
    controls->addSpacing(8);
    controls->addWidget(picker_label_);
    controls->addWidget(picker_);
    controls->addStretch(1);
    // The title, and on its right the comparison with another run.
    auto* title_row = new QHBoxLayout;
    title_->setWordWrap(true);
    title_row->addWidget(title_, 1);
    title_row->addWidget(new QLabel(tr("Compare:"), this));
    title_row->addWidget(compare_);
    title_row->addWidget(minus_);

    // The plot: cells at integer coordinates (expert, row), a colour scale on the right.
    plot_->setObjectName("heatmapPlot");
    plot_->setMouseTracking(true);
    plot_->axisRect()->setupFullAxesBox(true);
    plot_->xAxis->setLabel(tr("expert"));
    plot_->xAxis2->setTickLabels(false);
    plot_->yAxis2->setTickLabels(false);
    plot_->xAxis->grid()->setVisible(false);
    plot_->yAxis->grid()->setVisible(false);
    plot_->yAxis->setRangeReversed(true);  // first row at the top, as in a table
    map_ = new QCPColorMap(plot_->xAxis, plot_->yAxis);
    map_->setInterpolate(false);
    map_->setTightBoundary(false);
    scale_ = new QCPColorScale(plot_);
    plot_->plotLayout()->addElement(0, 1, scale_);
    scale_->setType(QCPAxis::atRight);
    scale_->setBarWidth(14);
    map_->setColorScale(scale_);
    margins_ = new QCPMarginGroup(plot_);
    plot_->axisRect()->setMarginGroup(QCP::msBottom | QCP::msTop, margins_);
    scale_->setMarginGroup(QCP::msBottom | QCP::msTop, margins_);
    // The run beside: its own axes and map, the same colour scale; out of the layout until shown.
    rect2_ = new QCPAxisRect(plot_);
    rect2_->setupFullAxesBox(true);
    rect2_->axis(QCPAxis::atTop)->setTickLabels(false);
    rect2_->axis(QCPAxis::atRight)->setTickLabels(false);
    rect2_->axis(QCPAxis::atBottom)->grid()->setVisible(false);
    rect2_->axis(QCPAxis::atLeft)->grid()->setVisible(false);
    rect2_->axis(QCPAxis::atLeft)->setRangeReversed(true);
    rect2_->setMarginGroup(QCP::msBottom | QCP::msTop, margins_);
    map2_ = new QCPColorMap(rect2_->axis(QCPAxis::atBottom), rect2_->axis(QCPAxis::atLeft));
    map2_->setInterpolate(false);
    map2_->setTightBoundary(false);
    map2_->setColorScale(scale_);
    plot_->setVisible(false);

    auto* layout = new QVBoxLayout(this);
    layout->addLayout(controls);
    layout->addLayout(title_row);
    layout->addWidget(message_, 1);
    layout->addWidget(plot_, 20);

    connect(axes_, &QComboBox::currentIndexChanged, this, [this] {
        fillPicker();
        controlsChanged();
    });
    connect(measure_, &QComboBox::currentIndexChanged, this, &HeatmapView::controlsChanged);
    connect(picker_, &QComboBox::currentIndexChanged, this, &HeatmapView::controlsChanged);
    connect(minus_, &QComboBox::currentIndexChanged, this, &HeatmapView::controlsChanged);
    connect(compare_, &QComboBox::currentIndexChanged, this, &HeatmapView::controlsChanged);
    connect(plot_, &QCustomPlot::mouseMove, this, &HeatmapView::hover);
    connect(plot_, &QCustomPlot::afterLayout, this, &HeatmapView::fitExpertTicks);
    connect(plot_, &QCustomPlot::mousePress, this, &HeatmapView::click);
    fillPicker();
    showNotice(tr("Select a run to see which experts its tokens were routed to."));
}

HeatmapView::~HeatmapView() {
    // A layout element the plot's layout does not hold is not deleted with the plot.
    if (!besideShown()) delete rect2_;
}

bool HeatmapView::besideShown() const { return plot_->plotLayout()->hasElement(0, 2) && plot_->plotLayout()->element(0, 1) == rect2_; }

void HeatmapView::setSideBySide(bool beside) { compare_->setCurrentIndex(beside ? 1 : 0); }

void HeatmapView::setRun(int64_t run_id) {
    run_id_ = run_id;
    markShownRun();
    controlsChanged();
}

// The run shown is no run to compare it with: greyed out in the list (and no longer chosen).
void HeatmapView::markShownRun() {
    auto* items = qobject_cast<QStandardItemModel*>(minus_->model());
    if (!items) return;
    for (int i = 1; i < minus_->count(); ++i)
        if (QStandardItem* item = items->item(i)) {
            const bool shown = minus_->itemData(i).toLongLong() == run_id_;
            item->setEnabled(!shown);
            item->setToolTip(shown ? tr("the run shown") : QString());
        }
    if (run_id_ && minus_->currentData().toLongLong() == run_id_) {
        const bool was_filling = filling_;
        filling_ = true;
        minus_->setCurrentIndex(0);
        filling_ = was_filling;
    }
}

void HeatmapView::setAxes(HeatmapAxes axes) { axes_->setCurrentIndex(axes_->findData(static_cast<int>(axes))); }
void HeatmapView::setMeasure(HeatmapMeasure m) { measure_->setCurrentIndex(measure_->findData(static_cast<int>(m))); }

void HeatmapView::setRuns(const QList<QPair<qint64, QString>>& runs) {
    const qlonglong keep = minus_->currentData().toLongLong();
    const bool was_filling = filling_;
    filling_ = true;
    minus_->clear();
    minus_->addItem(tr("nothing"), 0LL);
    for (const auto& [id, label] : runs) minus_->addItem(label, static_cast<qlonglong>(id));
    const bool gone = keep != 0 && minus_->findData(keep) < 0;
    minus_->setCurrentIndex(std::max(0, minus_->findData(keep)));
    markShownRun();
    filling_ = was_filling;
    if (gone) controlsChanged();  // the run compared with was deleted: the map without it
}

void HeatmapView::setMinusRun(qint64 run_id) { minus_->setCurrentIndex(std::max(0, minus_->findData(static_cast<qlonglong>(run_id)))); }

HeatmapRequest HeatmapView::currentRequest() const {
    HeatmapRequest r;
    r.run_id = run_id_;
    if (const qlonglong m = minus_->currentData().toLongLong(); m > 0 && m != run_id_) {
        if (compare_->currentData().toBool()) r.beside_run_id = m;
        else r.minus_run_id = m;
    }
    r.axes = static_cast<HeatmapAxes>(axes_->currentData().toInt());
    r.measure = static_cast<HeatmapMeasure>(measure_->currentData().toInt());
    if (picker_->currentIndex() >= 0) {
        if (r.axes == HeatmapAxes::experts_by_layers) r.domain = picker_->currentData().toString().toStdString();
        else r.layer = picker_->currentData().toLongLong();
    }
    return r;
}

void HeatmapView::controlsChanged() {
    if (filling_) return;
    if (!run_id_) {
        showNotice(tr("Select a run to see which experts its tokens were routed to."));
        return;
    }
    emit requestChanged(currentRequest());
}

// The picker lists the grid's domains or layers; kept as it is while the run's lists match.
void HeatmapView::fillPicker() {
    const bool by_layers = static_cast<HeatmapAxes>(axes_->currentData().toInt()) == HeatmapAxes::experts_by_layers;
    picker_label_->setText(by_layers ? tr("Domain:") : tr("Layer:"));
    filling_ = true;
    const QVariant keep = picker_->currentData();
    picker_->clear();
    if (grid_) {
        if (by_layers)
            for (const std::string& d : grid_->domains) picker_->addItem(q(d), q(d));
        else
            for (int64_t l : grid_->layers) picker_->addItem(tr("layer %1").arg(l), static_cast<qlonglong>(l));
        int i = picker_->findData(keep);
        if (i < 0 && grid_->request.axes == static_cast<HeatmapAxes>(axes_->currentData().toInt()))
            i = by_layers ? picker_->findData(q(grid_->request.domain))
                          : picker_->findData(static_cast<qlonglong>(grid_->request.layer.value_or(-1)));
        picker_->setCurrentIndex(std::max(i, 0));
    }
    filling_ = false;
}

QString HeatmapView::message() const { return message_->isHidden() ? QString() : message_->text(); }

void HeatmapView::showNotice(const QString& text) {
    message_->setStyleSheet("color: palette(text)");
    message_->setText(text);
    message_->show();
    plot_->hide();
}

void HeatmapView::showError(const QString& error) {
    title_->clear();
    message_->setStyleSheet("color: #b3261e");
    message_->setText(tr("Cannot show this heatmap:\n%1").arg(error));
    message_->show();
    plot_->hide();
}

void HeatmapView::showGrid(const HeatmapGrid& grid) {
    if (grid.request.run_id != run_id_) return;  // an answer for a run no longer shown
    grid_ = grid;
    fillPicker();
    message_->hide();
    plot_->show();
    const bool by_layers = grid.request.axes == HeatmapAxes::experts_by_layers;
    title_->setText(QString("<b>%1</b> — %2 — %3")
                        .arg(tr(measure_name(grid.request.measure)),
                             by_layers ? tr("domain %1").arg(q(grid.request.domain))
                                       : tr("layer %1").arg(grid.request.layer.value_or(0)),
                             breakable((q(grid.run_label) +
                                        (grid.beside.empty() ? QString()
                                                             : tr(" — beside: %1").arg(q(grid.beside.front().run_label))))
                                           .toHtmlEscaped())));
    // A difference that is zero everywhere would show as one grey on a scale of ±1e-9.
    if (grid.request.minus_run_id && grid.min_value() == 0.0 && grid.max_value() == 0.0)
        title_->setText(title_->text() +
                        tr(" — <i>identical to run %1 in every cell</i>").arg(*grid.request.minus_run_id));

    // The run beside, in the layout between the first map and the colour scale while shown.
    QCPLayoutGrid* layout = plot_->plotLayout();
    if (!grid.beside.empty() && !besideShown()) {
        layout->take(scale_);
        layout->simplify();
        layout->addElement(0, 1, rect2_);
        layout->addElement(0, 2, scale_);
    } else if (grid.beside.empty() && besideShown()) {
        layout->take(rect2_);
        layout->take(scale_);
        layout->simplify();
        layout->addElement(0, 1, scale_);
    }
    drawGrid(plot_->axisRect(), map_, grid);
    if (!grid.beside.empty()) drawGrid(rect2_, map2_, grid.beside.front());
    plot_->xAxis->setLabel(grid.beside.empty() ? tr("expert") : tr("expert — run %1").arg(grid.request.run_id));
    // One colour range for both maps (min_value and max_value cover the run beside).
    if (grid.diverging) {
        const double m = std::max({std::abs(grid.min_value()), std::abs(grid.max_value()), 1e-9});
        map_->setGradient(diverging_gradient());
        map_->setDataRange(QCPRange(-m, m));
    } else {
        map_->setGradient(viridis_gradient());
        map_->setDataRange(QCPRange(std::min(0.0, grid.min_value()), std::max(grid.max_value(), 1e-9)));
    }
    scale_->axis()->setLabel(grid.request.minus_run_id ? tr("Δ %1").arg(tr(measure_name(grid.request.measure)))
                                                      : tr(measure_name(grid.request.measure)));
    plot_->replot();
}

// The expert labels' spacing follows the map's width as laid out (a resized window, an export
// at another size): where it changes, the axis rect's ticks are made again before drawing.
void HeatmapView::fitExpertTicks() {
    if (!grid_) return;
    auto fit = [](QCPAxisRect* rect, int64_t n) {
        QCPAxis* x = rect->axis(QCPAxis::atBottom);
        auto ticker = x->ticker().dynamicCast<QCPAxisTickerFixed>();
        if (!ticker) return;
        const double step = expert_tick_step(n, rect->width(), x->tickLabelFont());
        if (step == ticker->tickStep()) return;
        ticker->setTickStep(step);
        rect->update(QCPLayoutElement::upPreparation);
    };
    fit(plot_->axisRect(), grid_->n_cols);
    if (besideShown() && !grid_->beside.empty()) fit(rect2_, grid_->beside.front().n_cols);
}

// Cell (expert e, row r) at coordinates (e, r): the key axis runs over experts.
void HeatmapView::drawGrid(QCPAxisRect* rect, QCPColorMap* map, const HeatmapGrid& grid) {
    const bool by_layers = grid.request.axes == HeatmapAxes::experts_by_layers;
    map->data()->setSize(static_cast<int>(grid.n_cols), static_cast<int>(grid.n_rows));
    map->data()->setRange(QCPRange(0, static_cast<double>(grid.n_cols - 1)),
                          QCPRange(0, static_cast<double>(grid.n_rows - 1)));
    for (int64_t r = 0; r < grid.n_rows; ++r)
        for (int64_t e = 0; e < grid.n_cols; ++e) {
            const HeatmapCell& c = grid.at(r, e);
            map->data()->setCell(static_cast<int>(e), static_cast<int>(r), c.present ? c.value : NAN);
        }
    QCPAxis* x = rect->axis(QCPAxis::atBottom);
    QCPAxis* y = rect->axis(QCPAxis::atLeft);
    x->setRange(-0.5, static_cast<double>(grid.n_cols) - 0.5);
    y->setRange(-0.5, static_cast<double>(grid.n_rows) - 0.5);
    auto xt = QSharedPointer<QCPAxisTickerFixed>::create();
    xt->setTickStep(expert_tick_step(grid.n_cols, rect->width(), x->tickLabelFont()));
    xt->setScaleStrategy(QCPAxisTickerFixed::ssNone);
    x->setTicker(xt);
    x->setLabel(tr("expert — run %1").arg(grid.request.run_id));
    auto yt = QSharedPointer<QCPAxisTickerText>::create();
    const int64_t step = by_layers ? layer_label_step(grid.n_rows) : 1;
    for (int64_t r = 0; r < grid.n_rows; ++r) {
        const int64_t layer = grid.row_layers[static_cast<size_t>(r)];
        if (!by_layers) yt->addTick(static_cast<double>(r), q(grid.row_labels[static_cast<size_t>(r)]));
        else if (layer % step == 0) yt->addTick(static_cast<double>(r), QString::number(layer));
    }
    y->setTicker(yt);
    y->setLabel(by_layers ? tr("layer") : tr("domain"));
}

std::optional<HeatmapView::Hit> HeatmapView::hit(const QPoint& pos) const {
    if (!grid_ || plot_->isHidden()) return std::nullopt;
    const HeatmapGrid* g = nullptr;
    QCPAxisRect* rect = nullptr;
    if (plot_->axisRect()->rect().contains(pos)) {
        g = &*grid_;
        rect = plot_->axisRect();
    } else if (!grid_->beside.empty() && besideShown() && rect2_->rect().contains(pos)) {
        g = &grid_->beside.front();
        rect = rect2_;
    } else {
        return std::nullopt;
    }
    const double x = rect->axis(QCPAxis::atBottom)->pixelToCoord(pos.x()), y = rect->axis(QCPAxis::atLeft)->pixelToCoord(pos.y());
    const auto e = static_cast<int64_t>(std::floor(x + 0.5)), r = static_cast<int64_t>(std::floor(y + 0.5));
    if (e < 0 || e >= g->n_cols || r < 0 || r >= g->n_rows || !g->at(r, e).present) return std::nullopt;
    return Hit{g, r, e};
}

std::optional<std::pair<int64_t, int64_t>> HeatmapView::cellAt(const QPoint& pos) const {
    const auto h = hit(pos);
    if (!h) return std::nullopt;
    return std::make_pair(h->row, h->col);
}

std::optional<int64_t> HeatmapView::runAt(const QPoint& pos) const {
    const auto h = hit(pos);
    if (!h) return std::nullopt;
    return h->grid->request.run_id;
}

QString HeatmapView::toolTipAt(const QPoint& pos) const {
    const auto h = hit(pos);
    if (!h) return {};
    const QString text = q(h->grid->describe(h->row, h->col));
    return grid_->beside.empty() ? text : tr("run %1\n%2").arg(h->grid->request.run_id).arg(text);
}

void HeatmapView::hover(QMouseEvent* event) {
    const QString text = toolTipAt(event->pos());
    if (text.isEmpty()) QToolTip::hideText();
    else QToolTip::showText(event->globalPosition().toPoint(), text, plot_);
}

void HeatmapView::click(QMouseEvent* event) {
    if (event->button() != Qt::LeftButton) return;
    if (const auto h = hit(event->pos()))
        emit expertClicked(h->grid->request.run_id, h->grid->row_layers[static_cast<size_t>(h->row)], h->col);
}

}  // namespace moe::ui

namespace moe::ui {

bool HeatmapView::exportImage(const QString& path) {
    if (!grid_ || plot_->isHidden()) return false;
    // At least 1200 px wide, so that a figure made from the export reads well.
    return save_plot(plot_, path, 1200);
}

}  // namespace moe::ui
