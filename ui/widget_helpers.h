// Small widget pieces the panels share: labels for errors and for long texts, and read-only
// table cells (an ablation's scores among them).
#pragma once

#include <QLabel>
#include <QString>
#include <QTableWidget>
#include <QTableWidgetItem>

#include "analysis/ablation.h"

namespace moe::ui {

// A red, word-wrapped, selectable label named `name`, hidden until it has something to say.
QLabel* error_label(QWidget* parent, const char* name);

// A table cell that can be selected but not edited; `right`: aligned right (numbers).
QTableWidgetItem* table_cell(const QString& text, bool right);

// A read-only table of whole-row single selection with these column headers, no row numbers,
// columns sized to their contents (the last one stretched) and rows as tall as a line.
void setup_table(QTableWidget* t, const QStringList& headers);

// An ablation's scores in seven cells of a row from `first_column` on: Δloss, perplexity
// ratio, KL, top-1 agreement, baseline loss, ablated loss, tokens.
void fill_score_cells(QTableWidget* t, int row, int first_column, const analysis::AblationScore& s);

// Long texts without spaces in labels: an expert mask (L3:45,70;L4:172,232;… over 58 layers)
// is one unbreakable word to the line breaker, and a label showing it would widen its dock or
// the window past the screen.

// The text with a break opportunity (a zero-width space) after each ';' and ',', for labels
// that wrap.
QString breakable(const QString& text);

// Sets a one-line label's text, elided on the right to at most max_width pixels; the whole
// text is its tooltip when it does not fit.
void set_elided_text(QLabel* label, const QString& text, int max_width);

}  // namespace moe::ui
