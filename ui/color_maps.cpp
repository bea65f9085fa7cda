// Colour maps; see color_maps.h.
#include "ui/color_maps.h"

namespace moe::ui {

namespace {
QCPColorGradient from_stops(const char* const* hex, int n) {
    QCPColorGradient g;
    g.clearColorStops();
    for (int i = 0; i < n; ++i) g.setColorStopAt(static_cast<double>(i) / (n - 1), QColor(hex[i]));
    g.setColorInterpolation(QCPColorGradient::ciRGB);
    g.setLevelCount(256);
    g.setNanHandling(QCPColorGradient::nhTransparent);
    return g;
}
}  // namespace

QCPColorGradient viridis_gradient() {
    // matplotlib's viridis at 0, 0.1, ..., 1.
    static const char* const kStops[] = {"#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c",
                                         "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725"};
    return from_stops(kStops, 11);
}

QCPColorGradient diverging_gradient() {
    // ColorBrewer RdBu (11 classes), reversed: negative blue, zero white, positive red.
    static const char* const kStops[] = {"#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
                                         "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f"};
    return from_stops(kStops, 11);
}

}  // namespace moe::ui
