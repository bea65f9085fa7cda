// Running a program from a test suite (the built moewb, Debian's python3): its exit code,
// standard output and error.
#pragma once

#include <QByteArray>
#include <QProcess>
#include <QString>
#include <QStringList>

namespace test_support {

struct ProcessRun {
    int code = -1;  // -1: did not start, crashed or timed out
    QByteArray out, err;
};

// `program` with `args`, `input` on its standard input, in `dir` (empty: the test's own).
inline ProcessRun run_process(const QString& program, const QStringList& args, int timeout_ms = 120000,
                              const QByteArray& input = {}, const QString& dir = {}) {
    QProcess p;
    if (!dir.isEmpty()) p.setWorkingDirectory(dir);
    p.start(program, args);
    if (!p.waitForStarted()) return {};
    p.write(input);
    p.closeWriteChannel();
    if (!p.waitForFinished(timeout_ms)) {
        p.kill();
        p.waitForFinished();
        return {-1, p.readAllStandardOutput(), "timed out: " + p.readAllStandardError()};
    }
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(), p.readAllStandardError()};
}

// The moewb this build made.
inline ProcessRun run_moewb(const QStringList& args, const QByteArray& input = {}, int timeout_ms = 120000) {
    return run_process(QStringLiteral(MOE_BINARY_DIR "/app/moewb"), args, timeout_ms, input);
}

}  // namespace test_support
