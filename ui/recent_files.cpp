// RecentFiles; see recent_files.h.
#include "ui/recent_files.h"

#include <QSettings>

namespace moe::ui {

RecentFiles::RecentFiles(const QString& settings_key, QMenu* menu, int max, QObject* parent)
    : QObject(parent), key_(settings_key), menu_(menu), max_(max) {
    rebuild();
}

QStringList RecentFiles::entries() const { return QSettings().value(key_).toStringList(); }

void RecentFiles::add(const QString& path) {
    QStringList list = entries();
    list.removeAll(path);
    list.prepend(path);
    while (list.size() > max_) list.removeLast();
    QSettings().setValue(key_, list);
    rebuild();
}

void RecentFiles::rebuild() {
    menu_->clear();
    const QStringList list = entries();
    for (int i = 0; i < list.size(); ++i) {
        const QString path = list[i];
        QAction* a = menu_->addAction(QString("&%1  %2").arg(i + 1).arg(path));
        connect(a, &QAction::triggered, this, [this, path] { emit chosen(path); });
    }
    if (list.isEmpty()) menu_->addAction(tr("(none)"))->setEnabled(false);
    menu_->addSeparator();
    connect(menu_->addAction(tr("Clear list")), &QAction::triggered, this, [this] {
        QSettings().remove(key_);
        rebuild();
    });
}

}  // namespace moe::ui
