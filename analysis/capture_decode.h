// Decoding the routing that SGLang and vLLM servers return (docs/capture.md): base64, the
// raw little-endian integer arrays of SGLang's meta_info.routed_experts, vLLM's base64 .npy
// files, the layer axis (absolute layer or MoE-layer ordinal, detected or given), and the
// checks that turn a payload into the per-layer [T, k] arrays of a DocumentRouting. Only
// expert ids: the engines return no gate weights and no router entropy. No HTTP here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/store_types.h"
#include "engine/model_config.h"

namespace moe::analysis {

enum class CaptureEngine { sglang, vllm };
// absolute: payload layer i is checkpoint layer i (dense layers present as zero rows);
// moe: payload layer j is the j-th MoE layer (zero rows, if any, at the end).
enum class LayerAxis { auto_detect, absolute, moe };

const char* capture_engine_name(CaptureEngine e);
CaptureEngine parse_capture_engine(const std::string& s, const std::string& where);  // "sglang" | "vllm"
const char* layer_axis_name(LayerAxis a);
LayerAxis parse_layer_axis(const std::string& s, const std::string& where);  // "auto" | "absolute" | "moe"

// Standard base64 (RFC 4648, '=' padding required when the length is not a multiple of 4
// would be; whitespace refused). Input error naming `where` on a bad character or a length
// that cannot be whole ("truncated base64").
std::vector<uint8_t> base64_decode(std::string_view text, const std::string& where);
std::string base64_encode(const void* data, size_t bytes);

// A routing payload as the engine shaped it: ids [rows, layers, k] as int32.
struct RoutingPayload {
    int64_t rows = 0, layers = 0, k = 0;
    std::vector<int32_t> ids;  // [rows, layers, k]
};

// SGLang: raw little-endian integers of `dtype` ("int32" when empty, "int64", "int16",
// "uint16", "uint8", "int8"); the layer count is the model's num_hidden_layers or, for a
// compact payload, its number of MoE layers, told apart by the element count.
RoutingPayload decode_raw_routing(std::string_view base64, const std::string& dtype, int64_t expected_rows,
                                  const ModelConfig& cfg, const std::string& where);
// vLLM: a base64 NumPy .npy file of a 3-d little-endian integer array [rows, layers, k].
RoutingPayload decode_npy_routing(std::string_view base64, const std::string& where);

// Which layout a payload of `cfg`'s model has. An explicit axis is checked, not trusted:
// rows of dense layers must be zero. auto: the layout whose zero layers and MoE layers are
// consistent with the payload; an input error when neither is, or when both are and they
// differ (e.g. top-1 routing, where a zero row may be expert 0), asking for --layer-axis.
LayerAxis resolve_layer_axis(const RoutingPayload& p, const ModelConfig& cfg, LayerAxis requested,
                             const std::string& where);

// Appends rows [0, p.rows) of the payload to `layers` (the run's MoE layers in order, each
// with its `layer` and `k` set), after checking: k equals num_experts_per_tok, every id of a
// MoE layer is in [0, n_routed_experts) with no repeat within a token, every row of a dense
// layer is zero. Errors name `where`, the token row and the layer. Nothing is appended on
// error.
void append_routing(const RoutingPayload& p, const ModelConfig& cfg, LayerAxis axis,
                    std::vector<DocumentRouting::Layer>& layers, const std::string& where);

// One parsed engine response: the generated token ids (when the response has them), the
// count of generated tokens, and the routing rows of prompt + output − 1 positions.
struct ParsedResponse {
    CaptureEngine engine = CaptureEngine::sglang;
    std::vector<int32_t> output_ids;  // empty when the response gives only a count
    int64_t n_output = 0;
    std::optional<int64_t> n_prompt;  // as the server reports it, when it does
    RoutingPayload routing;           // [prompt + output − 1, layers, k]
    std::string server_message;       // an error message the body carried
};

// Parses a response body of `engine` (SGLang /generate, vLLM /v1/completions) for a request
// of `n_prompt` prompt tokens. Input errors name `where`; a body without the routing field
// says which server flag to set.
ParsedResponse parse_engine_response(CaptureEngine engine, std::string_view body, int64_t n_prompt,
                                     const ModelConfig& cfg, const std::string& where);
// The engine of a saved response object (JSON text): SGLang when it has meta_info, vLLM when
// it has choices; nullopt when neither.
std::optional<CaptureEngine> detect_engine(std::string_view body);

}  // namespace moe::analysis
