// Bar figures and plot files; see plot_export.h.
#include "ui/plot_export.h"

#include <QFileInfo>
#include <QSvgGenerator>
#include <algorithm>
#include <qcustomplot.h>

namespace moe::ui {

QCPBars* add_category_bars(QCustomPlot* plot, const QColor& color) {
    auto* bars = new QCPBars(plot->xAxis, plot->yAxis);
    bars->setWidth(0.6);
    bars->setPen(Qt::NoPen);
    bars->setBrush(color);
    plot->xAxis->grid()->setZeroLinePen(Qt::NoPen);
    // The categories' names slanted when they would run into each other side by side (six
    // domains under a bar chart in a narrow dock); level again when there is room.
    QObject::connect(plot, &QCustomPlot::afterLayout, plot, [plot] {
        const auto ticker = plot->xAxis->ticker().dynamicCast<QCPAxisTickerText>();
        if (!ticker || ticker->ticks().isEmpty()) return;
        const QFontMetrics fm(plot->xAxis->tickLabelFont());
        int widest = 0;
        for (const QString& label : ticker->ticks()) widest = std::max(widest, fm.horizontalAdvance(label));
        const double room = plot->axisRect()->width() / std::max(1.0, plot->xAxis->range().size());
        const double rotation = widest + fm.averageCharWidth() > room ? -35.0 : 0.0;
        if (rotation != plot->xAxis->tickLabelRotation()) {
            plot->xAxis->setTickLabelRotation(rotation);
            QMetaObject::invokeMethod(
                plot, [plot] { plot->replot(); }, Qt::QueuedConnection);
        }
    });
    return bars;
}

bool save_plot(QCustomPlot* plot, const QString& path, int min_width) {
    const QString suffix = QFileInfo(path).suffix().toLower();
    const int w = std::max(plot->width(), min_width);
    const int h = std::max(plot->height() * w / std::max(plot->width(), 1), 400);
    if (suffix == "png") return plot->savePng(path, w, h);
    if (suffix == "jpg" || suffix == "jpeg") return plot->saveJpg(path, w, h);
    if (suffix == "pdf") return plot->savePdf(path, w, h);
    if (suffix == "svg") {
        // Vector output at the plot's own size (fonts and lines stay as drawn on screen).
        QSvgGenerator svg;
        svg.setFileName(path);
        svg.setSize(plot->size());
        svg.setViewBox(QRect(QPoint(0, 0), plot->size()));
        svg.setTitle(plot->objectName());
        QCPPainter painter;
        if (!painter.begin(&svg)) return false;
        plot->toPainter(&painter, plot->width(), plot->height());
        painter.end();
        return QFileInfo(path).size() > 0;
    }
    return false;
}

QString plot_file_filter() {
    return QObject::tr("PNG image (*.png);;SVG (*.svg);;PDF (*.pdf);;JPEG image (*.jpg)");
}

}  // namespace moe::ui
