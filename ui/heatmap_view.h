// The heatmap view: a QCustomPlot colour map of one run — experts × layers for one domain,
// or experts × domains for one layer — in a chosen measure, with a colour scale, and the
// exact numbers of a cell on hover; a click on a cell asks for that expert's detail. It shows a HeatmapGrid (ui/heatmap_data.h) and asks for a
// new one when a control changes; it computes nothing itself.
#pragma once

#include <QComboBox>
#include <QLabel>
#include <QWidget>
#include <optional>

#include "ui/heatmap_data.h"

class QCustomPlot;
class QCPColorMap;
class QCPColorScale;

namespace moe::ui {

class HeatmapView : public QWidget {
    Q_OBJECT
public:
    explicit HeatmapView(QWidget* parent = nullptr);

    void setRun(int64_t run_id);  // 0: none
    int64_t run() const { return run_id_; }
    HeatmapRequest currentRequest() const;
    void setAxes(HeatmapAxes axes);
    void setMeasure(HeatmapMeasure measure);
    // The runs the "minus run" picker offers (id, label); the picked one is subtracted.
    void setRuns(const QList<QPair<qint64, QString>>& runs);
    void setMinusRun(qint64 run_id);  // 0: none
    const std::optional<HeatmapGrid>& grid() const { return grid_; }
    QCustomPlot* plot() const { return plot_; }
    QCPColorMap* colorMap() const { return map_; }
    QCPColorScale* colorScale() const { return scale_; }
    QString message() const;  // the in-place notice or error ("" when the map is shown)
    // The cell under a point of the plot widget, as (row, expert); nullopt outside the map.
    std::optional<std::pair<int64_t, int64_t>> cellAt(const QPoint& pos) const;
    QString toolTipAt(const QPoint& pos) const;
    // Writes the plot as it is shown (with its colour scale) to a .png, .jpg or .pdf file;
    // false when nothing is shown, the suffix is unknown or the file cannot be written.
    bool exportImage(const QString& path);

signals:
    void requestChanged(const moe::ui::HeatmapRequest& request);
    void expertClicked(qint64 run_id, qint64 layer, qint64 expert);  // a cell was clicked

public slots:
    void showGrid(const moe::ui::HeatmapGrid& grid);
    void showError(const QString& error);
    void showNotice(const QString& text);

private:
    void controlsChanged();
    void fillPicker();
    void hover(QMouseEvent* event);
    void click(QMouseEvent* event);

    int64_t run_id_ = 0;
    QComboBox* axes_;
    QComboBox* measure_;
    QLabel* picker_label_;
    QComboBox* picker_;  // the domain (experts × layers) or the layer (experts × domains)
    QComboBox* minus_;   // another run to subtract, or none
    QLabel* title_;
    QLabel* message_;
    QCustomPlot* plot_;
    QCPColorMap* map_;
    QCPColorScale* scale_;
    std::optional<HeatmapGrid> grid_;
    bool filling_ = false;
};

}  // namespace moe::ui
