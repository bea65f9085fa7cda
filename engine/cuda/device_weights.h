// A checkpoint's tensors on the device, as stored (BF16 stays BF16): one device allocation
// holding every tensor asked for (each at a 256-byte aligned offset), filled from the
// memory-mapped safetensors through one pinned staging buffer, double-buffered, so no second
// full host copy is made. Host code only in this header.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/tensor.h"

namespace moe::cuda {

struct DeviceTensor {
    DType dtype = DType::f32;
    std::vector<int64_t> shape;
    std::size_t offset = 0, nbytes = 0;
};

class DeviceWeights {
public:
    // Uploads the named tensors of `source` (all of them when `names` is empty). Before any
    // allocation, refuses with an input error naming the bytes needed and free when the
    // device has too little memory. `staging_bytes`: the pinned buffer's size.
    DeviceWeights(const TensorSource& source, const std::vector<std::string>& names,
                  std::size_t staging_bytes = std::size_t(64) << 20);
    ~DeviceWeights();
    DeviceWeights(const DeviceWeights&) = delete;
    DeviceWeights& operator=(const DeviceWeights&) = delete;

    const void* data(const std::string& name) const;  // device pointer; error naming an absent tensor
    const DeviceTensor& tensor(const std::string& name) const;
    std::size_t bytes() const { return bytes_; }  // device memory held
    // The bytes of one tensor copied back to the host (tests).
    std::vector<unsigned char> download(const std::string& name) const;

private:
    std::map<std::string, DeviceTensor> tensors_;
    unsigned char* base_ = nullptr;
    std::size_t bytes_ = 0;
};

}  // namespace moe::cuda
