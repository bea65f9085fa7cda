// The token routing inspector panel: a document chooser for the selected run, the colouring
// (rank-0 expert, or one expert highlighted across all tokens), the ImGui grid
// (ui/routing_inspector_view.h) and, under it, the hovered cell's numbers in plain text.
// Where the Qt platform cannot host OpenGL (offscreen, minimal) a placeholder says so.
// It asks the Workbench for documents and shows what comes back; it computes nothing.
#pragma once

#include <QComboBox>
#include <QLabel>
#include <QSpinBox>
#include <QWidget>

#include "ui/token_routing.h"

namespace moe::ui {

class Workbench;
class RoutingInspectorView;

class RoutingInspector : public QWidget {
    Q_OBJECT
public:
    explicit RoutingInspector(Workbench* workbench, QWidget* parent = nullptr);

    RoutingInspectorView* view() const { return view_; }  // nullptr on a platform without GL
    int64_t run() const { return run_id_; }
    int64_t currentDocument() const;  // doc_id, 0: none
    int documentCount() const { return documents_->count(); }
    const QComboBox* documentCombo() const { return documents_; }
    void selectDocument(int64_t doc_id);
    QString hoverText() const { return hover_->text(); }
    QString message() const { return message_->isHidden() ? QString() : message_->text(); }

public slots:
    void setRun(qint64 run_id);
    // Shows tokens that did not come from the store (a chat answer).
    void showRouting(const moe::ui::TokenRouting& routing);
    // The same, scrolled to one token, its row framed and its experts in every layer written out.
    void showToken(const moe::ui::TokenRouting& routing, qint64 row);

private:
    void showDocuments(qint64 run_id);
    void documentChosen();
    void showHover(qint64 row, qint64 column);
    void showMessage(const QString& text, bool error);
    bool showingExternal() const;  // tokens that are not the store's (a chat answer) are shown

    Workbench* workbench_;
    int64_t run_id_ = 0;
    QComboBox* documents_;
    QSpinBox* expert_;
    QLabel* title_;
    QLabel* message_;
    QLabel* hover_;
    RoutingInspectorView* view_ = nullptr;
    TokenRouting shown_;
};

}  // namespace moe::ui
