// What the libFuzzer targets share: a failed invariant aborts (libFuzzer reports it as a
// crash with the input), and a parser may only refuse input with a moe::Error of kind input.
#pragma once

#include <cstdlib>

#include "engine/error.h"

namespace fuzz {

inline void require(bool ok) {
    if (!ok) std::abort();
}

// Runs f: true when it returns, false when it throws an input error; any other exception, or
// an error of another kind, is a finding.
template <class F>
bool input_error_or_ok(F&& f) {
    try {
        f();
        return true;
    } catch (const moe::Error& e) {
        require(e.kind() == moe::ErrorKind::input);
        return false;
    }
}

}  // namespace fuzz
