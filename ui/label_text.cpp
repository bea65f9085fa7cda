#include "ui/label_text.h"

#include <QFontMetrics>

namespace moe::ui {

QString breakable(const QString& text) {
    QString out;
    out.reserve(text.size() + text.size() / 4);
    for (const QChar c : text) {
        out += c;
        if (c == u';' || c == u',') out += QChar(0x200B);
    }
    return out;
}

void set_elided_text(QLabel* label, const QString& text, int max_width) {
    const QString shown = label->fontMetrics().elidedText(text, Qt::ElideRight, max_width);
    label->setText(shown);
    label->setToolTip(shown == text ? QString() : text);
}

}  // namespace moe::ui
