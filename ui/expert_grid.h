// The ablation panel's toggle grid: one row per MoE layer, a column for the layer's shared
// experts and one per routed expert; a click switches the cell off or on again. It shows a
// MaskState and reports clicks; the panel changes the state.
#pragma once

#include <QTableWidget>

#include "ui/mask_state.h"

namespace moe::ui {

class ExpertGrid : public QTableWidget {
    Q_OBJECT
public:
    explicit ExpertGrid(QWidget* parent = nullptr);
    void showMask(const MaskState& mask);  // rebuilds the cells when the shape changed
    // Column 0 is the shared experts; column c > 0 is routed expert c - 1.
    static int columnOfExpert(int64_t expert) { return static_cast<int>(expert) + 1; }

signals:
    void cellToggled(int row, int column);

private:
    int64_t shape_rows_ = -1, shape_cols_ = -1;
};

}  // namespace moe::ui
