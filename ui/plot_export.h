// Writing a QCustomPlot figure to a file as it is shown: PNG, JPEG, PDF or SVG by the file's
// suffix, at least `min_width` pixels wide for the raster formats.
#pragma once

#include <QString>

class QCustomPlot;

namespace moe::ui {

// False for an unknown suffix or a file that cannot be written.
bool save_plot(QCustomPlot* plot, const QString& path, int min_width = 1200);
// The file dialog filter of the formats save_plot writes.
QString plot_file_filter();

}  // namespace moe::ui
