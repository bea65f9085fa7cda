// RFC 4180 writer; see csv_writer.h.
#include "analysis/csv_writer.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "engine/error.h"

namespace moe::analysis {

namespace {
constexpr size_t kFlushBytes = size_t{1} << 20;
}

CsvWriter::CsvWriter(const std::string& path) : path_(path) {
    namespace fs = std::filesystem;
    if (path.empty()) throw Error(ErrorKind::input, "the CSV file's name is empty");
    std::error_code ec;
    const fs::file_status st = path == "-" ? fs::file_status() : fs::status(path, ec);
    if (path == "-") {
        to_stdout_ = direct_ = true;
        file_ = stdout;
    } else if (fs::is_directory(st)) {
        throw_input_error(path, "is a directory: give the CSV file's name");
    } else if (fs::exists(st) && !fs::is_regular_file(st)) {
        // A device or a pipe: written to, not replaced by a renamed file.
        direct_ = true;
        file_ = std::fopen(path.c_str(), "wb");
        if (!file_) throw_input_error(path, std::string("cannot write: ") + std::strerror(errno));
    } else {
        partial_ = path + ".partial";
        file_ = std::fopen(partial_.c_str(), "wb");
        if (!file_) throw_input_error(path, std::string("cannot write: ") + std::strerror(errno));
    }
    buf_.reserve(kFlushBytes + 4096);
}

CsvWriter::~CsvWriter() {
    if (file_ && !to_stdout_) {
        std::fclose(file_);
        if (!direct_) std::remove(partial_.c_str());
    }
}

void CsvWriter::flush_buffer() {
    if (buf_.empty()) return;
    if (std::fwrite(buf_.data(), 1, buf_.size(), file_) != buf_.size())
        throw_failure(path_, std::string("writing failed: ") + std::strerror(errno));
    buf_.clear();
}

void CsvWriter::separator() {
    if (row_started_) buf_ += ',';
    row_started_ = true;
}

CsvWriter& CsvWriter::field(std::string_view s) {
    separator();
    const bool quote = s.find_first_of(",\"\r\n") != std::string_view::npos ||
                       (!s.empty() && (s.front() == ' ' || s.back() == ' ' || s.front() == '\t' || s.back() == '\t'));
    if (!quote) {
        buf_ += s;
        return *this;
    }
    buf_ += '"';
    for (char c : s) {
        if (c == '"') buf_ += '"';
        buf_ += c;
    }
    buf_ += '"';
    return *this;
}

namespace {

// Shortest text that reads back as the same number.
template <class T>
void append_number(std::string& buf, T v) {
    char tmp[64];
    auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
    buf.append(tmp, r.ptr);
}

}  // namespace

CsvWriter& CsvWriter::field(int64_t v) {
    separator();
    append_number(buf_, v);
    return *this;
}

CsvWriter& CsvWriter::field(double v) {
    separator();
    append_number(buf_, v);
    return *this;
}

CsvWriter& CsvWriter::field(float v) {
    separator();
    append_number(buf_, v);
    return *this;
}

CsvWriter& CsvWriter::empty() {
    separator();
    return *this;
}

void CsvWriter::end_row() {
    buf_ += "\r\n";
    row_started_ = false;
    if (buf_.size() >= kFlushBytes) flush_buffer();
}

void CsvWriter::close() {
    flush_buffer();
    if (std::fflush(file_) != 0) throw_failure(path_, std::string("writing failed: ") + std::strerror(errno));
    if (to_stdout_) {
        file_ = nullptr;
        return;
    }
    const int rc = std::fclose(file_);
    file_ = nullptr;
    if (rc != 0) {
        if (!direct_) std::remove(partial_.c_str());
        throw_failure(path_, std::string("writing failed: ") + std::strerror(errno));
    }
    if (direct_) return;
    std::error_code ec;
    std::filesystem::rename(partial_, path_, ec);
    if (ec) {
        std::remove(partial_.c_str());
        throw_failure(path_, "cannot move the finished file into place: " + ec.message());
    }
}

}  // namespace moe::analysis
