// DeviceWeights; see device_weights.h.
#include "engine/cuda/device_weights.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstring>

#include "engine/cuda/device.h"
#include "engine/error.h"
#include "engine/random_values.h"
#include "engine/random_weights.h"

namespace moe::cuda {

namespace {

constexpr std::size_t kAlign = 256;

// Pinned host memory and the events that say when a half of it may be refilled.
struct Staging {
    unsigned char* host = nullptr;
    cudaEvent_t done[2] = {nullptr, nullptr};
    cudaStream_t stream = nullptr;
    explicit Staging(std::size_t bytes) {
        try {  // a constructor that throws runs no destructor
            check(cudaMallocHost(&host, bytes), "allocating the pinned staging buffer");
            for (auto& e : done) check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "creating an event");
            check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "creating the upload stream");
        } catch (...) {
            release();
            throw;
        }
    }
    ~Staging() { release(); }
    Staging(const Staging&) = delete;
    Staging& operator=(const Staging&) = delete;

private:
    void release() noexcept {
        if (stream) cudaStreamSynchronize(stream);
        for (auto& e : done)
            if (e) cudaEventDestroy(e);
        if (stream) cudaStreamDestroy(stream);
        cudaFreeHost(host);
    }
};

// A random tensor made where it is kept (engine/random_values.h): the bytes the host makes.
__global__ void random_fill_kernel(int64_t n, int dtype, float scale, float offset, uint64_t seed, void* out) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float v = random_values::value(seed, static_cast<uint64_t>(i), scale, offset);
        if (dtype == 0) {
            static_cast<float*>(out)[i] = v;
        } else if (dtype == 1) {
            static_cast<uint16_t*>(out)[i] = random_values::to_bf16(v);
        } else {
            static_cast<__half*>(out)[i] = __float2half_rn(v);
        }
    }
}

void random_fill(const TensorView& shape, const RandomRecipe& r, void* out, cudaStream_t s) {
    const int dtype = shape.dtype == DType::f32 ? 0 : shape.dtype == DType::bf16 ? 1 : shape.dtype == DType::f16 ? 2 : -1;
    if (dtype < 0) throw Error(ErrorKind::input, "random weights of type " + std::string(dtype_name(shape.dtype)) + " are made on the host");
    const int64_t n = shape.numel();
    if (n == 0) return;
    const auto blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 65536));
    random_fill_kernel<<<blocks, 256, 0, s>>>(n, dtype, r.scale, r.offset, r.seed, out);
    check(cudaGetLastError(), "launching the random weight fill");
}

}  // namespace

DeviceWeights::DeviceWeights(const TensorSource& source, const std::vector<std::string>& names, std::size_t staging_bytes) {
    const std::vector<std::string> wanted = names.empty() ? source.names() : names;
    // Random weights still to be made are made here, on the device, not on the host.
    const auto* random = dynamic_cast<const RandomTensors*>(&source);
    std::size_t total = 0;
    for (const std::string& n : wanted) {
        const TensorView* v = random ? random->shape_of(n) : source.find(n);
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
        const DeviceTensor& t = tensors_.at(n);
        if (const RandomRecipe* r = random ? random->pending(n) : nullptr) {  // FP8 ones are made already
            random_fill(*random->shape_of(n), *r, base_ + t.offset, st.stream);
            continue;
        }
        const TensorView* v = source.find(n);
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
