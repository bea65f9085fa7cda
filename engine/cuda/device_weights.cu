// DeviceWeights; see device_weights.h.
#include "engine/cuda/device_weights.h"

#include <cuda_runtime.h>

#include <cstring>

#include "engine/cuda/device.h"
#include "engine/error.h"

namespace moe::cuda {

namespace {

constexpr std::size_t kAlign = 256;

// Pinned host memory and the events that say when a half of it may be refilled.
struct Staging {
    unsigned char* host = nullptr;
    cudaEvent_t done[2] = {nullptr, nullptr};
    cudaStream_t stream = nullptr;
    explicit Staging(std::size_t bytes) {
        check(cudaMallocHost(&host, bytes), "allocating the pinned staging buffer");
        for (auto& e : done) check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating an event");
        check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "creating the upload stream");
    }
    ~Staging() {
        if (stream) cudaStreamSynchronize(stream);
        for (auto& e : done)
            if (e) cudaEventDestroy(e);
        if (stream) cudaStreamDestroy(stream);
        cudaFreeHost(host);
    }
};

}  // namespace

DeviceWeights::DeviceWeights(const TensorSource& source, const std::vector<std::string>& names, std::size_t staging_bytes) {
    const std::vector<std::string> wanted = names.empty() ? source.names() : names;
    std::size_t total = 0;
    for (const std::string& n : wanted) {
        const TensorView* v = source.find(n);
        if (!v) throw_input_error(source.describe(), "has no tensor " + n);
        DeviceTensor t{v->dtype, v->shape, total, v->nbytes};
        tensors_[n] = t;
        total += (v->nbytes + kAlign - 1) / kAlign * kAlign;
    }
    require_device_memory(total, source.describe(), "its weights");
    if (total) check(cudaMalloc(&base_, total), "allocating device memory for the weights");
    bytes_ = total;

    // Fill: the two halves of the staging buffer alternate; a half is refilled once the copy
    // that last read it has finished.
    const std::size_t half = std::max<std::size_t>(staging_bytes / 2, kAlign);
    Staging st(2 * half);
    int turn = 0;
    bool used[2] = {false, false};
    for (const std::string& n : wanted) {
        const TensorView* v = source.find(n);
        const DeviceTensor& t = tensors_.at(n);
        const auto* src = static_cast<const unsigned char*>(v->data);
        for (std::size_t done = 0; done < v->nbytes;) {
            const std::size_t chunk = std::min(half, v->nbytes - done);
            if (used[turn]) check(cudaEventSynchronize(st.done[turn]), "waiting for an upload");
            unsigned char* slot = st.host + static_cast<std::size_t>(turn) * half;
            std::memcpy(slot, src + done, chunk);
            check(cudaMemcpyAsync(base_ + t.offset + done, slot, chunk, cudaMemcpyHostToDevice, st.stream),
                  "copying weights to the device");
            check(cudaEventRecord(st.done[turn], st.stream), "recording an upload");
            used[turn] = true;
            turn ^= 1;
            done += chunk;
        }
    }
    check(cudaStreamSynchronize(st.stream), "finishing the weight upload");
}

DeviceWeights::~DeviceWeights() { cudaFree(base_); }

const DeviceTensor& DeviceWeights::tensor(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) throw Error(ErrorKind::input, "no tensor " + name + " on the device");
    return it->second;
}

const void* DeviceWeights::data(const std::string& name) const { return base_ + tensor(name).offset; }

std::vector<unsigned char> DeviceWeights::download(const std::string& name) const {
    const DeviceTensor& t = tensor(name);
    std::vector<unsigned char> out(t.nbytes);
    if (t.nbytes) check(cudaMemcpy(out.data(), base_ + t.offset, t.nbytes, cudaMemcpyDeviceToHost), "copying weights back");
    return out;
}

}  // namespace moe::cuda
