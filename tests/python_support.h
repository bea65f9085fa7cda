// Running Debian's python3 from a test suite: the tools under tools/ and bench/ are Python
// scripts (tests of the training tools, the PyTorch peer, the corpus checks).
#pragma once

#include <QByteArray>
#include <QProcess>
#include <QStringList>

namespace test_support {

inline const char* const kPython = "/usr/bin/python3";

struct PythonRun {
    int code = -1;  // -1: did not start, crashed or timed out
    QByteArray out, err;
};

// python3 with args in the source tree's root; its exit code, standard output and error.
inline PythonRun run_python(const QStringList& args, int timeout_ms = 120000) {
    QProcess p;
    p.setWorkingDirectory(MOE_SOURCE_DIR);
    p.start(kPython, args);
    if (!p.waitForStarted()) return {};
    if (!p.waitForFinished(timeout_ms)) {
        p.kill();
        p.waitForFinished();
        return {-1, p.readAllStandardOutput(), "timed out: " + p.readAllStandardError()};
    }
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(), p.readAllStandardError()};
}

}  // namespace test_support
