#!/usr/bin/python3
"""Independent float64 NumPy reference of the DeepSeek-V2 / V2-Lite / V3 forward pass
(model_type "deepseek_v2" and "deepseek_v3"): Multi-head Latent Attention with YaRN, softmax
greedy / group-limited-greedy and sigmoid noaux_tc routing, shared experts, FP8 (e4m3fn,
128x128 block scales) weights, plus the engine's expert-mask semantics extended to groups.

Matches DeepSeek's Hugging Face remote code (modeling_deepseek.py of DeepSeek-V2 / V3, "RC") and
../shared/model-spec-v2v3.md. Where DeepSeek's own inference/model.py ("DS3") differs, the RC is
followed and the difference is noted next to the code. It is an oracle, not a fast
implementation: reductions run in a fixed sequential order and transcendentals go through
Python's math module (helpers shared with deepseek_moe_ref.py), so results do not depend on BLAS.

Command line (prints JSON with logits, routing, gate weights, selection scores, groups):
  /usr/bin/python3 tests/reference/deepseek_v2v3_ref.py <model_dir> --ids 0,5,7 [--mask SPEC] [--mode drop]
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_moe_ref as base  # noqa: E402  (fixed-order ops and the mask grammar)

seq_sum, linear, rms_norm, silu, softmax, mlp = (base.seq_sum, base.linear, base.rms_norm,
                                                 base.silu, base.softmax, base.mlp)
ExpertMask = base.ExpertMask
_exp, _cos, _sin = base._exp, base._cos, base._sin

# q_a_layernorm / kv_a_layernorm are built as RMSNorm(dim) with the class default eps 1e-6 in RC,
# TF3 and DS3 alike (rms_norm_eps is NOT passed to them); the other norms use rms_norm_eps.
LATENT_NORM_EPS = 1e-6

# ---------------------------------------------------------------------------------------------
# float8 e4m3fn (1 sign, 4 exponent bits with bias 7, 3 mantissa bits; no infinities;
# 0x7F / 0xFF are NaN; largest finite 0x7E = 448)
# ---------------------------------------------------------------------------------------------


def _e4m3_value(code):
    sign = -1.0 if code & 0x80 else 1.0
    e, m = (code >> 3) & 0xF, code & 0x7
    if e == 0xF and m == 0x7:
        return math.nan
    if e == 0:
        return sign * (m / 8.0) * 2.0 ** -6          # subnormal
    return sign * (1.0 + m / 8.0) * 2.0 ** (e - 7)


E4M3_TABLE = np.array([_e4m3_value(c) for c in range(256)])   # [256] code -> float64
E4M3_MAX = 448.0
_E4M3_POS = E4M3_TABLE[:0x7F]                                   # codes 0..126, increasing


def e4m3_decode(codes):
    """uint8 codes (any shape) -> float64 values."""
    return E4M3_TABLE[np.asarray(codes, dtype=np.uint8)]


def e4m3_encode(x):
    """float64 (any shape) -> uint8 e4m3fn codes: round to nearest, ties to the even code
    (as torch's .to(torch.float8_e4m3fn)); magnitudes above 448 saturate to 448 (callers scale
    so this never happens); NaN input is an error."""
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("e4m3_encode: NaN input")
    a = np.minimum(np.abs(x), E4M3_MAX).ravel()
    hi = np.searchsorted(_E4M3_POS, a, side="left")             # _E4M3_POS[hi-1] < a <= _E4M3_POS[hi]
    lo = np.maximum(hi - 1, 0)
    d_lo, d_hi = a - _E4M3_POS[lo], _E4M3_POS[hi] - a
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo).astype(np.uint8)
    code = np.where(np.signbit(x.ravel()) & (code != 0), code | 0x80, code).astype(np.uint8)
    return code.reshape(x.shape)


# ---------------------------------------------------------------------------------------------
# safetensors reading (F64, F32, F16, BF16, F8_E4M3) and FP8 block dequantisation
# ---------------------------------------------------------------------------------------------

_ELEM = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1}


def read_safetensors(path):
    """Returns ({name: float64 ndarray}, {name: dtype string}) for one .safetensors file.
    F8_E4M3 tensors come back decoded but NOT yet multiplied by their block scales."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(data)} bytes)")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    start = 8 + n
    arrays, dtypes = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = info["dtype"], [int(s) for s in info["shape"]]
        if dtype not in _ELEM:
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {dtype}")
        begin, end = info["data_offsets"]
        count = int(np.prod(shape)) if shape else 1
        if count * _ELEM[dtype] != end - begin or start + end > len(data):
            raise ValueError(f"{path}: tensor '{name}' spans bytes [{begin}, {end}), expected "
                             f"{count * _ELEM[dtype]} bytes inside the file")
        raw = data[start + begin: start + end]
        if dtype == "BF16":
            halves = np.frombuffer(raw, dtype="<u2", count=count)
            arr = (halves.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        elif dtype == "F8_E4M3":
            arr = e4m3_decode(np.frombuffer(raw, dtype=np.uint8, count=count))
        else:
            arr = np.frombuffer(raw, dtype={"F64": "<f8", "F32": "<f4", "F16": "<f2"}[dtype],
                                count=count).astype(np.float64)
        arrays[name] = arr.reshape(shape)
        dtypes[name] = dtype
    return arrays, dtypes


def dequantize_fp8(arrays, dtypes, block=(128, 128)):
    """Replaces every F8_E4M3 weight W by W[m, n] · S[m // b0, n // b1] (DS3 kernel.py
    weight_dequant: a multiply, the stored `<name>_scale_inv` already is the inverse scale),
    S = `<name>_scale_inv` [ceil(out/b0), ceil(in/b1)] float32; edge blocks are partial. Drops
    the scale tensors. An F8 tensor without scale, or a scale without F8 partner, is an error."""
    b0, b1 = block
    for name in [n for n in arrays if n.endswith("_scale_inv")]:
        wname = name[:-len("_scale_inv")]
        if dtypes.get(wname) != "F8_E4M3":
            raise ValueError(f"scale '{name}' has no F8_E4M3 partner '{wname}'")
        w, s = arrays[wname], arrays.pop(name)
        if w.ndim != 2:
            raise ValueError(f"FP8 tensor '{wname}' is not 2-D")
        out_f, in_f = w.shape
        want = (-(-out_f // b0), -(-in_f // b1))
        if tuple(s.shape) != want:
            raise ValueError(f"scale '{name}' has shape {list(s.shape)}, expected {list(want)}")
        full = np.repeat(np.repeat(s, b0, axis=0), b1, axis=1)[:out_f, :in_f]
        if np.isnan(w).any():
            raise ValueError(f"FP8 tensor '{wname}' holds NaN codes")
        arrays[wname] = w * full
        dtypes[wname] = "F8_E4M3(dequantized)"
    left = [n for n, d in dtypes.items() if d == "F8_E4M3"]
    if left:
        raise ValueError(f"F8_E4M3 tensor '{left[0]}' has no '{left[0]}_scale_inv'")
    return arrays, dtypes


def load_weights(model_dir, block=(128, 128)):
    """All tensors of a checkpoint directory (model.safetensors, or shards listed by
    model.safetensors.index.json), FP8 weights dequantised. Returns (arrays, dtypes)."""
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    arrays, dtypes = {}, {}
    if os.path.exists(index_path):
        with open(index_path) as f:
            weight_map = json.load(f)["weight_map"]
        for shard in sorted(set(weight_map.values())):
            a, d = read_safetensors(os.path.join(model_dir, shard))
            for name in a:
                if weight_map.get(name) != shard:
                    raise ValueError(f"{shard}: tensor '{name}' is not mapped to this shard by the index")
            arrays.update(a)
            dtypes.update(d)
        missing = set(weight_map) - set(arrays)
        if missing:
            raise ValueError(f"index names tensors absent from their shards: {sorted(missing)[:5]}")
    else:
        arrays, dtypes = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    return dequantize_fp8(arrays, dtypes, block)


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------

class Config:
    """The config.json keys the V2/V3 forward pass uses, with the published code's defaults."""

    def __init__(self, raw):
        self.model_type = raw.get("model_type")
        if self.model_type not in ("deepseek_v2", "deepseek_v3"):
            raise ValueError(f"model_type {self.model_type!r}, expected 'deepseek_v2' or 'deepseek_v3'")
        v3 = self.model_type == "deepseek_v3"
        self.raw = raw
        self.vocab_size = int(raw["vocab_size"])
        self.hidden_size = int(raw["hidden_size"])
        self.intermediate_size = int(raw["intermediate_size"])
        self.moe_intermediate_size = int(raw["moe_intermediate_size"])
        self.num_hidden_layers = int(raw["num_hidden_layers"])
        self.num_attention_heads = int(raw["num_attention_heads"])
        self.q_lora_rank = raw.get("q_lora_rank")          # None: plain q_proj (V2-Lite)
        self.kv_lora_rank = int(raw["kv_lora_rank"])
        self.qk_nope_head_dim = int(raw["qk_nope_head_dim"])
        self.qk_rope_head_dim = int(raw["qk_rope_head_dim"])
        self.v_head_dim = int(raw["v_head_dim"])
        self.qk_head_dim = self.qk_nope_head_dim + self.qk_rope_head_dim
        self.n_routed_experts = raw.get("n_routed_experts")
        self.n_shared_experts = raw.get("n_shared_experts")
        self.num_experts_per_tok = raw.get("num_experts_per_tok")
        self.first_k_dense_replace = int(raw.get("first_k_dense_replace", 0))
        self.moe_layer_freq = int(raw.get("moe_layer_freq", 1))
        self.norm_topk_prob = bool(raw.get("norm_topk_prob", False))
        self.routed_scaling_factor = float(raw.get("routed_scaling_factor", 1.0))
        self.scoring_func = raw.get("scoring_func", "sigmoid" if v3 else "softmax")
        method = raw.get("topk_method", "noaux_tc" if v3 else "greedy")
        self.topk_method = "greedy" if method == "gready" else method   # V2 RC spelled it "gready"
        self.n_group = int(raw.get("n_group") or 1)
        self.topk_group = int(raw.get("topk_group") or 1)
        self.rms_norm_eps = float(raw.get("rms_norm_eps", 1e-6))
        self.rope_theta = float(raw.get("rope_theta", 10000.0))
        self.rope_scaling = raw.get("rope_scaling")
        self.tie_word_embeddings = bool(raw.get("tie_word_embeddings", False))
        self.num_nextn_predict_layers = int(raw.get("num_nextn_predict_layers") or 0)
        q = raw.get("quantization_config")
        self.fp8_block = tuple(q.get("weight_block_size", [128, 128])) if q else (128, 128)
        if q and (q.get("quant_method") != "fp8" or q.get("fmt", "e4m3") != "e4m3"):
            raise ValueError(f"quantization_config {q!r} unsupported")
        if raw.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {raw.get('hidden_act')!r} unsupported")
        if raw.get("attention_bias", False):
            raise ValueError("attention_bias true unsupported")
        if self.qk_rope_head_dim % 2:
            raise ValueError("qk_rope_head_dim must be even")
        if self.n_routed_experts is not None:
            E = int(self.n_routed_experts)
            if v3 and (self.scoring_func, self.topk_method) != ("sigmoid", "noaux_tc"):
                raise ValueError(f"deepseek_v3 routing {self.scoring_func}/{self.topk_method} unsupported "
                                 "(expected sigmoid/noaux_tc)")
            if not v3 and (self.scoring_func != "softmax"
                           or self.topk_method not in ("greedy", "group_limited_greedy")):
                raise ValueError(f"deepseek_v2 routing {self.scoring_func}/{self.topk_method} unsupported")
            if self.topk_method != "greedy":
                if E % self.n_group or not 1 <= self.topk_group <= self.n_group:
                    raise ValueError(f"n_group {self.n_group} / topk_group {self.topk_group} do not fit "
                                     f"{E} experts")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("type", self.rope_scaling.get("rope_type"))
            if kind != "yarn":
                raise ValueError(f"rope_scaling type {kind!r} unsupported (only yarn)")
        self.n_shared_width = self.moe_intermediate_size * int(self.n_shared_experts or 0)

    @property
    def grouped(self):
        return self.topk_method in ("group_limited_greedy", "noaux_tc")

    def is_moe_layer(self, i):
        # RC: n_routed_experts set, i >= first_k_dense_replace and i % moe_layer_freq == 0.
        return (self.n_routed_experts is not None and i >= self.first_k_dense_replace
                and i % self.moe_layer_freq == 0)

    def moe_layers(self):
        return [i for i in range(self.num_hidden_layers) if self.is_moe_layer(i)]


def load_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return Config(json.load(f))


# ---------------------------------------------------------------------------------------------
# RoPE with YaRN, adjacent-pair ("interleaved", GPT-J) layout
# ---------------------------------------------------------------------------------------------

def yarn_get_mscale(scale, mscale):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def rope_inv_freq(cfg):
    """inv_freq [dr/2] and the cos/sin multiplier.

    Plain: theta^(-2j/dr). YaRN (RC DeepseekV2YarnRotaryEmbedding, TF yarn): correction dims
    low = max(floor(cd(beta_fast)), 0), high = min(ceil(cd(beta_slow)), dr-1) with
    cd(r) = dr·ln(L0/(2πr)) / (2·ln theta); ramp_j = clamp((j-low)/(high-low), 0, 1) (high += 0.001
    if equal); inv_freq_j = extra_j/factor · ramp_j + extra_j · (1 - ramp_j).
    DS3 differs: round() instead of floor/ceil, denominator (high-low+0.001), and YaRN only
    when max_seq_len > original_seq_len; the RC (applied unconditionally) is followed here.
    cos/sin multiplier (RC, TF attention_factor): mscale(f, mscale)/mscale(f, mscale_all_dim);
    1.0 for every published config (DS3 has no such multiplier).
    """
    dr, theta = cfg.qk_rope_head_dim, cfg.rope_theta
    extra = np.array([1.0 / math.pow(theta, (2 * j) / dr) for j in range(dr // 2)])
    sc = cfg.rope_scaling
    if sc is None:
        return extra, 1.0
    factor = float(sc["factor"])
    L0 = float(sc.get("original_max_position_embeddings", 4096))
    beta_fast, beta_slow = float(sc.get("beta_fast", 32)), float(sc.get("beta_slow", 1))
    mscale, mscale_all = float(sc.get("mscale", 1)), float(sc.get("mscale_all_dim", 0))

    def corr_dim(rot):
        return (dr * math.log(L0 / (rot * 2 * math.pi))) / (2 * math.log(theta))

    low = max(math.floor(corr_dim(beta_fast)), 0)
    high = min(math.ceil(corr_dim(beta_slow)), dr - 1)
    if low == high:
        high += 0.001
    ramp = np.array([min(max((j - low) / (high - low), 0.0), 1.0) for j in range(dr // 2)])
    inv = (extra / factor) * ramp + extra * (1.0 - ramp)
    return inv, yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all)


def yarn_correction_range(cfg):
    """(low, high) of the YaRN ramp, for the self-check and the fixture description."""
    sc, dr, theta = cfg.rope_scaling, cfg.qk_rope_head_dim, cfg.rope_theta
    L0 = float(sc.get("original_max_position_embeddings", 4096))
    cd = [(dr * math.log(L0 / (float(sc.get(k, d)) * 2 * math.pi))) / (2 * math.log(theta))
          for k, d in (("beta_fast", 32), ("beta_slow", 1))]
    return max(math.floor(cd[0]), 0), min(math.ceil(cd[1]), dr - 1), cd


def softmax_scale(cfg):
    """qk_head_dim^-0.5, times mscale² with mscale = 0.1·mscale_all_dim·ln(factor) + 1 when
    rope_scaling has a non-zero mscale_all_dim (RC, TF3, DS3, llama.cpp; transformers'
    deepseek_v2 port omits it)."""
    s = cfg.qk_head_dim ** -0.5
    sc = cfg.rope_scaling
    if sc is not None:
        m_all = float(sc.get("mscale_all_dim", 0) or 0)
        if m_all:
            m = yarn_get_mscale(float(sc["factor"]), m_all)
            s = s * m * m
    return s


def rope_cos_sin(cfg, positions):
    """cos, sin [T, dr/2] for absolute positions (0-based), times the YaRN cos/sin multiplier."""
    inv, mul = rope_inv_freq(cfg)
    pos = np.asarray(positions, dtype=np.float64)
    ang = pos[:, None] * inv[None, :]
    return _cos(ang) * mul, _sin(ang) * mul


def apply_rope_pairs(x, cos, sin):
    """x [T, n, dr]: pair j = (x[2j], x[2j+1]) rotated by angle_j — the complex product
    (x[2j] + i·x[2j+1])·e^{i·angle} of DS3 apply_rotary_emb / TF2, applied to the stored dims.
    RC and TF3 (rope_interleave) first permute the slice to [x0,x2,..,x1,x3,..] and use
    rotate_half with cat(freqs, freqs): the same rotation with output dims permuted identically
    for q and k, hence identical q·k scores (checked in check_v2v3.py)."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


# ---------------------------------------------------------------------------------------------
# MLA attention
# ---------------------------------------------------------------------------------------------

def mla_project(cfg, x, w, prefix, positions):
    """The per-token MLA projections. x [T, H] (already input-normed). Returns
    q_nope [T, nh, dn], q_pe [T, nh, dr] (roped), kv_c [T, c] (kv_a_layernorm applied),
    k_pe [T, dr] (roped; ONE rope key per token shared by all heads)."""
    T = x.shape[0]
    nh, dn, dr, c = cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.kv_lora_rank
    if cfg.q_lora_rank is None:
        q = linear(x, w[prefix + ".q_proj.weight"])
    else:
        qa = rms_norm(linear(x, w[prefix + ".q_a_proj.weight"]), w[prefix + ".q_a_layernorm.weight"],
                      LATENT_NORM_EPS)
        q = linear(qa, w[prefix + ".q_b_proj.weight"])
    q = q.reshape(T, nh, dn + dr)                            # per head: [nope | rope]
    ckv = linear(x, w[prefix + ".kv_a_proj_with_mqa.weight"])  # [T, c + dr]: [latent | rope key]
    kv_c = rms_norm(ckv[:, :c], w[prefix + ".kv_a_layernorm.weight"], LATENT_NORM_EPS)
    cos, sin = rope_cos_sin(cfg, positions)
    q_pe = apply_rope_pairs(q[..., dn:], cos, sin)
    k_pe = apply_rope_pairs(ckv[:, None, c:], cos, sin)[:, 0, :]
    return q[..., :dn], q_pe, kv_c, k_pe


def _causal(positions, S):
    """[T, S] bool: query at absolute position p sees keys 0..p."""
    return np.arange(S)[None, :] <= np.asarray(positions)[:, None]


def mla_attention(cfg, x, w, prefix, positions, cache=None):
    """Causal MLA, expanded ("naive") form. x [T, H] -> [T, H]. `cache` (dict or None) holds the
    latent kv_c [S, c] and roped k_pe [S, dr] of earlier positions and is extended in place;
    positions must continue it (absolute, 0-based)."""
    T = x.shape[0]
    nh, dn, dv = cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.v_head_dim
    q_nope, q_pe, kv_c, k_pe = mla_project(cfg, x, w, prefix, positions)
    if cache is not None:
        if "kv_c" in cache:
            kv_c = np.concatenate([cache["kv_c"], kv_c])
            k_pe = np.concatenate([cache["k_pe"], k_pe])
        cache["kv_c"], cache["k_pe"] = kv_c, k_pe
    S = kv_c.shape[0]
    kv = linear(kv_c, w[prefix + ".kv_b_proj.weight"]).reshape(S, nh, dn + dv)  # per head [k_nope | v]
    scale = softmax_scale(cfg)
    allowed = _causal(positions, S)
    out = np.zeros((T, nh, dv))
    for h in range(nh):
        qh = np.concatenate([q_nope[:, h], q_pe[:, h]], axis=-1)     # [T, dq]
        kh = np.concatenate([kv[:, h, :dn], k_pe], axis=-1)            # [S, dq]
        scores = np.where(allowed, linear(qh, kh) * scale, -np.inf)   # [T, S]
        out[:, h] = linear(softmax(scores), kv[:, h, dn:].T)           # [T, dv]
    return linear(out.reshape(T, nh * dv), w[prefix + ".o_proj.weight"])


def mla_attention_absorbed(cfg, x, w, prefix, positions):
    """The same attention in DS3's "absorb" form (for the self-check): kv_b_proj viewed
    [nh, dn+dv, c]; score = (q_nope·W_uk)·kv_cᵀ + q_pe·k_peᵀ; out_h = (p·kv_c)·W_uvᵀ."""
    T = x.shape[0]
    nh, dn, dv, c = cfg.num_attention_heads, cfg.qk_nope_head_dim, cfg.v_head_dim, cfg.kv_lora_rank
    q_nope, q_pe, kv_c, k_pe = mla_project(cfg, x, w, prefix, positions)
    W = w[prefix + ".kv_b_proj.weight"].reshape(nh, dn + dv, c)
    scale = softmax_scale(cfg)
    allowed = _causal(positions, kv_c.shape[0])
    out = np.zeros((T, nh, dv))
    for h in range(nh):
        q_lat = linear(q_nope[:, h], W[h, :dn].T)                      # [T, c]
        scores = linear(q_lat, kv_c) + linear(q_pe[:, h], k_pe)        # [T, S]
        scores = np.where(allowed, scores * scale, -np.inf)
        out[:, h] = linear(linear(softmax(scores), kv_c.T), W[h, dn:])  # [T, dv]
    return linear(out.reshape(T, nh * dv), w[prefix + ".o_proj.weight"])


# ---------------------------------------------------------------------------------------------
# routing (per token), each topk_method its own function
# ---------------------------------------------------------------------------------------------
#
# Shared mask semantics (docs/masks.md extended to groups):
#   1. scores over ALL E experts (softmax, or sigmoid); the selection score `sel` is the score
#      (V2) or score + e_score_correction_bias (V3). Masks never change the scores.
#   2. eligible = all experts, minus the disabled ones in reroute mode, then minus the
#      skip_top eligible experts with the highest sel (global, before any group selection).
#   3. groups (group_limited_greedy, noaux_tc): group g = experts [g·E/G, (g+1)·E/G). Only
#      groups with at least one eligible expert are selectable; the group score is computed over
#      the group's ELIGIBLE experts only (V2: max sel; V3: sum of the top min(2, n) sel). The
#      topk_group selectable groups with the highest group score are kept.
#   4. as the HF code does, the eligible experts of groups NOT kept get selection score 0.0 and
#      stay candidates (DS3 fills -inf instead: the same unless k exceeds the kept groups'
#      experts or a kept V3 biased score is below 0); selected = the k eligible experts with the
#      highest (group-masked) sel, in rank order. Fewer than k eligible experts is an error.
#   Tie rule everywhere: descending value, exact ties to the lower expert / group index.


class Route:
    """One token's decision: idx [k] (rank order), sel [k] (their group-masked selection scores),
    groups [topk_group] kept groups in descending group score (None if not grouped), gap."""

    def __init__(self, idx, sel, groups, gap):
        self.idx, self.sel, self.groups, self.gap = idx, sel, groups, gap


def _ordered(cands, sel):
    """cands sorted by descending sel, exact ties to the lower index (lexsort: last key primary)."""
    cands = np.asarray(sorted(int(c) for c in cands), dtype=np.int64)
    if cands.size == 0:
        return cands
    return cands[np.lexsort((cands, -sel[cands]))]


def _gaps(order, sel, first, last):
    """Differences sel[order[i]] - sel[order[i+1]] for i in [first, last), clipped to the list."""
    return [float(sel[order[i]] - sel[order[i + 1]]) for i in range(max(first, 0), min(last, len(order) - 1))]


def _eligible(sel, disabled, skip_top, mode):
    E = sel.shape[0]
    elig = [e for e in range(E) if not (mode == "reroute" and e in disabled)]
    order = _ordered(elig, sel)
    if skip_top > len(order):
        raise ValueError(f"skip-top {skip_top} exceeds the {len(order)} eligible experts")
    gaps = _gaps(order, sel, skip_top - 1, skip_top) if skip_top > 0 else []
    return order[skip_top:], gaps


def _select(sel, cands, k):
    order = _ordered(cands, sel)
    if k > len(order):
        raise ValueError(f"only {len(order)} selectable experts for k = {k}")
    return order[:k], _gaps(order, sel, 0, k)


def _groups(sel, elig, n_group, topk_group, group_score):
    """Kept groups [<= topk_group] in descending score and the ordering gaps."""
    E = sel.shape[0]
    size = E // n_group
    members = {}
    for e in elig:
        members.setdefault(int(e) // size, []).append(int(e))
    gids = np.array(sorted(members), dtype=np.int64)
    gscore = np.full(n_group, -np.inf)
    for g in gids:
        gscore[g] = group_score(np.array([sel[e] for e in _ordered(members[g], sel)]))
    order = gids[np.lexsort((gids, -gscore[gids]))] if gids.size else gids
    kept = order[:topk_group]
    return kept, _gaps(order, gscore, 0, topk_group), size


def _mask_groups(sel, elig, kept, size):
    """HF `scores.masked_fill(~score_mask, 0.0)`: eligible experts outside the kept groups
    score 0.0 (and remain candidates)."""
    keep = set(int(g) for g in kept)
    masked = sel.copy()
    for e in elig:
        if int(e) // size not in keep:
            masked[e] = 0.0
    return masked


def route_greedy(sel, k, disabled=frozenset(), skip_top=0, mode="reroute"):
    """V2-Lite (topk_method "greedy"): top-k of the softmax probabilities."""
    elig, g1 = _eligible(sel, disabled, skip_top, mode)
    idx, g2 = _select(sel, elig, k)
    return Route(idx, sel[idx].copy(), None, min(g1 + g2, default=math.inf))


def route_group_limited_greedy(sel, k, n_group, topk_group, disabled=frozenset(), skip_top=0,
                               mode="reroute"):
    """V2 (topk_method "group_limited_greedy"): group score = MAX probability among the group's
    eligible experts; keep topk_group groups (the others' experts score 0.0); top-k."""
    elig, g1 = _eligible(sel, disabled, skip_top, mode)
    kept, g2, size = _groups(sel, elig, n_group, topk_group, lambda v: float(v[0]))
    masked = _mask_groups(sel, elig, kept, size)
    idx, g3 = _select(masked, elig, k)
    return Route(idx, masked[idx].copy(), kept, min(g1 + g2 + g3, default=math.inf))


def route_noaux_tc(scores, bias, k, n_group, topk_group, disabled=frozenset(), skip_top=0,
                   mode="reroute"):
    """V3 (topk_method "noaux_tc"): sel = sigmoid score + e_score_correction_bias (selection
    only); group score = sum of the two highest sel among the group's eligible experts (the one
    sel when only one is eligible); keep topk_group groups (the others' experts score 0.0);
    top-k of the masked sel. Weights come from the unbiased scores (gate_weights)."""
    sel = scores + bias
    elig, g1 = _eligible(sel, disabled, skip_top, mode)
    kept, g2, size = _groups(sel, elig, n_group, topk_group,
                             lambda v: float(v[0] + v[1]) if v.size >= 2 else float(v[0]))
    masked = _mask_groups(sel, elig, kept, size)
    idx, g3 = _select(masked, elig, k)
    return Route(idx, masked[idx].copy(), kept, min(g1 + g2 + g3, default=math.inf))


def gate_weights(cfg, scores, idx):
    """Weights of the selected experts from their UNBIASED scores.
    deepseek_v2 (RC V2 MoEGate): if k > 1 and norm_topk_prob: w / (Σw + 1e-20) (no scaling),
      else w · routed_scaling_factor. (TF2 always scales and never normalises; DS3 softmax
      never normalises: all agree for the published norm_topk_prob false.)
    deepseek_v3 (RC V3 / TF3 / DS3): if k > 1 and norm_topk_prob: w / (Σw + 1e-20) (DS3: no
      epsilon); then always · routed_scaling_factor."""
    w = scores[idx].copy()
    k = len(idx)
    if cfg.model_type == "deepseek_v2":
        if k > 1 and cfg.norm_topk_prob:
            return w / (seq_sum(w) + 1e-20)
        return w * cfg.routed_scaling_factor
    if k > 1 and cfg.norm_topk_prob:
        w = w / (seq_sum(w) + 1e-20)
    return w * cfg.routed_scaling_factor


def sigmoid(z):
    e = _exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def route_token(cfg, scores, bias, k, disabled, skip_top, mode):
    if cfg.topk_method == "greedy":
        return route_greedy(scores, k, disabled, skip_top, mode)
    if cfg.topk_method == "group_limited_greedy":
        return route_group_limited_greedy(scores, k, cfg.n_group, cfg.topk_group, disabled, skip_top, mode)
    return route_noaux_tc(scores, bias, k, cfg.n_group, cfg.topk_group, disabled, skip_top, mode)


def moe_ffn(cfg, x, w, layer, mask):
    """MoE FFN of one layer; x [T, H]. Returns y [T, H] and a dict of per-token routing arrays:
    idx [T, k], weights [T, k], sel [T, k], groups [T, topk_group] or None, gap."""
    prefix = f"model.layers.{layer}.mlp"
    T = x.shape[0]
    logits = linear(x, w[prefix + ".gate.weight"])                       # [T, E]
    scores = softmax(logits) if cfg.scoring_func == "softmax" else sigmoid(logits)
    bias = w[prefix + ".gate.e_score_correction_bias"] if cfg.topk_method == "noaux_tc" else None
    k = mask.k_for(layer, int(cfg.num_experts_per_tok))
    disabled = mask.disabled_for(layer)
    skip = mask.skip_for(layer)
    routes = [route_token(cfg, scores[t], bias, k, disabled, skip, mask.mode) for t in range(T)]
    idx = np.array([r.idx for r in routes], dtype=np.int64)              # [T, k]
    wts = np.array([gate_weights(cfg, scores[t], routes[t].idx) for t in range(T)])
    active = np.array([[not (mask.mode == "drop" and int(e) in disabled) for e in row] for row in idx])
    # Each expert runs once on the tokens that use it; per token the terms are added in rank order.
    outs = {}
    for e in sorted({int(e) for e in idx[active]}):
        toks = [t for t in range(T) if any(idx[t, j] == e and active[t, j] for j in range(k))]
        outs[e] = dict(zip(toks, mlp(x[toks], f"{prefix}.experts.{e}", w)))
    y = np.zeros_like(x)
    for t in range(T):
        for j in range(k):
            if active[t, j]:
                y[t] += wts[t, j] * outs[int(idx[t, j])][t]
    if cfg.n_shared_width > 0 and mask.shared_on(layer):
        y += mlp(x, prefix + ".shared_experts", w)
    info = {"idx": idx, "weights": wts, "sel": np.array([r.sel for r in routes]),
            "groups": (np.array([r.groups for r in routes], dtype=np.int64) if cfg.grouped else None),
            "gap": min(r.gap for r in routes)}
    return y, info


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------

class Model:
    def __init__(self, model_dir):
        self.cfg = load_config(model_dir)
        self.w, self.dtypes = load_weights(model_dir, self.cfg.fp8_block)
        self._check_tensors()

    def expected_shapes(self):
        """{tensor name: shape} the forward pass reads (layers >= num_hidden_layers, e.g. the V3
        multi-token-prediction layer, are not part of it)."""
        c = self.cfg
        H, nh = c.hidden_size, c.num_attention_heads
        dq, dv, dr, cr = c.qk_head_dim, c.v_head_dim, c.qk_rope_head_dim, c.kv_lora_rank
        want = {"model.embed_tokens.weight": (c.vocab_size, H), "model.norm.weight": (H,)}
        if not c.tie_word_embeddings:
            want["lm_head.weight"] = (c.vocab_size, H)
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            want[p + "input_layernorm.weight"] = (H,)
            want[p + "post_attention_layernorm.weight"] = (H,)
            a = p + "self_attn."
            if c.q_lora_rank is None:
                want[a + "q_proj.weight"] = (nh * dq, H)
            else:
                r = int(c.q_lora_rank)
                want[a + "q_a_proj.weight"] = (r, H)
                want[a + "q_a_layernorm.weight"] = (r,)
                want[a + "q_b_proj.weight"] = (nh * dq, r)
            want[a + "kv_a_proj_with_mqa.weight"] = (cr + dr, H)
            want[a + "kv_a_layernorm.weight"] = (cr,)
            want[a + "kv_b_proj.weight"] = (nh * (c.qk_nope_head_dim + dv), cr)
            want[a + "o_proj.weight"] = (H, nh * dv)
            want.update(base.feed_forward_shapes(c, i, H, router_bias=c.topk_method == "noaux_tc"))
        return want

    def _check_tensors(self):
        for name, shape in self.expected_shapes().items():
            if name not in self.w:
                raise ValueError(f"checkpoint lacks tensor '{name}'")
            if tuple(self.w[name].shape) != shape:
                raise ValueError(f"tensor '{name}' has shape {list(self.w[name].shape)}, expected {list(shape)}")

    def forward(self, ids, mask=None, start_pos=0, cache=None):
        """One pass over `ids` at positions start_pos.. (cache: list of per-layer dicts from an
        earlier call, or None for a fresh prefill). Returns logits [T, V], per MoE layer routing
        {layer: [T, k]}, gate_weights, selection_scores {layer: [T, k]}, groups {layer: [T, G]}
        (grouped routing only) and min_boundary_gap."""
        c, w = self.cfg, self.w
        mask = mask or ExpertMask()
        mask.validate(c)
        ids = [int(i) for i in ids]
        for i in ids:
            if not 0 <= i < c.vocab_size:
                raise ValueError(f"token id {i} outside vocabulary of {c.vocab_size}")
        T = len(ids)
        positions = list(range(start_pos, start_pos + T))
        x = w["model.embed_tokens.weight"][ids]                              # [T, H]
        res = {"routing": {}, "gate_weights": {}, "selection_scores": {}, "groups": {},
               "min_boundary_gap": math.inf}
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}"
            lc = cache[i] if cache is not None else None
            h = x + mla_attention(c, rms_norm(x, w[p + ".input_layernorm.weight"], c.rms_norm_eps),
                                  w, p + ".self_attn", positions, lc)
            hn = rms_norm(h, w[p + ".post_attention_layernorm.weight"], c.rms_norm_eps)
            if c.is_moe_layer(i):
                y, info = moe_ffn(c, hn, w, i, mask)
                res["routing"][i], res["gate_weights"][i] = info["idx"], info["weights"]
                res["selection_scores"][i] = info["sel"]
                if info["groups"] is not None:
                    res["groups"][i] = info["groups"]
                res["min_boundary_gap"] = min(res["min_boundary_gap"], info["gap"])
            else:
                y = mlp(hn, p + ".mlp", w)
            x = h + y
        x = rms_norm(x, w["model.norm.weight"], c.rms_norm_eps)
        head = w["model.embed_tokens.weight"] if c.tie_word_embeddings else w["lm_head.weight"]
        res["logits"] = linear(x, head)
        return res

    def new_cache(self):
        return [dict() for _ in range(self.cfg.num_hidden_layers)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--mask", default="", help="expert mask SPEC")
    ap.add_argument("--mode", default="reroute", choices=["reroute", "drop"])
    args = ap.parse_args()
    model = Model(args.model_dir)
    res = model.forward([int(t) for t in args.ids.split(",")], ExpertMask(args.mask, args.mode))
    print(json.dumps({
        "logits": res["logits"].tolist(),
        "routing": {str(l): v.tolist() for l, v in res["routing"].items()},
        "gate_weights": {str(l): v.tolist() for l, v in res["gate_weights"].items()},
        "selection_scores": {str(l): v.tolist() for l, v in res["selection_scores"].items()},
        "groups": {str(l): v.tolist() for l, v in res["groups"].items()},
        "min_boundary_gap": res["min_boundary_gap"],
    }))


if __name__ == "__main__":
    main()
