// Reader of the safetensors format (Hugging Face): 8-byte little-endian header
// length n, n bytes of JSON {name: {dtype, shape, data_offsets}, "__metadata__": {...}},
// then the tensor bytes (offsets relative to the end of the header). Files are
// memory-mapped; nothing is copied. Every header field is validated: a truncated or
// malformed file is a moe::Error naming the file, the tensor and the byte offset.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace moe {

// Parses and validates a safetensors image held in memory (`data`, `size` bytes).
// Returned views point into `data`. `file` names the source in error messages.
std::vector<TensorView> parse_safetensors(const uint8_t* data, size_t size, const std::string& file);

class MappedFile {
public:
    explicit MappedFile(const std::string& path);  // read-only mmap; throws on failure
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// One memory-mapped .safetensors file and its validated tensor table.
class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::string& path);
    const std::string& path() const { return map_->path(); }
    const std::vector<TensorView>& tensors() const { return tensors_; }
    size_t file_bytes() const { return map_->size(); }

private:
    std::shared_ptr<MappedFile> map_;
    std::vector<TensorView> tensors_;
};

// Writes a safetensors file of the given tensors (name, dtype, shape, bytes of each view;
// header padded with spaces to 8 bytes, tensors in the given order). Writes to a
// temporary name and renames, so a failed write leaves no half-written file.
void write_safetensors(const std::string& path, const std::vector<const TensorView*>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace moe
