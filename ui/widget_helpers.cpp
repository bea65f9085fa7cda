#include "ui/widget_helpers.h"

#include <QFontMetrics>

namespace moe::ui {

QLabel* error_label(QWidget* parent, const char* name) {
    auto* l = new QLabel(parent);
    l->setObjectName(name);
    l->setWordWrap(true);
    l->setStyleSheet("color: #b3261e");
    l->setTextInteractionFlags(Qt::TextSelectableByMouse);
    l->hide();
    return l;
}

QTableWidgetItem* table_cell(const QString& text, bool right) {
    auto* it = new QTableWidgetItem(text);
    it->setFlags(Qt::ItemIsSelectable | Qt::ItemIsEnabled);
    if (right) it->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return it;
}

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
