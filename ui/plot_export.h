// QCustomPlot figures: bars over named categories, and writing a figure to a file as it is
// shown (PNG, JPEG, PDF or SVG by the file's suffix, at least `min_width` pixels wide for the
// raster formats).
#pragma once

#include <QColor>
#include <QString>

class QCustomPlot;
class QCPBars;

namespace moe::ui {

// Bars in `color` on the plot's x axis of categories 0, 1, ... (a text ticker), without the
// x grid's zero line, which would stand as a solid line over the first category's bar.
// (Its categories' names, from a QCPAxisTickerText, are slanted when they do not fit side by side.)
QCPBars* add_category_bars(QCustomPlot* plot, const QColor& color);

// False for an unknown suffix or a file that cannot be written.
bool save_plot(QCustomPlot* plot, const QString& path, int min_width = 1200);
// The file dialog filter of the formats save_plot writes.
QString plot_file_filter();

}  // namespace moe::ui
