// Opening Hugging Face checkpoint directories; see checkpoint.h.
#include "engine/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "engine/error.h"
#include "engine/safetensors.h"

namespace moe {

namespace fs = std::filesystem;

namespace {

// Reads model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: file}}.
std::map<std::string, std::string> read_index(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw_input_error(path.string(), "cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
        throw_input_error(path.string(), std::string("not valid JSON: ") + e.what());
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
        throw_input_error(path.string(), "missing the 'weight_map' object");
    std::map<std::string, std::string> map;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string()) throw_input_error(path.string(), "weight_map entry '" + it.key() + "' is not a file name");
        std::string file = it.value().get<std::string>();
        if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
            throw_input_error(path.string(), "weight_map entry '" + it.key() + "' names '" + file +
                                                 "', which is not a file name inside the model directory");
        map[it.key()] = file;
    }
    return map;
}

}  // namespace

Checkpoint::Checkpoint(const std::string& dir) : dir_(dir) {
    fs::path d(dir);
    std::error_code ec;
    if (!fs::is_directory(d, ec)) throw_input_error(dir, "not a directory (expected a Hugging Face model directory)");
    std::map<std::string, std::string> index;
    fs::path index_path = d / "model.safetensors.index.json";
    if (fs::exists(d / "model.safetensors", ec)) {
        files_.push_back("model.safetensors");
    } else if (fs::exists(index_path, ec)) {
        index = read_index(index_path);
        std::set<std::string> uniq;
        for (const auto& [name, file] : index) uniq.insert(file);
        files_.assign(uniq.begin(), uniq.end());
        for (const auto& f : files_)
            if (!fs::exists(d / f, ec))
                throw_input_error((d / f).string(), "shard named in model.safetensors.index.json is missing");
    } else {
        for (const auto& e : fs::directory_iterator(d, ec))
            if (e.path().extension() == ".safetensors") files_.push_back(e.path().filename().string());
        std::sort(files_.begin(), files_.end());
    }
    if (files_.empty()) throw_input_error(dir, "no model.safetensors, model.safetensors.index.json or *.safetensors file");

    for (size_t s = 0; s < files_.size(); ++s) {
        shards_.push_back(std::make_unique<SafetensorsFile>((d / files_[s]).string()));
        for (const TensorView& t : shards_.back()->tensors()) {
            const std::string where = (d / files_[s]).string() + ": tensor '" + t.name + "'";
            if (by_name_.count(t.name))
                throw_input_error(where, "also stored in " + files_[by_name_[t.name].second]);
            if (!index.empty()) {
                auto it = index.find(t.name);
                if (it == index.end()) throw_input_error(where, "not listed in model.safetensors.index.json");
                if (it->second != files_[s])
                    throw_input_error(where, "the index places it in " + it->second);
            }
            by_name_[t.name] = {&t, s};
            weight_bytes_ += t.nbytes;
        }
    }
    for (const auto& [name, file] : index)
        if (!by_name_.count(name))
            throw_input_error((d / file).string(), "tensor '" + name + "' listed in the index is not in this shard");
}

Checkpoint::~Checkpoint() = default;

const TensorView* Checkpoint::find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second.first;
}

std::vector<std::string> Checkpoint::names() const {
    std::vector<std::string> n;
    for (const auto& [name, v] : by_name_) n.push_back(name);
    return n;
}

std::string Checkpoint::file_of(const std::string& name) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) return dir_;
    return (fs::path(dir_) / files_[it->second.second]).string();
}

void save_safetensors(const TensorSource& src, const std::string& path) {
    std::vector<const TensorView*> views;
    for (const std::string& name : src.names()) views.push_back(src.find(name));
    write_safetensors(path, views, {{"format", "pt"}});
}

void MemoryTensors::add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
    auto e = std::make_unique<Entry>();
    e->bytes = std::move(bytes);
    e->view.name = name;
    e->view.dtype = dtype;
    e->view.shape = std::move(shape);
    e->view.data = e->bytes.data();
    e->view.nbytes = e->bytes.size();
    MOE_ASSERT(static_cast<size_t>(e->view.numel()) * dtype_size(dtype) == e->bytes.size());
    bytes_ += e->bytes.size();
    tensors_[name] = std::move(e);
}

const TensorView* MemoryTensors::find(const std::string& name) const {
    auto it = tensors_.find(name);
    return it == tensors_.end() ? nullptr : &it->second->view;
}

std::vector<std::string> MemoryTensors::names() const {
    std::vector<std::string> n;
    for (const auto& [name, e] : tensors_) n.push_back(name);
    return n;
}

}  // namespace moe
