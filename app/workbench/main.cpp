// moe-workbench: the GUI. Parses the command line, finds the default model, corpus and
// store, and shows the main window; everything else is in ui/.
//   moe-workbench [--model DIR] [--db FILE] [--corpus PATH]
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <cstdio>
#include <cstdlib>

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

// The command line's options, added to `parser`.
struct Options {
    QCommandLineOption model{
        {"m", "model"}, "Hugging Face model directory (default: the demo model of the build).", "DIR"};
    QCommandLineOption db{
        "db", "Routing store (SQLite; created when absent; default: " + moe::ui::MainWindow::defaultStorePath() + ").",
        "FILE"};
    QCommandLineOption corpus{"corpus", "Corpus to trace (default: the repository's datasets/).", "PATH"};
    QCommandLineOption no_auto_trace{"no-auto-trace", "Do not trace the corpus on start when the store has no runs."};
    QCommandLineOption auto_tokens{"auto-trace-tokens",
                                   "Tokens per domain traced on start when the store has no runs (default 2000).", "N",
                                   "2000"};
    QCommandLineOption backend{"backend", "Where models run: cpu or cuda (default cpu).", "NAME", "cpu"};
};

Options add_options(QCommandLineParser& parser) {
    parser.setApplicationDescription(
        "A workbench for Mixture-of-Experts language models: open a model, trace a corpus through it "
        "and see which experts each domain's tokens are routed to.");
    parser.addHelpOption();
    parser.addVersionOption();
    Options o;
    parser.addOptions({o.model, o.db, o.corpus, o.no_auto_trace, o.auto_tokens, o.backend});
    return o;
}

void name_application() {
    QCoreApplication::setOrganizationName("MoE Workbench");
    QCoreApplication::setApplicationName("moe-workbench");
    QCoreApplication::setApplicationVersion("0.1.0");
}

// Why no window can be opened, or null: on X11 or Wayland without a display to connect to
// (Qt would abort), unless a platform was chosen (QT_QPA_PLATFORM, -platform).
const char* no_display(int argc, char** argv) {
    const auto set = [](const char* var) {
        const char* v = std::getenv(var);
        return v && *v;
    };
    if (set("QT_QPA_PLATFORM")) return nullptr;
    for (int i = 1; i < argc; ++i)
        if (QByteArray(argv[i]) == "-platform") return nullptr;
    if (!set("DISPLAY") && !set("WAYLAND_DISPLAY")) return "DISPLAY and WAYLAND_DISPLAY are not set";
    return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
#ifdef MOE_HAVE_CUDA
    moe::cuda::register_backend();  // --backend cuda, and the model panel's choice
#endif
    // --help and --version print and exit without a display (over ssh, in a script).
    for (int i = 1; i < argc; ++i) {
        const QByteArray a(argv[i]);
        if (a == "-h" || a == "--help" || a == "--help-all" || a == "-?" || a == "-v" || a == "--version") {
            QCoreApplication app(argc, argv);
            name_application();
            QCommandLineParser parser;
            add_options(parser);
            parser.process(app);  // prints and exits
            return 0;
        }
    }
    if (const char* why = no_display(argc, argv)) {
        std::fprintf(stderr,
                     "moe-workbench: no display to open a window on (%s). Run it on a desktop, over ssh -X, or under "
                     "xvfb-run; `moewb` runs the same jobs without a window.\n",
                     why);
        return 2;
    }
    QApplication app(argc, argv);
    name_application();
    QApplication::setApplicationDisplayName("MoE Workbench");

    QCommandLineParser parser;
    const Options o = add_options(parser);
    if (!parser.parse(QCoreApplication::arguments())) {
        std::fprintf(stderr, "moe-workbench: %s See --help.\n", qPrintable(parser.errorText()));
        return 2;
    }

    // Defaults: the embedded model and the corpora next to the executable first
    // (build/app/moe-workbench → <repo>/resources/models/default and <repo>/datasets), then the
    // paths this build was configured with.
    const QString exe_dir = QCoreApplication::applicationDirPath();
    moe::ui::StartOptions options;
    options.model_dir = parser.isSet(o.model) ? parser.value(o.model)
                                              : first_existing({exe_dir + "/../../resources/models/default/config.json",
                                                                MOE_DEFAULT_MODEL_DIR "/config.json"})
                                                    .section('/', 0, -2);
    options.store_path = parser.isSet(o.db) ? parser.value(o.db) : moe::ui::MainWindow::defaultStorePath();
    options.corpus_path =
        parser.isSet(o.corpus)
            ? parser.value(o.corpus)
            : first_existing({exe_dir + "/../../datasets/manifest.json", MOE_DEFAULT_CORPUS_DIR "/manifest.json"})
                  .section('/', 0, -2);

    options.auto_trace = !parser.isSet(o.no_auto_trace);
    bool ok = false;
    options.auto_trace_tokens = parser.value(o.auto_tokens).toLongLong(&ok);
    if (!ok || options.auto_trace_tokens < 0) {
        std::fprintf(stderr, "moe-workbench: --auto-trace-tokens needs a number >= 0, not '%s'\n",
                     qPrintable(parser.value(o.auto_tokens)));
        return 2;
    }

    try {
        options.backend = moe::parse_backend(parser.value(o.backend).toStdString());
    } catch (const moe::Error& e) {
        std::fprintf(stderr, "moe-workbench: %s\n", e.what());
        return 2;
    }

    moe::ui::MainWindow window;
    window.show();
    window.start(options);
    return app.exec();
}
