// Long texts without spaces in labels: an expert mask (L3:45,70;L4:172,232;… over 58 layers)
// is one unbreakable word to the line breaker, and a label showing it would widen its dock or
// the window past the screen.
#pragma once

#include <QLabel>
#include <QString>

namespace moe::ui {

// The text with a break opportunity (a zero-width space) after each ';' and ',', for labels
// that wrap.
QString breakable(const QString& text);

// Sets a one-line label's text, elided on the right to at most max_width pixels; the whole
// text is its tooltip when it does not fit.
void set_elided_text(QLabel* label, const QString& text, int max_width);

}  // namespace moe::ui
