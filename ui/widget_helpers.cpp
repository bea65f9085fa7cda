#include "ui/widget_helpers.h"

#include <QFontMetrics>
#include <QHeaderView>

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

void fill_score_cells(QTableWidget* t, int row, int first_column, const analysis::AblationScore& s) {
    // What the mask changed first, where a narrow panel shows it without scrolling.
    // A domain that predicted no token has no scores: a dash, and why in its tooltip.
    const int c = first_column;
    auto cell = [&](int column, const QString& text) {
        QTableWidgetItem* item = table_cell(s.tokens > 0 ? text : QString(QChar(0x2014)), true);
        if (s.tokens == 0)
            item->setToolTip(QObject::tr("no token predicted: the domain's documents are empty or one token long"));
        t->setItem(row, column, item);
    };
    cell(c, QString::number(s.delta_loss(), 'f', 4));
    cell(c + 1, QString::number(s.ppl_ratio(), 'f', 4));
    cell(c + 2, QString::number(s.mean_kl(), 'f', 4));
    cell(c + 3, QString::number(100.0 * s.top1_agreement(), 'f', 1) + " %");
    cell(c + 4, QString::number(s.baseline_loss(), 'f', 4));
    cell(c + 5, QString::number(s.ablated_loss(), 'f', 4));
    t->setItem(row, c + 6, table_cell(QString::number(s.tokens), true));
}

void setup_table(QTableWidget* t, const QStringList& headers) {
    t->setColumnCount(static_cast<int>(headers.size()));
    t->setHorizontalHeaderLabels(headers);
    t->verticalHeader()->hide();
    t->setSelectionBehavior(QAbstractItemView::SelectRows);
    t->setSelectionMode(QAbstractItemView::SingleSelection);
    t->setEditTriggers(QAbstractItemView::NoEditTriggers);
    t->horizontalHeader()->setStretchLastSection(true);
    t->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    t->verticalHeader()->setDefaultSectionSize(t->fontMetrics().height() + 6);
}

}  // namespace moe::ui
