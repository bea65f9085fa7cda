// Running Debian's python3 from a test suite: the tools under tools/ and bench/ are Python
// scripts (tests of the training tools, the PyTorch peer, the corpus checks).
#pragma once

#include "tests/process_support.h"

namespace test_support {

inline const char* const kPython = "/usr/bin/python3";

using PythonRun = ProcessRun;

// python3 with args in the source tree's root; its exit code, standard output and error.
inline PythonRun run_python(const QStringList& args, int timeout_ms = 120000) {
    return run_process(kPython, args, timeout_ms, {}, MOE_SOURCE_DIR);
}

}  // namespace test_support
