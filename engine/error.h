// Error types of the engine: every runtime or user error is a moe::Error carrying
// what went wrong and where (file, tensor, byte offset), with expected vs found.
// Input errors (bad file, bad argument, unsupported model) are distinguished from
// failures of the machine so the CLI can exit 2 for the first and 1 for the second.
// Bugs are not errors: MOE_ASSERT aborts with file, line and expression.
#pragma once

#include <stdexcept>
#include <string>

namespace moe {

enum class ErrorKind {
    input,    // the user's file, argument or text is wrong: CLI exit code 2
    failure,  // something failed that the input did not cause (I/O, memory): exit 1
};

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& message)
        : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const { return kind_; }

private:
    ErrorKind kind_;
};

// Thrown for bad input; `where` names the file/tensor/argument, `what` says what is wrong.
[[noreturn]] void throw_input_error(const std::string& where, const std::string& what);
[[noreturn]] void throw_failure(const std::string& where, const std::string& what);

// Adds context at a stage boundary: "loading weights: <inner message>", same kind.
[[noreturn]] void rethrow_with_context(const Error& inner, const std::string& context);

[[noreturn]] void assert_fail(const char* expr, const char* file, int line);

}  // namespace moe

#define MOE_ASSERT(expr) ((expr) ? (void)0 : ::moe::assert_fail(#expr, __FILE__, __LINE__))
