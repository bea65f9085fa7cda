// Checkpoint: the tensors of a Hugging Face model directory, memory-mapped as
// published — model.safetensors, or shards listed in model.safetensors.index.json.
// TensorSource is the interface the model code binds weights from; a Checkpoint is one,
// random in-memory weights (benchmarks) are another.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace moe {

class TensorSource {
public:
    virtual ~TensorSource() = default;
    virtual const TensorView* find(const std::string& name) const = 0;
    virtual std::vector<std::string> names() const = 0;
    virtual std::string describe() const = 0;  // for messages: the directory or "random weights"
    virtual std::string file_of(const std::string& name) const = 0;  // where a tensor lives
    virtual size_t weight_bytes() const = 0;
    // Name, type and shape only; a source that makes its bytes on request (RandomTensors)
    // answers without making them (data may then be null).
    virtual const TensorView* info(const std::string& name) const { return find(name); }
    // Bytes that finding every tensor would still allocate on the host (a source that makes
    // its bytes on request); 0 for files mapped into memory and tensors already made.
    virtual size_t bytes_to_make() const { return 0; }
};

class SafetensorsFile;

class Checkpoint : public TensorSource {
public:
    // Opens DIR: model.safetensors, or model.safetensors.index.json and its shards, or
    // (when neither) every *.safetensors file in DIR. Validates every file header and
    // that the index and the shards agree.
    explicit Checkpoint(const std::string& dir);
    ~Checkpoint() override;

    const TensorView* find(const std::string& name) const override;
    std::vector<std::string> names() const override;
    std::string describe() const override { return dir_; }
    std::string file_of(const std::string& name) const override;
    size_t weight_bytes() const override { return weight_bytes_; }
    const std::vector<std::string>& files() const { return files_; }

private:
    std::string dir_;
    std::vector<std::string> files_;
    std::vector<std::unique_ptr<SafetensorsFile>> shards_;
    std::map<std::string, std::pair<const TensorView*, size_t>> by_name_;  // tensor -> (view, shard)
    size_t weight_bytes_ = 0;
};

// Writes every tensor of `src` (sorted by name) to one safetensors file at `path`.
void save_safetensors(const TensorSource& src, const std::string& path);

// Owned tensors in memory (random weights for benchmarks, test fixtures).
class MemoryTensors : public TensorSource {
public:
    void add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes);
    const TensorView* find(const std::string& name) const override;
    std::vector<std::string> names() const override;
    std::string describe() const override { return "in-memory weights"; }
    std::string file_of(const std::string&) const override { return "memory"; }
    size_t weight_bytes() const override { return bytes_; }

private:
    struct Entry {
        TensorView view;
        std::vector<uint8_t> bytes;
    };
    std::map<std::string, std::unique_ptr<Entry>> tensors_;
    size_t bytes_ = 0;
};

}  // namespace moe
