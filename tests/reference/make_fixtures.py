#!/usr/bin/python3
"""Writes the small random DeepSeekMoE checkpoints and their golden outputs under tests/fixtures/.

Regenerate (from the repository root):
    /usr/bin/python3 tests/reference/make_fixtures.py
(`--out DIR` writes elsewhere; `--only NAME` regenerates one fixture.)

Each fixture is a directory with config.json (published DeepSeekMoE key set, model_type
"deepseek"), HF safetensors weights (model.safetensors, or model-0000i-of-0000N.safetensors plus
model.safetensors.index.json) and golden.json computed by deepseek_moe_ref.py in float64 from the
weights as written. Everything is deterministic: fixed seeds, token ids redrawn with the next seed
until every case's routing decisions are at least GAP_MIN away from a tie.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_moe_ref as ref  # noqa: E402

# Smallest allowed router-probability gap at any ordering the routing depends on (see
# deepseek_moe_ref.route); far above what float32 arithmetic in the engine can move.
GAP_MIN = 1e-4

# ---------------------------------------------------------------------------------------------
# fixture definitions
# ---------------------------------------------------------------------------------------------

FIXTURES = [
    dict(name="f32_single", seed=101, dtype="F32", shards=1, n_tokens=16, mask_layer=1,
         summary="single-file F32; layer 0 dense, layers 1-2 MoE; 16 routed experts, top-4, "
                 "2 shared experts (fused width 24); norm_topk_prob false",
         config=dict(vocab_size=96, hidden_size=48, intermediate_size=80, moe_intermediate_size=12,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                     n_routed_experts=16, n_shared_experts=2, num_experts_per_tok=4,
                     first_k_dense_replace=1, moe_layer_freq=1, norm_topk_prob=False,
                     rms_norm_eps=1e-6, rope_theta=10000, max_position_embeddings=4096)),
    dict(name="f32_sharded_gqa", seed=202, dtype="F32", shards=3, n_tokens=18, mask_layer=2,
         summary="3 F32 shards with index; MoE layers 0 and 2 (first_k_dense_replace 0, "
                 "moe_layer_freq 2), layer 1 dense; GQA 6 query heads on 2 kv heads; 12 routed "
                 "experts, top-3, 1 shared expert; norm_topk_prob true",
         config=dict(vocab_size=80, hidden_size=48, intermediate_size=64, moe_intermediate_size=16,
                     num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
                     n_routed_experts=12, n_shared_experts=1, num_experts_per_tok=3,
                     first_k_dense_replace=0, moe_layer_freq=2, norm_topk_prob=True,
                     rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=2048)),
    dict(name="bf16_tied", seed=303, dtype="BF16", shards=1, n_tokens=14, mask_layer=1,
         summary="single-file BF16; layer 0 dense, layer 1 MoE; no shared experts "
                 "(n_shared_experts null); 8 routed experts, top-2, norm_topk_prob true; "
                 "tie_word_embeddings true (no lm_head.weight); multi-query attention (1 kv head)",
         config=dict(vocab_size=64, hidden_size=32, intermediate_size=48, moe_intermediate_size=8,
                     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                     n_routed_experts=8, n_shared_experts=None, num_experts_per_tok=2,
                     first_k_dense_replace=1, moe_layer_freq=1, norm_topk_prob=True,
                     rms_norm_eps=1e-6, rope_theta=10000, max_position_embeddings=4096,
                     tie_word_embeddings=True)),
    dict(name="f32_rope_linear", seed=404, dtype="F32", shards=1, n_tokens=20, mask_layer=None,
         summary="single-file F32; rope_scaling linear factor 4 (positions / 4), rope_theta 500; "
                 "both layers MoE; 8 routed experts, top-2, 1 shared expert",
         config=dict(vocab_size=72, hidden_size=32, intermediate_size=48, moe_intermediate_size=8,
                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                     n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2,
                     first_k_dense_replace=0, moe_layer_freq=1, norm_topk_prob=False,
                     rms_norm_eps=1e-6, rope_theta=500.0, max_position_embeddings=4096,
                     rope_scaling={"type": "linear", "factor": 4.0})),
    dict(name="f32_rope_dynamic", seed=505, dtype="F32", shards=1, n_tokens=16, mask_layer=None,
         short_tokens=8,
         summary="single-file F32; rope_scaling dynamic (NTK) factor 2 with "
                 "max_position_embeddings 8: the 16-token case runs with the scaled base, the "
                 "8-token case with the plain one; layer 0 dense, layer 1 MoE; 10 routed experts, "
                 "top-3, 1 shared expert; norm_topk_prob true",
         config=dict(vocab_size=64, hidden_size=32, intermediate_size=48, moe_intermediate_size=8,
                     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                     n_routed_experts=10, n_shared_experts=1, num_experts_per_tok=3,
                     first_k_dense_replace=1, moe_layer_freq=1, norm_topk_prob=True,
                     rms_norm_eps=1e-6, rope_theta=10000, max_position_embeddings=8,
                     rope_scaling={"type": "dynamic", "factor": 2.0})),
    dict(name="f32_dense2_4layers", seed=606, dtype="F32", shards=1, n_tokens=15, mask_layer=2,
         summary="single-file F32; 4 layers, first_k_dense_replace 2 (layers 0-1 dense, 2-3 MoE); "
                 "GQA 4 query heads on 2 kv heads (head dim 10); 16 routed experts, top-6, "
                 "2 shared experts (fused width 16); norm_topk_prob false",
         config=dict(vocab_size=100, hidden_size=40, intermediate_size=64, moe_intermediate_size=8,
                     num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                     n_routed_experts=16, n_shared_experts=2, num_experts_per_tok=6,
                     first_k_dense_replace=2, moe_layer_freq=1, norm_topk_prob=False,
                     rms_norm_eps=1e-5, rope_theta=10000, max_position_embeddings=4096)),
]

# The published config's key set and fixed values (deepseek-moe-16b-base), completed per fixture.
CONFIG_TEMPLATE = {
    "architectures": ["DeepseekForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "auto_map": {
        "AutoConfig": "configuration_deepseek.DeepseekConfig",
        "AutoModel": "modeling_deepseek.DeepseekModel",
        "AutoModelForCausalLM": "modeling_deepseek.DeepseekForCausalLM",
    },
    "aux_loss_alpha": 0.001,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "first_k_dense_replace": None,
    "hidden_act": "silu",
    "hidden_size": None,
    "initializer_range": 0.02,
    "intermediate_size": None,
    "max_position_embeddings": None,
    "model_type": "deepseek",
    "moe_intermediate_size": None,
    "moe_layer_freq": None,
    "n_routed_experts": None,
    "n_shared_experts": None,
    "norm_topk_prob": None,
    "num_attention_heads": None,
    "num_experts_per_tok": None,
    "num_hidden_layers": None,
    "num_key_value_heads": None,
    "pretraining_tp": 1,
    "rms_norm_eps": None,
    "rope_scaling": None,
    "rope_theta": None,
    "scoring_func": "softmax",
    "seq_aux": True,
    "tie_word_embeddings": False,
    "torch_dtype": None,
    "transformers_version": "4.36.0",
    "use_cache": True,
    "vocab_size": None,
}


def make_config(fx):
    cfg = dict(CONFIG_TEMPLATE)
    cfg.update(fx["config"])
    cfg["torch_dtype"] = "bfloat16" if fx["dtype"] == "BF16" else "float32"
    missing = [k for k, v in cfg.items() if v is None and k not in ("n_shared_experts", "rope_scaling")]
    assert not missing, missing
    return cfg


# ---------------------------------------------------------------------------------------------
# random weights
# ---------------------------------------------------------------------------------------------

def make_weights(cfg, rng):
    """[(name, float32 array)] in checkpoint order. Scales keep activations O(1), router logits
    spread (std ≈ 1.5 on normalised inputs) and output logits O(1)–O(10)."""
    c = ref.Config(cfg)
    H, hd, V = c.hidden_size, c.head_dim, c.vocab_size
    nh, nkv = c.num_attention_heads, c.num_key_value_heads
    out = []

    def normal(name, shape, std):
        out.append((name, (rng.standard_normal(shape) * std).astype(np.float32)))

    def norm_weight(name):
        out.append((name, (1.0 + 0.1 * rng.standard_normal((H,))).astype(np.float32)))

    def mlp(prefix, width, down_gain):
        normal(prefix + ".gate_proj.weight", (width, H), 1.0 / math.sqrt(H))
        normal(prefix + ".up_proj.weight", (width, H), 1.0 / math.sqrt(H))
        normal(prefix + ".down_proj.weight", (H, width), down_gain / math.sqrt(width))

    if c.tie_word_embeddings:
        normal("model.embed_tokens.weight", (V, H), 3.0 / math.sqrt(H))
    else:
        normal("model.embed_tokens.weight", (V, H), 1.0)
    for i in range(c.num_hidden_layers):
        p = f"model.layers.{i}"
        norm_weight(p + ".input_layernorm.weight")
        normal(p + ".self_attn.q_proj.weight", (nh * hd, H), 1.2 / math.sqrt(H))
        normal(p + ".self_attn.k_proj.weight", (nkv * hd, H), 1.2 / math.sqrt(H))
        normal(p + ".self_attn.v_proj.weight", (nkv * hd, H), 1.0 / math.sqrt(H))
        normal(p + ".self_attn.o_proj.weight", (H, nh * hd), 1.0 / math.sqrt(nh * hd))
        norm_weight(p + ".post_attention_layernorm.weight")
        if c.is_moe_layer(i):
            normal(p + ".mlp.gate.weight", (c.n_routed_experts, H), 1.5 / math.sqrt(H))
            for e in range(c.n_routed_experts):
                mlp(f"{p}.mlp.experts.{e}", c.moe_intermediate_size, 2.0)
            if c.n_shared_width > 0:
                mlp(p + ".mlp.shared_experts", c.n_shared_width, 1.0)
        else:
            mlp(p + ".mlp", c.intermediate_size, 1.0)
    norm_weight("model.norm.weight")
    if not c.tie_word_embeddings:
        normal("lm_head.weight", (V, H), 3.0 / math.sqrt(H))
    return out


def to_bf16_bytes(a):
    """float32 -> bfloat16 bytes, round to nearest even (as torch's .to(torch.bfloat16))."""
    bits = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


# ---------------------------------------------------------------------------------------------
# safetensors writing
# ---------------------------------------------------------------------------------------------

def write_safetensors(path, tensors, dtype):
    """tensors: [(name, float32 array)]. Header JSON padded with spaces to an 8-byte boundary."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors:
        blob = to_bf16_bytes(arr) if dtype == "BF16" else np.ascontiguousarray(arr, "<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    return offset


def write_checkpoint(out_dir, tensors, dtype, shards):
    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors, dtype)
        return
    # Split in checkpoint order into shards of roughly equal byte size (a layer may straddle two).
    elem = 2 if dtype == "BF16" else 4
    sizes = [a.size * elem for _, a in tensors]
    total = sum(sizes)
    groups, acc = [[] for _ in range(shards)], 0
    for (name, arr), size in zip(tensors, sizes):
        g = min(shards - 1, acc * shards // total)
        groups[g].append((name, arr))
        acc += size
    weight_map = {}
    for g, group in enumerate(groups):
        fname = f"model-{g + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(out_dir, fname), group, dtype)
        for name, _ in group:
            weight_map[name] = fname
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# golden cases
# ---------------------------------------------------------------------------------------------

def most_used_experts(routing, layer, n):
    """The n experts selected most often in `layer` (ties to the lower index)."""
    counts = np.bincount(routing[layer].ravel(), minlength=1)
    order = sorted(range(len(counts)), key=lambda e: (-counts[e], e))
    return sorted(order[:n])


def case_list(fx, cfg, base):
    """[(name, n_tokens or None, mask, mode)] for one fixture; base is the baseline result."""
    cases = [("baseline", None, "", "reroute")]
    if fx.get("short_tokens"):
        cases.append((f"baseline_first_{fx['short_tokens']}", fx["short_tokens"], "", "reroute"))
    L = fx["mask_layer"]
    if L is None:
        return cases
    K, E = cfg["num_experts_per_tok"], cfg["n_routed_experts"]
    off3 = ",".join(map(str, most_used_experts(base["routing"], L, 3)))
    off2 = ",".join(map(str, most_used_experts(base["routing"], L, 2)))
    off1 = most_used_experts(base["routing"], L, 1)[0]
    has_shared = bool(cfg.get("n_shared_experts"))
    cases += [
        (f"disable_{off3.replace(',', '_')}_in_L{L}_reroute", None, f"L{L}:{off3}", "reroute"),
        (f"disable_{off3.replace(',', '_')}_in_L{L}_drop", None, f"L{L}:{off3}", "drop"),
        (f"disable_{off1}_everywhere_reroute", None, f"*:{off1}", "reroute"),
    ]
    if has_shared:
        cases.append(("shared_off", None, "*:shared", "reroute"))
        cases.append((f"shared_off_k{K + 1}", None, f"*:shared;*:k={K + 1}", "reroute"))
    cases += [
        ("k1", None, "*:k=1", "reroute"),
        (f"k{min(K + 2, E)}", None, f"*:k={min(K + 2, E)}", "reroute"),
        ("skip_top2", None, "*:skip-top=2", "reroute"),
        (f"L{L}_disable_{off2.replace(',', '_')}_skip_top1_reroute", None,
         f"L{L}:{off2};*:skip-top=1", "reroute"),
        (f"L{L}_disable_{off2.replace(',', '_')}_skip_top1_drop", None,
         f"L{L}:{off2};*:skip-top=1", "drop"),
    ]
    # Layer-scoped k, shared-off and skip-top (the last MoE layer gets the skip-top).
    last = ref.Config(cfg).moe_layers()[-1]
    scoped = [f"L{L}:k={max(K - 1, 1)}"] + ([f"L{L}:shared"] if has_shared else []) + [f"L{last}:skip-top=1"]
    cases.append(("layer_scoped_k_shared_skip", None, ";".join(scoped), "reroute"))
    return cases


def draw_ids(vocab, n, seed):
    rng = np.random.default_rng(seed)
    # Position 0 is the BOS id (0), as the tokenizer would put it.
    return [0] + [int(t) for t in rng.integers(2, vocab, size=n - 1)]


def compute_cases(fx, cfg, model):
    """Draws token ids until every case's routing has a gap >= GAP_MIN; returns case dicts."""
    for attempt in range(1000):
        ids = draw_ids(cfg["vocab_size"], fx["n_tokens"], fx["seed"] * 1000 + attempt)
        base = model.forward(ids)
        if base["min_boundary_gap"] < GAP_MIN:
            continue
        results = []
        for name, n, spec, mode in case_list(fx, cfg, base):
            case_ids = ids[:n] if n else ids
            res = base if (spec == "" and n is None) else model.forward(case_ids, ref.ExpertMask(spec, mode))
            results.append((name, case_ids, spec, mode, res))
        gap = min(r[4]["min_boundary_gap"] for r in results)
        if gap >= GAP_MIN:
            return results
    raise RuntimeError(f"{fx['name']}: no token draw met the routing gap of {GAP_MIN}")


def num(x):
    x = float(x)
    assert math.isfinite(x), x
    return repr(x)


def rows(matrix, fmt, indent):
    pad = " " * indent
    lines = [pad + "[" + ",".join(fmt(v) for v in row) + "]" for row in matrix]
    return "[\n" + ",\n".join(lines) + "\n" + " " * (indent - 1) + "]"


def golden_text(fx, results):
    """golden.json with one row (position) per line, floats as Python repr of the float64."""
    desc = (f"{fx['name']}: {fx['summary']}. Goldens computed in float64 by "
            "tests/reference/deepseek_moe_ref.py from the weights as stored; each case is one "
            "forward pass over all its ids (positions 0..T-1). logits [T][vocab]; routing and "
            "gate_weights per MoE layer: the selected experts per position in rank order "
            "(descending router probability, exact ties to the lower expert index) and their "
            "weights after norm_topk_prob; in drop mode the dropped experts stay listed with "
            "their weights but add nothing. min_boundary_gap: smallest router-probability "
            "difference at any ordering the routing depends on (skip-top boundary, rank order, "
            "k-th vs (k+1)-th eligible).")
    parts = []
    for name, ids, spec, mode, res in results:
        layers = sorted(res["routing"])
        routing = ",\n".join(f'    "{l}": ' + rows(res["routing"][l], str, 5) for l in layers)
        weights = ",\n".join(f'    "{l}": ' + rows(res["gate_weights"][l], num, 5) for l in layers)
        parts.append(
            "  {\n"
            f'   "name": {json.dumps(name)},\n'
            f'   "ids": [{",".join(str(i) for i in ids)}],\n'
            f'   "mask": {json.dumps(spec)},\n'
            f'   "mask_mode": {json.dumps(mode)},\n'
            f'   "logits": {rows(res["logits"], num, 4)},\n'
            f'   "routing": {{\n{routing}\n   }},\n'
            f'   "gate_weights": {{\n{weights}\n   }},\n'
            f'   "min_boundary_gap": {num(res["min_boundary_gap"])}\n'
            "  }")
    return ("{\n"
            f' "description": {json.dumps(desc, ensure_ascii=False)},\n'
            ' "cases": [\n' + ",\n".join(parts) + "\n ]\n}\n")


# ---------------------------------------------------------------------------------------------

def clean_dir(d):
    """Removes the files a previous run wrote (and only those)."""
    for f in os.listdir(d):
        if f.endswith(".safetensors") or f in ("model.safetensors.index.json", "config.json", "golden.json"):
            os.remove(os.path.join(d, f))


def make_fixture(fx, out_root):
    d = os.path.join(out_root, fx["name"])
    os.makedirs(d, exist_ok=True)
    clean_dir(d)
    cfg = make_config(fx)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    tensors = make_weights(cfg, np.random.default_rng(fx["seed"]))
    write_checkpoint(d, tensors, fx["dtype"], fx["shards"])
    model = ref.Model(d)   # goldens come from the weights exactly as stored
    results = compute_cases(fx, cfg, model)
    with open(os.path.join(d, "golden.json"), "w") as f:
        f.write(golden_text(fx, results))
    return d, results


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(here), "fixtures"))
    ap.add_argument("--only", action="append", help="fixture name (repeatable)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    names = {fx["name"] for fx in FIXTURES}
    for n in args.only or []:
        if n not in names:
            ap.error(f"unknown fixture {n!r}; known: {', '.join(sorted(names))}")
    for fx in FIXTURES:
        if args.only and fx["name"] not in args.only:
            continue
        d, results = make_fixture(fx, args.out)
        if not args.quiet:
            size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.endswith(".safetensors"))
            gap = min(r[4]["min_boundary_gap"] for r in results)
            amax = max(float(np.abs(r[4]["logits"]).max()) for r in results)
            print(f"{fx['name']}: {len(results)} cases, weights {size} bytes, "
                  f"min gap {gap:.3g}, max |logit| {amax:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
