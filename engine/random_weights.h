// Random weights of the true shapes of a config, in memory: for benchmarks of shapes
// whose checkpoints are not at hand, and for checkpoints that tests and demos write.
// Values are uniform with variance 1/fan_in (so activations stay O(1)); norms are about 1.
// With DType f8_e4m3 the linear weights are FP8 with 128x128 block scales (as DeepSeek-V3 is
// published) and embeddings, norms and routers BF16.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/model_config.h"

namespace moe {

// Every tensor made at once; refused (input error) where the host's available memory cannot
// hold them.
std::shared_ptr<MemoryTensors> make_random_tensors(const ModelConfig& config, DType dtype, uint64_t seed);
// The bytes of a config's random weights in `dtype` (FP8: the linears' bytes and their
// scales), without making any.
size_t random_weight_bytes(const ModelConfig& config, DType dtype);

// How a tensor's values are made (engine/random_values.h): element i is
// random_values::value(seed, i, scale, offset), stored in the tensor's type.
struct RandomRecipe {
    float scale = 0, offset = 0;
    uint64_t seed = 0;
};

// The same weights, each tensor made on its first find() (so a model that reads only some
// of them, or a backend that makes them where it keeps them, never holds the rest on the
// host). The CUDA backend generates a tensor still pending() on the device, from the same
// recipe, into exactly these bytes. FP8 linears are made at construction, refused (input
// error) where the host's available memory cannot hold them.
class RandomTensors : public TensorSource {
public:
    RandomTensors(const ModelConfig& config, DType dtype, uint64_t seed);
    const TensorView* find(const std::string& name) const override;
    std::vector<std::string> names() const override;
    std::string describe() const override { return describe_; }  // "random weights [of CONFIG]"
    std::string file_of(const std::string&) const override { return "random weights"; }
    size_t weight_bytes() const override { return bytes_; }
    size_t bytes_to_make() const override;

    // Name, type and shape without making the bytes (data is null while pending).
    const TensorView* shape_of(const std::string& name) const;
    const TensorView* info(const std::string& name) const override { return shape_of(name); }
    // The recipe of a tensor whose bytes are not made yet; null once made (or absent).
    const RandomRecipe* pending(const std::string& name) const;

private:
    struct Entry {
        TensorView view;
        std::optional<RandomRecipe> recipe;
        std::vector<uint8_t> bytes;
    };
    std::map<std::string, std::unique_ptr<Entry>> tensors_;
    size_t bytes_ = 0;
    std::string describe_;
    mutable std::mutex mutex_;
};

}  // namespace moe
