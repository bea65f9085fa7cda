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
    // The cells' width and height in pixels (kMinCell .. kMaxCell): at the largest a cell shows
    // × when off and the headers their numbers; below kLabelledCell only the colours and the
    // tooltips say which cell is which, so that DeepSeek-V3's 58 × 257 cells fit a screen.
    // Ctrl + wheel over the grid changes it by steps.
    static constexpr int kMinCell = 3, kLabelledCell = 14, kMaxCell = 24;
    void setCellSize(int px);
    int cellSize() const { return cell_; }

signals:
    void cellToggled(int row, int column);
    void cellSizeChanged(int px);

protected:
    void wheelEvent(QWheelEvent* e) override;

private:
    void fitHeight();
    void showCells();
    int64_t shape_rows_ = -1, shape_cols_ = -1;
    int cell_ = kMaxCell;
    MaskState shown_;  // what the cells show
};

}  // namespace moe::ui
