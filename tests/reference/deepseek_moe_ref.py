#!/usr/bin/python3
"""Independent float64 NumPy reference of the DeepSeekMoE forward pass (model_type "deepseek").

Matches the published Hugging Face remote code (DeepseekForCausalLM, modeling_deepseek.py) and
the project's model spec (§1), plus the engine's expert-mask semantics (reroute / drop, shared
off, k override, skip-top). It is the oracle the C++ engine's goldens come from, not a fast
implementation: every reduction runs in a fixed sequential order and transcendental functions go
through Python's math module, so results do not depend on BLAS threading or SIMD dispatch.

Command line (prints JSON with logits, routing and gate weights):
  /usr/bin/python3 tests/reference/deepseek_moe_ref.py <model_dir> --ids 0,5,7 [--mask SPEC] [--mode drop]
"""

import argparse
import json
import math
import os
import re
import struct

import numpy as np

# ---------------------------------------------------------------------------------------------
# safetensors reading
# ---------------------------------------------------------------------------------------------

_NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}


def read_safetensors(path):
    """Returns {name: float64 ndarray} for every tensor of one .safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(data)} bytes)")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape = info["dtype"], [int(s) for s in info["shape"]]
        begin, end = info["data_offsets"]
        raw = data[base + begin: base + end]
        count = int(np.prod(shape)) if shape else 1
        if dtype not in _NUMPY_DTYPES and dtype != "BF16":
            raise ValueError(f"{path}: tensor '{name}' has unsupported dtype {dtype}")
        stored = count * (2 if dtype in ("BF16", "F16") else 4 if dtype == "F32" else 8)
        if stored != end - begin or base + end > len(data):
            raise ValueError(f"{path}: tensor '{name}' spans bytes [{begin}, {end}), expected "
                             f"{stored} bytes inside the file")
        if dtype == "BF16":
            # A bfloat16 is the upper 16 bits of an IEEE float32.
            halves = np.frombuffer(raw, dtype="<u2", count=count)
            arr = (halves.astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_NUMPY_DTYPES[dtype], count=count)
        out[name] = arr.astype(np.float64).reshape(shape)
    return out


def load_weights(model_dir):
    """All tensors of a checkpoint directory: model.safetensors, or shards listed by the index."""
    index_path = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            weight_map = json.load(f)["weight_map"]
        weights = {}
        for shard in sorted(set(weight_map.values())):
            for name, arr in read_safetensors(os.path.join(model_dir, shard)).items():
                if weight_map.get(name) != shard:
                    raise ValueError(f"{shard}: tensor '{name}' is not mapped to this shard by the index")
                weights[name] = arr
        missing = set(weight_map) - set(weights)
        if missing:
            raise ValueError(f"index names tensors absent from their shards: {sorted(missing)[:5]}")
        return weights
    return read_safetensors(os.path.join(model_dir, "model.safetensors"))


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------

class Config:
    """The config.json keys the forward pass uses, with the published code's defaults."""

    def __init__(self, raw):
        if raw.get("model_type") != "deepseek":
            raise ValueError(f"model_type {raw.get('model_type')!r}, expected 'deepseek'")
        self.raw = raw
        self.vocab_size = int(raw["vocab_size"])
        self.hidden_size = int(raw["hidden_size"])
        self.intermediate_size = int(raw["intermediate_size"])
        self.moe_intermediate_size = int(raw.get("moe_intermediate_size", 1407))
        self.num_hidden_layers = int(raw["num_hidden_layers"])
        self.num_attention_heads = int(raw["num_attention_heads"])
        self.num_key_value_heads = int(raw.get("num_key_value_heads") or self.num_attention_heads)
        self.n_routed_experts = raw.get("n_routed_experts")
        self.n_shared_experts = raw.get("n_shared_experts")
        self.num_experts_per_tok = raw.get("num_experts_per_tok")
        self.first_k_dense_replace = int(raw.get("first_k_dense_replace", 0))
        self.moe_layer_freq = int(raw.get("moe_layer_freq", 1))
        self.norm_topk_prob = bool(raw.get("norm_topk_prob", False))
        self.scoring_func = raw.get("scoring_func", "softmax")
        self.rms_norm_eps = float(raw.get("rms_norm_eps", 1e-6))
        self.rope_theta = float(raw.get("rope_theta", 10000.0))
        self.rope_scaling = raw.get("rope_scaling")
        self.max_position_embeddings = int(raw.get("max_position_embeddings", 2048))
        self.tie_word_embeddings = bool(raw.get("tie_word_embeddings", False))
        # The published code derives the head dim; there is no head_dim key.
        self.head_dim = self.hidden_size // self.num_attention_heads
        if self.head_dim * self.num_attention_heads != self.hidden_size:
            raise ValueError("hidden_size is not divisible by num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError("num_attention_heads is not a multiple of num_key_value_heads")
        if self.head_dim % 2 != 0:
            raise ValueError("head dim must be even for rotary embedding")
        if raw.get("hidden_act", "silu") != "silu":
            raise ValueError(f"hidden_act {raw.get('hidden_act')!r} unsupported")
        if raw.get("attention_bias", False):
            raise ValueError("attention_bias true unsupported")
        if self.n_routed_experts is not None and self.scoring_func != "softmax":
            raise ValueError(f"scoring_func {self.scoring_func!r} unsupported")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("type", self.rope_scaling.get("rope_type"))
            if kind not in ("linear", "dynamic"):
                raise ValueError(f"rope_scaling type {kind!r} unsupported")
        self.n_shared_width = self.moe_intermediate_size * int(self.n_shared_experts or 0)

    def is_moe_layer(self, i):
        return (self.n_routed_experts is not None and i >= self.first_k_dense_replace
                and i % self.moe_layer_freq == 0)

    def moe_layers(self):
        return [i for i in range(self.num_hidden_layers) if self.is_moe_layer(i)]


def load_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        return Config(json.load(f))


# ---------------------------------------------------------------------------------------------
# elementary ops (fixed-order reductions, math-module transcendentals)
# ---------------------------------------------------------------------------------------------

_exp = np.vectorize(math.exp, otypes=[np.float64])
_cos = np.vectorize(math.cos, otypes=[np.float64])
_sin = np.vectorize(math.sin, otypes=[np.float64])


def seq_sum(a):
    """Sum over the last axis, left to right."""
    acc = np.array(a[..., 0], dtype=np.float64, copy=True)
    for i in range(1, a.shape[-1]):
        acc += a[..., i]
    return acc


def linear(x, w):
    """x [..., n] · w[m, n]ᵀ -> [..., m], summed over n left to right."""
    assert x.shape[-1] == w.shape[1], (x.shape, w.shape)
    acc = x[..., 0:1] * w[:, 0]
    for i in range(1, w.shape[1]):
        acc += x[..., i:i + 1] * w[:, i]
    return acc


def rms_norm(x, w, eps):
    """x [T, H] / sqrt(mean(x²) + eps) · w [H]."""
    var = seq_sum(x * x) / x.shape[-1]
    return x / np.sqrt(var + eps)[:, None] * w


def silu(z):
    """z·σ(z), written with exp(-|z|) so it never overflows."""
    e = _exp(-np.abs(z))
    return np.where(z >= 0, z / (1.0 + e), z * e / (1.0 + e))


def softmax(z):
    """Softmax over the last axis (max subtracted first)."""
    e = _exp(z - z.max(axis=-1, keepdims=True))
    return e / seq_sum(e)[..., None]


def mlp(x, prefix, w):
    """down( silu(gate(x)) ⊙ up(x) ) for the tensors under `prefix`."""
    g = linear(x, w[prefix + ".gate_proj.weight"])
    u = linear(x, w[prefix + ".up_proj.weight"])
    return linear(silu(g) * u, w[prefix + ".down_proj.weight"])


# ---------------------------------------------------------------------------------------------
# rotary embedding (HF "rotate_half" layout)
# ---------------------------------------------------------------------------------------------

def rope_tables(cfg, seq_len, positions):
    """cos, sin [T, hd] for the given positions, for a forward pass over seq_len tokens.

    inv_freq_j = base^(-2j/hd). rope_scaling linear: positions / factor. dynamic (NTK): when
    seq_len > max_position_embeddings, base = theta·((f·seq_len/max_pos) − (f−1))^(hd/(hd−2)),
    used for every position of the pass.
    """
    hd = cfg.head_dim
    base = cfg.rope_theta
    pos = np.asarray(positions, dtype=np.float64)
    sc = cfg.rope_scaling
    if sc is not None:
        kind = sc.get("type", sc.get("rope_type"))
        factor = float(sc["factor"])
        if kind == "linear":
            pos = pos / factor
        elif kind == "dynamic":
            if seq_len > cfg.max_position_embeddings:
                ratio = factor * seq_len / cfg.max_position_embeddings - (factor - 1.0)
                base = base * math.pow(ratio, hd / (hd - 2))
    inv_freq = np.array([1.0 / math.pow(base, (2 * j) / hd) for j in range(hd // 2)])
    ang = pos[:, None] * inv_freq[None, :]          # [T, hd/2]
    emb = np.concatenate([ang, ang], axis=-1)       # [T, hd]
    return _cos(emb), _sin(emb)


def apply_rope(x, cos, sin):
    """x [T, n_heads, hd] -> x·cos + rotate_half(x)·sin, rotate_half(x) = [−x₂, x₁]."""
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, None, :] + rot * sin[:, None, :]


# ---------------------------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------------------------

def attention(cfg, x, w, prefix, cos, sin):
    """Causal multi-head attention with GQA; x [T, H] -> [T, H]."""
    T = x.shape[0]
    nh, nkv, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    q = linear(x, w[prefix + ".q_proj.weight"]).reshape(T, nh, hd)
    k = linear(x, w[prefix + ".k_proj.weight"]).reshape(T, nkv, hd)
    v = linear(x, w[prefix + ".v_proj.weight"]).reshape(T, nkv, hd)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    group = nh // nkv          # HF repeat_kv: query head h reads kv head h // group
    out = np.zeros((T, nh, hd))
    scale = 1.0 / math.sqrt(hd)
    causal = np.tril(np.ones((T, T), dtype=bool))
    for h in range(nh):
        kh, vh = k[:, h // group, :], v[:, h // group, :]
        scores = linear(q[:, h, :], kh) * scale                  # [T, T]
        scores = np.where(causal, scores, -np.inf)
        probs = softmax(scores)                                   # [T, T]
        out[:, h, :] = linear(probs, vh.T)                        # [T, hd]
    return linear(out.reshape(T, nh * hd), w[prefix + ".o_proj.weight"])


# ---------------------------------------------------------------------------------------------
# expert mask (the engine's routing interventions)
# ---------------------------------------------------------------------------------------------

class ExpertMask:
    """Parsed SPEC: parts joined by ';', each `<scope>:<what>` with scope `L<layer>` or `*` and
    what one of `<e>,<e>,...` (disable routed experts), `shared` (shared experts off),
    `k=<n>` (activated routed experts), `skip-top=<r>` (exclude the r most probable).
    Disabled sets and shared-off are unions; for k and skip-top a layer-specific value wins
    over `*`, and a later part wins over an earlier one of the same scope.
    Mode `reroute`: disabled experts cannot be selected. Mode `drop`: selection ignores the
    disabled set and the selected disabled experts' terms are left out of the sum.
    """

    _PART = re.compile(r"^(\*|L(\d+)):(.+)$")

    def __init__(self, spec="", mode="reroute"):
        if mode not in ("reroute", "drop"):
            raise ValueError(f"mask mode {mode!r}, expected 'reroute' or 'drop'")
        self.spec, self.mode = spec, mode
        self.disabled = {}     # scope -> set of experts; scope is '*' or an int layer
        self.shared_off = set()
        self.k = {}
        self.skip_top = {}
        for part in (p.strip() for p in spec.split(";")):
            if not part:
                continue
            m = self._PART.match(part)
            if not m:
                raise ValueError(f"mask part {part!r}: expected L<layer>:... or *:...")
            scope = "*" if m.group(1) == "*" else int(m.group(2))
            what = m.group(3).strip()
            if what == "shared":
                self.shared_off.add(scope)
            elif what.startswith("k="):
                n = self._int(what[2:], part)
                if n < 1:
                    raise ValueError(f"mask part {part!r}: k must be at least 1")
                self.k[scope] = n
            elif what.startswith("skip-top="):
                self.skip_top[scope] = self._int(what[len("skip-top="):], part)
            else:
                experts = [self._int(e, part) for e in what.split(",")]
                self.disabled.setdefault(scope, set()).update(experts)

    @staticmethod
    def _int(text, part):
        text = text.strip()
        if not re.fullmatch(r"\d+", text):
            raise ValueError(f"mask part {part!r}: {text!r} is not a non-negative integer")
        return int(text)

    def validate(self, cfg):
        moe = set(cfg.moe_layers())
        for table in (self.disabled, self.k, self.skip_top):
            for scope in table:
                if scope != "*" and scope not in moe:
                    raise ValueError(f"mask names layer {scope}, which is not a MoE layer")
        for scope in self.shared_off:
            if scope != "*" and scope not in moe:
                raise ValueError(f"mask names layer {scope}, which is not a MoE layer")
        for scope, experts in self.disabled.items():
            bad = [e for e in experts if e >= cfg.n_routed_experts]
            if bad:
                raise ValueError(f"mask disables expert {bad[0]}, model has {cfg.n_routed_experts}")
        for scope, k in self.k.items():
            if k > cfg.n_routed_experts:
                raise ValueError(f"mask k={k} exceeds {cfg.n_routed_experts} routed experts")

    def disabled_for(self, layer):
        return self.disabled.get("*", set()) | self.disabled.get(layer, set())

    def shared_on(self, layer):
        return "*" not in self.shared_off and layer not in self.shared_off

    def k_for(self, layer, default):
        return self.k.get(layer, self.k.get("*", default))

    def skip_for(self, layer):
        return self.skip_top.get(layer, self.skip_top.get("*", 0))


def route(p, k, disabled=frozenset(), skip_top=0, mode="reroute", norm_topk_prob=False):
    """One token's routing decision from its router probabilities p [E].

    Returns (idx [k] in rank order, w [k], active [k] bool, gap). `active` is False for the
    experts a drop-mode mask discards. `gap` is the smallest difference between consecutive
    probabilities at every place the decision depends on an ordering: the skip-top boundary,
    the rank order of the selected experts and the k-th/(k+1)-th boundary (inf if none).
    """
    E = p.shape[0]
    eligible = np.arange(E)
    if mode == "reroute" and disabled:
        eligible = np.array([e for e in range(E) if e not in disabled], dtype=np.int64)
    # Descending p; exact ties go to the lower expert index (lexsort: last key is primary).
    order = eligible[np.lexsort((eligible, -p[eligible]))]
    if skip_top + k > order.shape[0]:
        raise ValueError(f"only {order.shape[0]} eligible experts for skip-top {skip_top} + k {k}")
    idx = order[skip_top:skip_top + k]
    w = p[idx].copy()
    if norm_topk_prob and k > 1:
        w = w / (seq_sum(w) + 1e-20)
    active = np.array([not (mode == "drop" and int(e) in disabled) for e in idx])
    gap = math.inf
    for i in range(max(skip_top - 1, 0), min(skip_top + k, order.shape[0] - 1)):
        gap = min(gap, float(p[order[i]] - p[order[i + 1]]))
    return idx, w, active, gap


def moe_ffn(cfg, x, w, layer, mask):
    """MoE FFN of one layer; x [T, H]. Returns y [T, H], idx [T, k], weights [T, k], min gap."""
    prefix = f"model.layers.{layer}.mlp"
    T = x.shape[0]
    p = softmax(linear(x, w[prefix + ".gate.weight"]))          # [T, E], over ALL experts
    k = mask.k_for(layer, int(cfg.num_experts_per_tok))
    disabled = mask.disabled_for(layer)
    skip = mask.skip_for(layer)
    y = np.zeros_like(x)
    idx_all = np.zeros((T, k), dtype=np.int64)
    w_all = np.zeros((T, k))
    gap = math.inf
    act_all = np.zeros((T, k), dtype=bool)
    for t in range(T):
        idx, wt, active, g = route(p[t], k, disabled, skip, mask.mode, cfg.norm_topk_prob)
        idx_all[t], w_all[t], act_all[t] = idx, wt, active
        gap = min(gap, g)
    # Each expert runs once on the tokens that use it; per token, the expert terms are then
    # added in rank order.
    outs = {}                                                    # expert -> {token: [H]}
    for e in sorted({int(e) for e in idx_all[act_all]}):
        toks = [t for t in range(T) if any(idx_all[t, j] == e and act_all[t, j] for j in range(k))]
        outs[e] = dict(zip(toks, mlp(x[toks], f"{prefix}.experts.{e}", w)))
    for t in range(T):
        for j in range(k):
            if act_all[t, j]:
                y[t] += w_all[t, j] * outs[int(idx_all[t, j])][t]
    if cfg.n_shared_width > 0 and mask.shared_on(layer):
        y += mlp(x, prefix + ".shared_experts", w)
    return y, idx_all, w_all, gap


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------

def feed_forward_shapes(c, i, H, router_bias=False):
    """{tensor name: shape} of layer i's feed-forward half: the dense MLP, or the router (with
    V3's selection bias when router_bias), the routed experts and the fused shared experts."""
    p = f"model.layers.{i}.mlp."
    want = {}
    if c.is_moe_layer(i):
        F, E = c.moe_intermediate_size, int(c.n_routed_experts)
        want[p + "gate.weight"] = (E, H)
        if router_bias:
            want[p + "gate.e_score_correction_bias"] = (E,)
        units = [(f"experts.{e}.", F) for e in range(E)]
        if c.n_shared_width > 0:
            units.append(("shared_experts.", c.n_shared_width))
    else:
        units = [("", c.intermediate_size)]
    for prefix, width in units:
        want[p + prefix + "gate_proj.weight"] = (width, H)
        want[p + prefix + "up_proj.weight"] = (width, H)
        want[p + prefix + "down_proj.weight"] = (H, width)
    return want


class Model:
    def __init__(self, model_dir):
        self.cfg = load_config(model_dir)
        self.w = load_weights(model_dir)
        self._check_tensors()

    def _check_tensors(self):
        c, w = self.cfg, self.w
        H, hd = c.hidden_size, c.head_dim
        want = {"model.embed_tokens.weight": (c.vocab_size, H), "model.norm.weight": (H,)}
        if not c.tie_word_embeddings:
            want["lm_head.weight"] = (c.vocab_size, H)
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}."
            want[p + "input_layernorm.weight"] = (H,)
            want[p + "post_attention_layernorm.weight"] = (H,)
            want[p + "self_attn.q_proj.weight"] = (c.num_attention_heads * hd, H)
            want[p + "self_attn.k_proj.weight"] = (c.num_key_value_heads * hd, H)
            want[p + "self_attn.v_proj.weight"] = (c.num_key_value_heads * hd, H)
            want[p + "self_attn.o_proj.weight"] = (H, c.num_attention_heads * hd)
            want.update(feed_forward_shapes(c, i, H))
        for name, shape in want.items():
            if name not in w:
                raise ValueError(f"checkpoint lacks tensor '{name}'")
            if tuple(w[name].shape) != shape:
                raise ValueError(f"tensor '{name}' has shape {list(w[name].shape)}, expected {list(shape)}")

    def forward(self, ids, mask=None):
        """One pass over all tokens (positions 0..T-1). Returns a dict with logits [T, V],
        routing {layer: [T, k]}, gate_weights {layer: [T, k]} and min_boundary_gap."""
        c, w = self.cfg, self.w
        mask = mask or ExpertMask()
        mask.validate(c)
        ids = [int(i) for i in ids]
        for i in ids:
            if not 0 <= i < c.vocab_size:
                raise ValueError(f"token id {i} outside vocabulary of {c.vocab_size}")
        T = len(ids)
        x = w["model.embed_tokens.weight"][ids]                     # [T, H]
        cos, sin = rope_tables(c, T, range(T))
        routing, gate_weights, gap = {}, {}, math.inf
        for i in range(c.num_hidden_layers):
            p = f"model.layers.{i}"
            h = x + attention(c, rms_norm(x, w[p + ".input_layernorm.weight"], c.rms_norm_eps),
                              w, p + ".self_attn", cos, sin)
            hn = rms_norm(h, w[p + ".post_attention_layernorm.weight"], c.rms_norm_eps)
            if c.is_moe_layer(i):
                y, idx, wt, g = moe_ffn(c, hn, w, i, mask)
                routing[i], gate_weights[i] = idx, wt
                gap = min(gap, g)
            else:
                y = mlp(hn, p + ".mlp", w)
            x = h + y
        x = rms_norm(x, w["model.norm.weight"], c.rms_norm_eps)
        head = w["model.embed_tokens.weight"] if c.tie_word_embeddings else w["lm_head.weight"]
        return {"logits": linear(x, head), "routing": routing, "gate_weights": gate_weights,
                "min_boundary_gap": gap}


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
        "min_boundary_gap": res["min_boundary_gap"],
    }))


if __name__ == "__main__":
    main()
