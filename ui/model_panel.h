// The model panel: which model is open and what it is (architecture, layers, routed and
// shared experts, top-k, parameters, dtype, backend, threads), an Open button, and errors
// shown in place (a bad directory leaves the panel saying why, the app keeps running).
#pragma once

#include <QComboBox>
#include <QLabel>
#include <QPushButton>
#include <QWidget>

namespace moe::ui {

class Workbench;

class ModelPanel : public QWidget {
    Q_OBJECT
public:
    explicit ModelPanel(Workbench* workbench, QWidget* parent = nullptr);
    QString errorText() const;              // "" when the last open succeeded
    QString fieldText(const QString& name) const;  // the value shown for a field ("layers", ...)

signals:
    void openRequested();  // the Open… button: the main window asks for a directory

protected:
    void resizeEvent(QResizeEvent* event) override;

private:
    void fitHeight();
    void showModel();
    void backendChosen(int index);
    void showError(const QString& dir, const QString& error);
    void setField(const QString& name, const QString& value);

    Workbench* workbench_;
    QLabel* path_;
    QLabel* status_;
    QPushButton* open_;
    QComboBox* backend_;  // where models run: CPU, CUDA GPU
    QWidget* fields_box_;
    std::vector<std::pair<QString, QLabel*>> fields_;
};

}  // namespace moe::ui
