// ExpertGrid; see expert_grid.h.
#include "ui/expert_grid.h"

#include <QHeaderView>
#include <QScrollBar>

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
    horizontalHeader()->setDefaultSectionSize(24);
    horizontalHeader()->setMinimumSectionSize(18);
    verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
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
        // No taller than its rows (a model of few layers leaves the room to the results), and
        // at least a few rows high where there are many.
        const int content = 2 * frameWidth() + horizontalHeader()->sizeHint().height() + verticalHeader()->length() +
                            horizontalScrollBar()->sizeHint().height();
        setMaximumHeight(content);
        setMinimumHeight(std::min(content, 160));
    }
    for (int r = 0; r < rowCount(); ++r)
        for (int c = 0; c < columnCount(); ++c) {
            const bool off = c == 0 ? mask.shared_off(static_cast<size_t>(r)) : mask.expert_off(static_cast<size_t>(r), c - 1);
            QTableWidgetItem* it = item(r, c);
            it->setBackground(off ? kOff : (c == 0 ? kSharedOn : kOn));
            it->setForeground(off ? QColor(Qt::white) : QColor("#555"));
            it->setText(off ? QStringLiteral("×") : QString());
            it->setData(Qt::UserRole, off);
        }
}

}  // namespace moe::ui
