// The token routing inspector's grid, drawn with Dear ImGui (ImGuiWidget): one row per
// token (its text at the left), one column per MoE layer, each cell coloured by the experts
// the token was routed to in that layer — the rank-0 expert's hue, or, when one expert is
// highlighted, how high it ranked among the k (grey when not selected). Hover shows the
// token, layer, the k experts and their gate weights. Only the visible rows are drawn
// (ImGuiListClipper), so a 4,000-token document costs what a screenful does.
#pragma once

#include <QPoint>
#include <QString>
#include <optional>
#include <utility>

#include "ui/imgui_widget.h"
#include "ui/token_routing.h"

namespace moe::ui {

class RoutingInspectorView : public ImGuiWidget {
    Q_OBJECT
public:
    explicit RoutingInspectorView(QWidget* parent = nullptr);

    void setRouting(const TokenRouting& routing);
    const TokenRouting& routing() const { return routing_; }
    void setHighlightExpert(int expert);  // -1: colour by the rank-0 expert
    int highlightExpert() const { return highlight_; }

    // The cell under the mouse in the last frame drawn, as (token row, layer column).
    std::optional<std::pair<int64_t, int64_t>> hoveredCell() const { return hovered_; }
    // The centre of a cell in widget coordinates, as laid out in the last frame (scroll included).
    QPoint cellCenter(int64_t row, int64_t column) const;
    void scrollToRow(int64_t row);
    // A row drawn with a frame across its label and cells (a token clicked in the chat); -1: none.
    void setMarkedRow(int64_t row);
    int64_t markedRow() const { return marked_; }

signals:
    void cellHovered(qint64 row, qint64 column);  // -1, -1: none
    void cellClicked(qint64 row, qint64 column);

protected:
    void drawImGui() override;

private:
    void drawHeader(float x0, float y0, float cell_w);

    TokenRouting routing_;
    int highlight_ = -1;
    std::optional<std::pair<int64_t, int64_t>> hovered_;
    // Layout of the last frame: where row 0 of the grid starts, the label column, the cells.
    float origin_x_ = 0, origin_y_ = 0, label_w_ = 150, cell_w_ = 14, row_h_ = 16;
    int64_t scroll_to_ = -1;
    int64_t marked_ = -1;
};

}  // namespace moe::ui
