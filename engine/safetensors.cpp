// safetensors parsing, validation, memory mapping and writing; see safetensors.h.
#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace moe {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the reference reader's limit

bool parse_dtype(const std::string& s, DType* out) {
    if (s == "F32") *out = DType::f32;
    else if (s == "F16") *out = DType::f16;
    else if (s == "BF16") *out = DType::bf16;
    else if (s == "F8_E4M3") *out = DType::f8_e4m3;
    else return false;
    return true;
}

int64_t json_nonneg_int(const nlohmann::json& v, const std::string& where, const std::string& what) {
    if (!v.is_number_integer() && !v.is_number_unsigned())
        throw_input_error(where, what + " must be a non-negative integer, found " + v.dump());
    if (v.is_number_unsigned()) {
        uint64_t u = v.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            throw_input_error(where, what + " too large: " + v.dump());
        return static_cast<int64_t>(u);
    }
    int64_t x = v.get<int64_t>();
    if (x < 0) throw_input_error(where, what + " must be non-negative, found " + v.dump());
    return x;
}

}  // namespace

std::vector<TensorView> parse_safetensors(const uint8_t* data, size_t size, const std::string& file) {
    if (size < 8)
        throw_input_error(file, "truncated safetensors file: " + std::to_string(size) +
                                    " bytes, expected at least the 8-byte header length");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
    if (n > kMaxHeaderBytes)
        throw_input_error(file, "safetensors header length " + std::to_string(n) + " exceeds the " +
                                    std::to_string(kMaxHeaderBytes) + "-byte limit");
    if (n > size - 8)
        throw_input_error(file, "safetensors header length " + std::to_string(n) +
                                    " runs past the end of the file (" + std::to_string(size) + " bytes)");
    const char* hbegin = reinterpret_cast<const char*>(data + 8);
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(hbegin, hbegin + n);
    } catch (const nlohmann::json::exception& e) {
        throw_input_error(file, std::string("safetensors header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) throw_input_error(file, "safetensors header is not a JSON object");

    const uint8_t* body = data + 8 + n;
    const uint64_t body_size = size - 8 - n;
    std::vector<TensorView> out;
    struct Range {
        uint64_t begin, end;
        size_t index;
    };
    std::vector<Range> ranges;
    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == "__metadata__") {
            if (!it.value().is_object()) throw_input_error(file, "__metadata__ is not an object");
            continue;
        }
        const std::string where = file + ": tensor '" + it.key() + "'";
        const auto& e = it.value();
        if (!e.is_object()) throw_input_error(where, "header entry is not an object");
        if (!e.contains("dtype")) throw_input_error(where, "missing dtype");
        if (!e["dtype"].is_string()) throw_input_error(where, "dtype must be a string, found " + e["dtype"].dump());
        if (!e.contains("shape")) throw_input_error(where, "missing shape");
        if (!e["shape"].is_array()) throw_input_error(where, "shape must be an array, found " + e["shape"].dump());
        if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2)
            throw_input_error(where, "data_offsets must be [begin, end]");
        TensorView t;
        t.name = it.key();
        std::string dt = e["dtype"].get<std::string>();
        if (!parse_dtype(dt, &t.dtype))
            throw_input_error(where, dt.empty() ? std::string("dtype is empty")
                                               : "unsupported dtype " + dt + " (supported: F32, F16, BF16, F8_E4M3)");
        uint64_t numel = 1;
        for (const auto& d : e["shape"]) {
            int64_t x = json_nonneg_int(d, where, "shape dimension");
            t.shape.push_back(x);
            if (x != 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / static_cast<uint64_t>(x))
                throw_input_error(where, "shape " + t.shape_str() + " is too large");
            numel *= static_cast<uint64_t>(x);
        }
        uint64_t b = static_cast<uint64_t>(json_nonneg_int(e["data_offsets"][0], where, "data offset"));
        uint64_t en = static_cast<uint64_t>(json_nonneg_int(e["data_offsets"][1], where, "data offset"));
        if (b > en)
            throw_input_error(where, "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                                         "] end before they begin");
        if (en > body_size)
            throw_input_error(where, "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) +
                                         "] run past the end of the file (data section is " +
                                         std::to_string(body_size) + " bytes; file truncated?)");
        uint64_t expected = numel * dtype_size(t.dtype);
        if (en - b != expected)
            throw_input_error(where, "holds " + std::to_string(en - b) + " bytes, expected " +
                                         std::to_string(expected) + " for " + dt + " " + t.shape_str());
        t.data = body + b;
        t.nbytes = static_cast<size_t>(en - b);
        ranges.push_back({b, en, out.size()});
        out.push_back(std::move(t));
    }
    std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    // Bytes that belong to no tensor are tolerated (each tensor is still well defined);
    // the Hugging Face reader refuses them, but a precise error about a tensor is more
    // useful than one about a gap.
    uint64_t max_end = 0;
    size_t max_index = 0;
    for (const Range& r : ranges) {
        if (r.begin == r.end) continue;  // empty tensors occupy no bytes
        if (r.begin < max_end)
            throw_input_error(file, "tensors '" + out[max_index].name + "' and '" + out[r.index].name +
                                        "' overlap (byte " + std::to_string(r.begin) + " of the data section)");
        max_end = r.end;
        max_index = r.index;
    }
    return out;
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_input_error(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw_input_error(path, "not a regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
        void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            ::close(fd);
            throw_failure(path, std::string("mmap failed: ") + std::strerror(err));
        }
        data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
}

MappedFile::~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : map_(std::make_shared<MappedFile>(path)),
      tensors_(parse_safetensors(map_->data(), map_->size(), path)) {}

void write_safetensors(const std::string& path, const std::vector<const TensorView*>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json header;
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (const TensorView* t : tensors) {
        MOE_ASSERT(t->nbytes == static_cast<size_t>(t->numel()) * dtype_size(t->dtype));
        header[t->name] = {{"dtype", dtype_name(t->dtype)},
                           {"shape", t->shape},
                           {"data_offsets", {offset, offset + t->nbytes}}};
        offset += t->nbytes;
    }
    std::string h = header.dump();
    while (h.size() % 8) h.push_back(' ');
    const std::string tmp = path + ".partial";
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw_failure(tmp, std::string("cannot create: ") + std::strerror(errno));
    uint8_t len[8];
    uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    bool ok = std::fwrite(len, 1, 8, f) == 8 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
    for (const TensorView* t : tensors) ok = ok && std::fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw_failure(path, "write failed (disk full?)");
    }
}

}  // namespace moe
