// LogPanel; see log_panel.h.
#include "ui/log_panel.h"

#include <QDateTime>
#include <QFontDatabase>
#include <QVBoxLayout>

namespace moe::ui {

LogPanel::LogPanel(QWidget* parent) : QWidget(parent), view_(new QPlainTextEdit(this)) {
    view_->setReadOnly(true);
    view_->setMaximumBlockCount(5000);
    view_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    view_->setObjectName("logView");
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(2, 2, 2, 2);
    layout->addWidget(view_);
}

QString LogPanel::text() const { return view_->toPlainText(); }

void LogPanel::append(int level, const QString& message) {
    static const char* const kTags[] = {"", "warning: ", "error: "};
    static const char* const kColours[] = {"#202020", "#9a6700", "#b3261e"};
    const int l = std::clamp(level, 0, 2);
    const QString line = QString("<span style='color:#777'>%1</span> <span style='color:%2'>%3%4</span>")
                             .arg(QDateTime::currentDateTime().toString("HH:mm:ss"), kColours[l], kTags[l],
                                  message.toHtmlEscaped().replace("\n", "<br>"));
    view_->appendHtml(line);
}

void LogPanel::clear() { view_->clear(); }

}  // namespace moe::ui
