// moe-workbench: the GUI. Parses the command line, finds the default model, corpus and
// store, and shows the main window; everything else is in ui/.
//   moe-workbench [--model DIR] [--db FILE] [--corpus PATH]
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <cstdio>

#include "engine/error.h"
#include "ui/main_window.h"
#ifdef MOE_HAVE_CUDA
#include "engine/cuda/cuda_model.h"
#endif

namespace {

// The first candidate that exists; "" when none does.
QString first_existing(const QStringList& candidates) {
    for (const QString& c : candidates)
        if (!c.isEmpty() && QFileInfo::exists(c)) return QDir::cleanPath(QFileInfo(c).absoluteFilePath());
    return {};
}

}  // namespace

int main(int argc, char** argv) {
#ifdef MOE_HAVE_CUDA
    moe::cuda::register_backend();  // --backend cuda, and the model panel's choice
#endif
    QApplication app(argc, argv);
    QApplication::setOrganizationName("MoE Workbench");
    QApplication::setApplicationName("moe-workbench");
    QApplication::setApplicationDisplayName("MoE Workbench");
    QApplication::setApplicationVersion("0.1.0");

    QCommandLineParser parser;
    parser.setApplicationDescription(
        "A workbench for Mixture-of-Experts language models: open a model, trace a corpus through it "
        "and see which experts each domain's tokens are routed to.");
    parser.addHelpOption();
    parser.addVersionOption();
    QCommandLineOption model({"m", "model"}, "Hugging Face model directory (default: the demo model of the build).",
                             "DIR");
    QCommandLineOption db("db", "Routing store (SQLite; created when absent; default: " +
                                    moe::ui::MainWindow::defaultStorePath() + ").",
                          "FILE");
    QCommandLineOption corpus("corpus", "Corpus to trace (default: the repository's datasets/).", "PATH");
    QCommandLineOption no_auto_trace("no-auto-trace", "Do not trace the corpus on start when the store has no runs.");
    QCommandLineOption auto_tokens("auto-trace-tokens", "Tokens per domain traced on start when the store has no runs "
                                                        "(default 2000).", "N", "2000");
    QCommandLineOption backend("backend", "Where models run: cpu or cuda (default cpu).", "NAME", "cpu");
    parser.addOptions({model, db, corpus, no_auto_trace, auto_tokens, backend});
    parser.process(app);

    // Defaults: the embedded model and the corpora next to the executable first
    // (build/app/moe-workbench → <repo>/resources/models/default and <repo>/datasets), then the
    // paths this build was configured with.
    const QString exe_dir = QCoreApplication::applicationDirPath();
    moe::ui::StartOptions options;
    options.model_dir = parser.isSet(model)
                            ? parser.value(model)
                            : first_existing({exe_dir + "/../../resources/models/default/config.json",
                                              MOE_DEFAULT_MODEL_DIR "/config.json"})
                                  .section('/', 0, -2);
    options.store_path = parser.isSet(db) ? parser.value(db) : moe::ui::MainWindow::defaultStorePath();
    options.corpus_path = parser.isSet(corpus)
                              ? parser.value(corpus)
                              : first_existing({exe_dir + "/../../datasets/manifest.json", MOE_DEFAULT_CORPUS_DIR "/manifest.json"})
                                    .section('/', 0, -2);

    options.auto_trace = !parser.isSet(no_auto_trace);
    bool ok = false;
    options.auto_trace_tokens = parser.value(auto_tokens).toLongLong(&ok);
    if (!ok || options.auto_trace_tokens < 0) {
        std::fprintf(stderr, "moe-workbench: --auto-trace-tokens needs a number >= 0, not '%s'\n",
                     qPrintable(parser.value(auto_tokens)));
        return 2;
    }

    try {
        options.backend = moe::parse_backend(parser.value(backend).toStdString());
    } catch (const moe::Error& e) {
        std::fprintf(stderr, "moe-workbench: %s\n", e.what());
        return 2;
    }

    moe::ui::MainWindow window;
    window.show();
    window.start(options);
    return app.exec();
}
