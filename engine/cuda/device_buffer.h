// Device memory owned by a scope, and copies to and from it, for the .cu files' host code.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

#include "engine/cuda/device.h"

namespace moe::cuda {

template <typename T>
struct Buffer {
    T* ptr = nullptr;
    explicit Buffer(std::size_t n) {
        if (n) check(cudaMalloc(&ptr, n * sizeof(T)), "allocating device memory");
    }
    ~Buffer() { cudaFree(ptr); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
};

template <typename T>
void upload(Buffer<T>& b, const T* src, std::size_t n) {
    if (n) check(cudaMemcpy(b.ptr, src, n * sizeof(T), cudaMemcpyHostToDevice), "copying to the device");
}

template <typename T>
void download(std::vector<T>& dst, const Buffer<T>& b, std::size_t n) {
    dst.resize(n);
    if (n) check(cudaMemcpy(dst.data(), b.ptr, n * sizeof(T), cudaMemcpyDeviceToHost), "copying from the device");
}

}  // namespace moe::cuda
