// Helpers of the GUI suites: a temporary model directory (random weights of a tiny
// DeepSeekMoE config + the tiny-llm fixture tokenizer, as tests/test_store_support.h makes
// them) and a corpus of two domains, and waiting for a Workbench's jobs. The user's settings
// (QSettings) live in the fixture's folder too: two runs of one suite (CTest runs a suite's
// short-screen case beside the whole suite) never read or clear each other's.
#pragma once

#include <QSettings>
#include <QTemporaryDir>
#include <QtTest>

#include "tests/test_store_support.h"
#include "ui/workbench.h"

namespace ui_test {

struct Fixture {
    QTemporaryDir tmp;
    QString model_dir, corpus_dir, store_path;
    bool ok = false;
    Fixture() {
        if (!tmp.isValid()) return;
        for (auto format : {QSettings::NativeFormat, QSettings::IniFormat})
            QSettings::setPath(format, QSettings::UserScope, tmp.filePath("settings"));
        model_dir = tmp.filePath("tiny-model");
        corpus_dir = tmp.filePath("corpus");
        store_path = tmp.filePath("data/workbench.db");  // the parent is made by openStore
        ok = store_test::write_model_dir(model_dir, store_test::tiny_config(), 11);
        store_test::write_corpus(corpus_dir, {"code", "prose"}, 4, 40);
    }
};

// Opens the fixture's model, store and corpus and waits until all three are there.
inline bool open_all(moe::ui::Workbench& wb, const Fixture& f) {
    wb.openStore(f.store_path);
    wb.openCorpus(f.corpus_dir);
    wb.openModel(f.model_dir);
    QDeadlineTimer deadline(60000);
    while (!(wb.hasModel() && wb.hasStore() && wb.corpus()) && !deadline.hasExpired())
        QCoreApplication::processEvents(QEventLoop::AllEvents, 20);
    return wb.hasModel() && wb.hasStore() && wb.corpus() && wb.waitIdle(30000);
}

}  // namespace ui_test
