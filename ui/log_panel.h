// The log panel: a read-only, timestamped list of what the workbench did and what failed
// (model and store opened, traces started and finished, errors). Presentation only.
#pragma once

#include <QPlainTextEdit>
#include <QWidget>

namespace moe::ui {

enum class LogLevel { info = 0, warning = 1, error = 2 };

class LogPanel : public QWidget {
    Q_OBJECT
public:
    explicit LogPanel(QWidget* parent = nullptr);
    QString text() const;

public slots:
    void append(int level, const QString& message);
    void clear();

private:
    QPlainTextEdit* view_;
};

}  // namespace moe::ui
