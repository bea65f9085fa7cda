// CsvWriter: RFC 4180 output, streamed. Fields holding a comma, a double quote, CR or LF,
// or leading/trailing spaces are quoted, with quotes doubled; records end with CRLF; numbers
// are written with std::to_chars (shortest text that reads back to the same double/float).
// A file is written as OUT.partial and renamed to OUT by close(), so a failed export never
// leaves a truncated OUT behind. "-" writes to stdout; a path that is there and is not a
// regular file (/dev/stdout, a named pipe) is written as it is, never replaced.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace moe::analysis {

class CsvWriter {
public:
    explicit CsvWriter(const std::string& path);
    ~CsvWriter();  // without close(): the partial file is removed
    CsvWriter(const CsvWriter&) = delete;
    CsvWriter& operator=(const CsvWriter&) = delete;

    CsvWriter& field(std::string_view text);
    CsvWriter& field(const char* text) { return field(std::string_view(text)); }
    CsvWriter& field(int64_t v);
    CsvWriter& field(double v);
    CsvWriter& field(float v);
    CsvWriter& empty();  // an empty field (a missing value)
    void end_row();
    void close();  // flushes, checks for write errors (moe::Error failure), renames into place

private:
    void separator();
    void flush_buffer();

    std::string path_, partial_;
    FILE* file_ = nullptr;
    bool to_stdout_ = false;
    bool direct_ = false;  // written in place: stdout, a device or a pipe
    bool row_started_ = false;
    std::string buf_;
};

}  // namespace moe::analysis
