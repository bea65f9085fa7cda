// ExpertGrid; see expert_grid.h.
#include "ui/expert_grid.h"

#include <QHeaderView>
#include <QScrollBar>
#include <QWheelEvent>

#include <algorithm>

namespace moe::ui {

namespace {
const QColor kOff("#b3261e"), kOn("#e8eef4"), kSharedOn("#d3e3d0");
}

ExpertGrid::ExpertGrid(QWidget* parent) : QTableWidget(parent) {
    setObjectName("expertGrid");
    setEditTriggers(QAbstractItemView::NoEditTriggers);
    setSelectionMode(QAbstractItemView::NoSelection);
    setFocusPolicy(Qt::NoFocus);
    horizontalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    horizontalHeader()->setMinimumSectionSize(kMinCell);
    horizontalHeader()->setDefaultSectionSize(kMaxCell);
    verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    verticalHeader()->setMinimumSectionSize(kMinCell);
    verticalHeader()->setDefaultSectionSize(fontMetrics().height() + 4);
    setToolTip(tr("Click a cell to switch an expert off (red) or on again. Column S: the layer's shared experts."));
    connect(this, &QTableWidget::cellClicked, this, &ExpertGrid::cellToggled);
}

void ExpertGrid::showMask(const MaskState& mask) {
    const auto rows = static_cast<int64_t>(mask.layers().size()), cols = mask.n_experts() + 1;
    if (rows != shape_rows_ || cols != shape_cols_) {
        shape_rows_ = rows;
        shape_cols_ = cols;
        setRowCount(static_cast<int>(rows));
        setColumnCount(static_cast<int>(cols));
        QStringList h{"S"};
        for (int64_t e = 0; e < mask.n_experts(); ++e) h << QString::number(e);
        setHorizontalHeaderLabels(h);
        QStringList v;
        for (int64_t l : mask.layers()) v << QString("L%1").arg(l);
        setVerticalHeaderLabels(v);
        for (int r = 0; r < rowCount(); ++r)
            for (int c = 0; c < columnCount(); ++c) {
                auto* it = new QTableWidgetItem;
                it->setFlags(Qt::ItemIsEnabled);
                it->setTextAlignment(Qt::AlignCenter);
                it->setToolTip(c == 0 ? tr("layer %1: the %2 shared experts").arg(mask.layers()[static_cast<size_t>(r)]).arg(mask.n_shared())
                                      : tr("layer %1, expert %2").arg(mask.layers()[static_cast<size_t>(r)]).arg(c - 1));
                setItem(r, c, it);
            }
        fitHeight();
    }
    shown_ = mask;
    showCells();
}

void ExpertGrid::showCells() {
    const bool labelled = cell_ >= kLabelledCell;
    for (int r = 0; r < rowCount(); ++r)
        for (int c = 0; c < columnCount(); ++c) {
            const bool off = c == 0 ? shown_.shared_off(static_cast<size_t>(r)) : shown_.expert_off(static_cast<size_t>(r), c - 1);
            QTableWidgetItem* it = item(r, c);
            it->setBackground(off ? kOff : (c == 0 ? kSharedOn : kOn));
            it->setForeground(off ? QColor(Qt::white) : QColor("#555"));
            it->setText(off && labelled ? QStringLiteral("×") : QString());
            it->setData(Qt::UserRole, off);
        }
}

// No taller than its rows (a model of few layers leaves the room to the results), and at least
// a few rows high where there are many.
void ExpertGrid::fitHeight() {
    const int header = horizontalHeader()->isVisible() ? horizontalHeader()->sizeHint().height() : 0;
    const int content = 2 * frameWidth() + header + verticalHeader()->length() + horizontalScrollBar()->sizeHint().height();
    setMaximumHeight(content);
    setMinimumHeight(std::min(content, 160));
}

void ExpertGrid::setCellSize(int px) {
    px = std::clamp(px, kMinCell, kMaxCell);
    if (px == cell_) return;
    cell_ = px;
    const bool labelled = px >= kLabelledCell;
    const int row = labelled ? std::max(px, fontMetrics().height() + 4) : px;
    horizontalHeader()->setDefaultSectionSize(px);
    verticalHeader()->setDefaultSectionSize(row);
    for (int c = 0; c < columnCount(); ++c) horizontalHeader()->resizeSection(c, px);
    for (int r = 0; r < rowCount(); ++r) verticalHeader()->resizeSection(r, row);
    horizontalHeader()->setVisible(labelled);
    verticalHeader()->setVisible(labelled);
    setShowGrid(px >= 5);  // the smallest cells all colour
    fitHeight();
    showCells();
    emit cellSizeChanged(px);
}

void ExpertGrid::wheelEvent(QWheelEvent* e) {
    if (!(e->modifiers() & Qt::ControlModifier)) {
        QTableWidget::wheelEvent(e);
        return;
    }
    const int steps = e->angleDelta().y() / 120;
    if (steps) setCellSize(cell_ + 3 * steps);
    e->accept();
}

}  // namespace moe::ui
