// The heatmap view: a QCustomPlot colour map of one run — experts × layers for one domain,
// or experts × domains for one layer — in a chosen measure, with a colour scale, and the
// exact numbers of a cell on hover; a click on a cell asks for that expert's detail. Another
// run can be subtracted (a difference map) or drawn beside it on the same colour scale. It
// shows a HeatmapGrid (ui/heatmap_data.h) and asks for a new one when a control changes; it
// computes nothing itself.
#pragma once

#include <QComboBox>
#include <QLabel>
#include <QWidget>
#include <optional>

#include "ui/heatmap_data.h"

class QCustomPlot;
class QCPColorMap;
class QCPColorScale;
class QCPAxisRect;
class QCPMarginGroup;

namespace moe::ui {

class HeatmapView : public QWidget {
    Q_OBJECT
public:
    explicit HeatmapView(QWidget* parent = nullptr);
    ~HeatmapView() override;

    void setRun(int64_t run_id);  // 0: none
    int64_t run() const { return run_id_; }
    HeatmapRequest currentRequest() const;
    void setAxes(HeatmapAxes axes);
    void setMeasure(HeatmapMeasure measure);
    // The runs the "compare with" picker offers (id, label); the picked one is subtracted, or
    // drawn beside when the side-by-side mode is chosen.
    void setRuns(const QList<QPair<qint64, QString>>& runs);
    void setMinusRun(qint64 run_id);  // 0: none
    void setSideBySide(bool beside);  // compare mode: false: difference (default), true: side by side
    QCPColorMap* besideMap() const { return map2_; }
    bool besideShown() const;  // the second map is on screen
    const std::optional<HeatmapGrid>& grid() const { return grid_; }
    QCustomPlot* plot() const { return plot_; }
    QCPColorMap* colorMap() const { return map_; }
    QCPColorScale* colorScale() const { return scale_; }
    QString message() const;  // the in-place notice or error ("" when the map is shown)
    // The cell under a point of the plot widget, as (row, expert) of whichever map is there;
    // nullopt outside the maps. runAt: the run of that map.
    std::optional<std::pair<int64_t, int64_t>> cellAt(const QPoint& pos) const;
    std::optional<int64_t> runAt(const QPoint& pos) const;
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
    void markShownRun();
    void controlsChanged();
    void fillPicker();
    void hover(QMouseEvent* event);
    void click(QMouseEvent* event);
    struct Hit {
        const HeatmapGrid* grid;
        int64_t row, col;
    };
    std::optional<Hit> hit(const QPoint& pos) const;
    void drawGrid(QCPAxisRect* rect, QCPColorMap* map, const HeatmapGrid& grid);
    void fitExpertTicks();

    int64_t run_id_ = 0;
    QComboBox* axes_;
    QComboBox* measure_;
    QLabel* picker_label_;
    QComboBox* picker_;  // the domain (experts × layers) or the layer (experts × domains)
    QComboBox* minus_;   // another run to compare with, or none
    QComboBox* compare_;  // difference or side by side
    QLabel* title_;
    QLabel* message_;
    QCustomPlot* plot_;
    QCPColorMap* map_;
    QCPColorScale* scale_;
    QCPAxisRect* rect2_;  // the run beside; in the plot's layout only while shown
    QCPColorMap* map2_;
    QCPMarginGroup* margins_;
    std::optional<HeatmapGrid> grid_;
    bool filling_ = false;
};

}  // namespace moe::ui
