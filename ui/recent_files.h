// A "recent" list kept in QSettings (recent models, recent stores) and the menu showing it.
// Newest first, no duplicates, at most `max` entries.
#pragma once

#include <QMenu>
#include <QObject>
#include <QString>
#include <QStringList>

namespace moe::ui {

class RecentFiles : public QObject {
    Q_OBJECT
public:
    RecentFiles(const QString& settings_key, QMenu* menu, int max = 8, QObject* parent = nullptr);
    void add(const QString& path);
    QStringList entries() const;

signals:
    void chosen(const QString& path);

private:
    void rebuild();
    QString key_;
    QMenu* menu_;
    int max_;
};

}  // namespace moe::ui
