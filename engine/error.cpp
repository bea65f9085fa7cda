// Error construction helpers; see error.h.
#include "engine/error.h"

#include <cstdio>
#include <cstdlib>

namespace moe {

void throw_input_error(const std::string& where, const std::string& what) {
    throw Error(ErrorKind::input, where.empty() ? what : where + ": " + what);
}

void throw_failure(const std::string& where, const std::string& what) {
    throw Error(ErrorKind::failure, where.empty() ? what : where + ": " + what);
}

void rethrow_with_context(const Error& inner, const std::string& context) {
    throw Error(inner.kind(), context + ": " + inner.what());
}

void assert_fail(const char* expr, const char* file, int line) {
    std::fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, expr);
    std::abort();
}

}  // namespace moe
