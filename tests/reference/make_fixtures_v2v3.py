#!/usr/bin/python3
"""Writes the small random DeepSeek-V2 / V2-Lite / V3 checkpoints and their golden outputs under
tests/fixtures/ (v2lite_yarn, v2_group_yarn, v3_fp8_mtp).

Regenerate (from the repository root):
    /usr/bin/python3 tests/reference/make_fixtures_v2v3.py
(`--out DIR` writes elsewhere; `--only NAME` regenerates one fixture.)

Each fixture is a directory with config.json (the published V2 / V3 key set, dims shrunk),
safetensors weights written by this script (F32, BF16, or V3-style FP8: F8_E4M3 weights with
F32 `<name>_scale_inv` 128x128 block scales, BF16 norms / embeddings / router / lm_head, F32
e_score_correction_bias) and golden.json computed by deepseek_v2v3_ref.py in float64 from the
weights as stored. Deterministic: fixed seeds; token ids drawn from a fixed seed sequence
starting at `ids_attempt`, redrawn until every case's routing is at least GAP_MIN from a tie.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_v2v3_ref as ref  # noqa: E402
import make_fixtures as mf  # noqa: E402  (bf16 rounding, id drawing, number formatting)

GAP_MIN = 1e-4

YARN_V2 = {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
           "original_max_position_embeddings": 4096, "type": "yarn"}
YARN_V3 = {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
           "original_max_position_embeddings": 4096, "type": "yarn"}

FIXTURES = [
    dict(name="v2lite_yarn", seed=701, dtype="F32", shards=1, n_tokens=14, mask_layer=1,
         ids_attempt=36, expert_gain=2.0,
         summary="DeepSeek-V2-Lite shape (model_type deepseek_v2, q_lora_rank null: q_proj); "
                 "single-file F32; 3 layers (0 dense, 1-2 MoE); 4 heads, qk_nope 16 + qk_rope 16, "
                 "v_head_dim 12, kv_lora_rank 24; softmax greedy top-4 of 16 routed experts, "
                 "2 shared (fused width 16); norm_topk_prob false, routed_scaling_factor 1.0; "
                 "YaRN factor 40, original 4096, beta 32/1, mscale = mscale_all_dim = 0.707 with "
                 "qk_rope_head_dim 16 (ramp low = floor(2.62) = 2, high = ceil(5.63) = 6)",
         config=dict(vocab_size=80, hidden_size=48, intermediate_size=72, moe_intermediate_size=8,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                     q_lora_rank=None, kv_lora_rank=24, qk_nope_head_dim=16, qk_rope_head_dim=16,
                     v_head_dim=12, n_routed_experts=16, n_shared_experts=2, num_experts_per_tok=4,
                     first_k_dense_replace=1, moe_layer_freq=1, n_group=1, topk_group=1,
                     topk_method="greedy", scoring_func="softmax", norm_topk_prob=False,
                     routed_scaling_factor=1.0, rope_scaling=YARN_V2)),
    dict(name="v2_group_yarn", seed=702, dtype="BF16", shards=1, n_tokens=14, mask_layer=1,
         ids_attempt=13, expert_gain=0.25,
         summary="DeepSeek-V2 shape (model_type deepseek_v2, q_lora_rank 32: q_a_proj -> "
                 "q_a_layernorm -> q_b_proj); single-file BF16; 3 layers (0 dense, 1-2 MoE); "
                 "4 heads, qk_nope 16 + qk_rope 32, v_head_dim 16, kv_lora_rank 24; softmax "
                 "group_limited_greedy, 16 routed experts in n_group 4 (experts 4g..4g+3), "
                 "topk_group 2, top-4, 2 shared (fused width 16); norm_topk_prob false, "
                 "routed_scaling_factor 16.0; YaRN factor 16, original 1024, beta 32/1, "
                 "mscale = mscale_all_dim = 0.707 (ramp low = floor(2.83) = 2, high = ceil(8.85) = 9)",
         config=dict(vocab_size=72, hidden_size=64, intermediate_size=96, moe_intermediate_size=8,
                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                     q_lora_rank=32, kv_lora_rank=24, qk_nope_head_dim=16, qk_rope_head_dim=32,
                     v_head_dim=16, n_routed_experts=16, n_shared_experts=2, num_experts_per_tok=4,
                     first_k_dense_replace=1, moe_layer_freq=1, n_group=4, topk_group=2,
                     topk_method="group_limited_greedy", scoring_func="softmax",
                     norm_topk_prob=False, routed_scaling_factor=16.0,
                     rope_scaling=dict(YARN_V2, factor=16, original_max_position_embeddings=1024))),
    dict(name="v3_fp8_mtp", seed=703, dtype="FP8", shards=2, n_tokens=14, mask_layer=1,
         ids_attempt=3, expert_gain=0.8, bias_std=0.1,
         summary="DeepSeek-V3 shape (model_type deepseek_v3) with FP8 weights as published: "
                 "every linear weight of attention / dense MLP / experts / shared experts is "
                 "F8_E4M3 with an F32 <name>_scale_inv [ceil(out/128), ceil(in/128)] (hidden 200 "
                 "and intermediate 136 make partial edge blocks); embeddings, norms, router "
                 "(mlp.gate.weight), lm_head and the MTP eh_proj / enorm / hnorm / shared_head are "
                 "BF16, mlp.gate.e_score_correction_bias F32; 2 shards + index; 3 layers (0 dense, "
                 "1-2 MoE) plus the multi-token-prediction layer stored as model.layers.3 "
                 "(num_nextn_predict_layers 1; ignored by inference); q_lora_rank 48, 2 heads, "
                 "qk_nope 32 + qk_rope 64, v_head_dim 24, kv_lora_rank 32; sigmoid noaux_tc, "
                 "16 routed experts in n_group 4, topk_group 2, top-4, 1 shared (width 8); "
                 "norm_topk_prob true, routed_scaling_factor 2.5; YaRN as published for V3 "
                 "(factor 40, original 4096, beta 32/1, mscale = mscale_all_dim = 1.0)",
         config=dict(vocab_size=64, hidden_size=200, intermediate_size=136, moe_intermediate_size=8,
                     num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
                     q_lora_rank=48, kv_lora_rank=32, qk_nope_head_dim=32, qk_rope_head_dim=64,
                     v_head_dim=24, n_routed_experts=16, n_shared_experts=1, num_experts_per_tok=4,
                     first_k_dense_replace=1, moe_layer_freq=1, n_group=4, topk_group=2,
                     topk_method="noaux_tc", scoring_func="sigmoid", norm_topk_prob=True,
                     routed_scaling_factor=2.5, rope_scaling=YARN_V3, num_nextn_predict_layers=1)),
]

# The published config key sets (deepseek-v2.json / deepseek-v3.json), completed per fixture.
V2_TEMPLATE = {
    "architectures": ["DeepseekV2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "aux_loss_alpha": 0.001, "bos_token_id": 0, "eos_token_id": 1, "ep_size": 1,
    "first_k_dense_replace": None, "hidden_act": "silu", "hidden_size": None, "initializer_range": 0.02,
    "intermediate_size": None, "kv_lora_rank": None, "max_position_embeddings": 163840,
    "model_type": "deepseek_v2", "moe_intermediate_size": None, "moe_layer_freq": None, "n_group": None,
    "n_routed_experts": None, "n_shared_experts": None, "norm_topk_prob": None,
    "num_attention_heads": None, "num_experts_per_tok": None, "num_hidden_layers": None,
    "num_key_value_heads": None, "pretraining_tp": 1, "q_lora_rank": None, "qk_nope_head_dim": None,
    "qk_rope_head_dim": None, "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 10000,
    "routed_scaling_factor": None, "scoring_func": None, "seq_aux": True, "tie_word_embeddings": False,
    "topk_group": None, "topk_method": None, "torch_dtype": None, "use_cache": True, "v_head_dim": None,
    "vocab_size": None,
}
V3_TEMPLATE = dict(V2_TEMPLATE, architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3",
                   num_nextn_predict_layers=None,
                   quantization_config={"activation_scheme": "dynamic", "fmt": "e4m3",
                                        "quant_method": "fp8", "weight_block_size": [128, 128]})
NULLABLE = ("q_lora_rank",)


def make_config(fx):
    v3 = fx["config"].get("num_nextn_predict_layers") is not None
    cfg = dict(V3_TEMPLATE if v3 else V2_TEMPLATE)
    cfg.update(fx["config"])
    cfg["torch_dtype"] = "float32" if fx["dtype"] == "F32" else "bfloat16"
    if fx["dtype"] != "FP8":
        cfg.pop("quantization_config", None)
    missing = [k for k, v in cfg.items() if v is None and k not in NULLABLE]
    assert not missing, missing
    return dict(sorted(cfg.items()))


# ---------------------------------------------------------------------------------------------
# random weights: [(name, float32 array, kind)], kind decides the stored dtype for FP8 fixtures
# ---------------------------------------------------------------------------------------------

def make_weights(cfg_raw, rng, fx):
    c = ref.Config(cfg_raw)
    H, V, nh = c.hidden_size, c.vocab_size, c.num_attention_heads
    dq, dn, dv, dr, cr = c.qk_head_dim, c.qk_nope_head_dim, c.v_head_dim, c.qk_rope_head_dim, c.kv_lora_rank
    out = []

    def normal(name, shape, std, kind="linear"):
        out.append((name, (rng.standard_normal(shape) * std).astype(np.float32), kind))

    def norm_weight(name, n):
        out.append((name, (1.0 + 0.1 * rng.standard_normal((n,))).astype(np.float32), "norm"))

    def mlp(prefix, width, down_gain):
        normal(prefix + ".gate_proj.weight", (width, H), 1.0 / math.sqrt(H))
        normal(prefix + ".up_proj.weight", (width, H), 1.0 / math.sqrt(H))
        normal(prefix + ".down_proj.weight", (H, width), down_gain / math.sqrt(width))

    embed = (rng.standard_normal((V, H))).astype(np.float32)
    head = (rng.standard_normal((V, H)) * 3.0 / math.sqrt(H)).astype(np.float32)
    out.append(("model.embed_tokens.weight", embed, "embed"))
    n_layers = c.num_hidden_layers + c.num_nextn_predict_layers
    for i in range(n_layers):
        p = f"model.layers.{i}"
        mtp = i >= c.num_hidden_layers
        if mtp:
            # Multi-token-prediction module (DS3 README_WEIGHTS): its embed_tokens and
            # shared_head.head hold the same values as the main embedding / lm_head.
            out.append((p + ".embed_tokens.weight", embed, "embed"))
            norm_weight(p + ".enorm.weight", H)
            norm_weight(p + ".hnorm.weight", H)
            normal(p + ".eh_proj.weight", (H, 2 * H), 1.0 / math.sqrt(2 * H), kind="mtp_bf16")
        norm_weight(p + ".input_layernorm.weight", H)
        a = p + ".self_attn"
        if c.q_lora_rank is None:
            normal(a + ".q_proj.weight", (nh * dq, H), 1.2 / math.sqrt(H))
        else:
            r = int(c.q_lora_rank)
            normal(a + ".q_a_proj.weight", (r, H), 1.0 / math.sqrt(H))
            norm_weight(a + ".q_a_layernorm.weight", r)
            normal(a + ".q_b_proj.weight", (nh * dq, r), 1.2 / math.sqrt(r))
        normal(a + ".kv_a_proj_with_mqa.weight", (cr + dr, H), 1.0 / math.sqrt(H))
        norm_weight(a + ".kv_a_layernorm.weight", cr)
        normal(a + ".kv_b_proj.weight", (nh * (dn + dv), cr), 1.2 / math.sqrt(cr))
        normal(a + ".o_proj.weight", (H, nh * dv), 1.0 / math.sqrt(nh * dv))
        norm_weight(p + ".post_attention_layernorm.weight", H)
        if c.is_moe_layer(i):
            E = int(c.n_routed_experts)
            normal(p + ".mlp.gate.weight", (E, H), 1.5 / math.sqrt(H), kind="gate")
            if c.topk_method == "noaux_tc":
                normal(p + ".mlp.gate.e_score_correction_bias", (E,), fx["bias_std"], kind="bias")
            for e in range(E):
                mlp(f"{p}.mlp.experts.{e}", c.moe_intermediate_size, fx["expert_gain"])
            if c.n_shared_width > 0:
                mlp(p + ".mlp.shared_experts", c.n_shared_width, 1.0)
        else:
            mlp(p + ".mlp", c.intermediate_size, 1.0)
        if mtp:
            norm_weight(p + ".shared_head.norm.weight", H)
            out.append((p + ".shared_head.head.weight", head, "head"))
    norm_weight("model.norm.weight", H)
    out.append(("lm_head.weight", head, "head"))
    return out


def quantize_fp8(a, block):
    """float32 [out, in] -> (uint8 e4m3fn codes [out, in], float32 scale_inv [ceil(out/b0),
    ceil(in/b1)]) with scale_inv = amax(block)/448, so W ≈ code_value · scale_inv."""
    b0, b1 = block
    out_f, in_f = a.shape
    s = np.ones((-(-out_f // b0), -(-in_f // b1)), dtype=np.float32)
    q = np.zeros(a.shape, dtype=np.uint8)
    for i in range(s.shape[0]):
        for j in range(s.shape[1]):
            blk = a[i * b0:(i + 1) * b0, j * b1:(j + 1) * b1].astype(np.float64)
            amax = float(np.abs(blk).max())
            if amax > 0:
                s[i, j] = np.float32(amax / ref.E4M3_MAX)
            q[i * b0:(i + 1) * b0, j * b1:(j + 1) * b1] = ref.e4m3_encode(blk / float(s[i, j]))
    return q, s


def encode(name, arr, kind, policy, block):
    """[(name, dtype, bytes, shape)] for one tensor under the fixture's dtype policy."""
    if policy == "F32" or (policy == "FP8" and kind == "bias"):
        return [(name, "F32", np.ascontiguousarray(arr, "<f4").tobytes(), list(arr.shape))]
    if policy == "FP8" and kind == "linear":
        q, s = quantize_fp8(arr, block)
        return [(name, "F8_E4M3", q.tobytes(), list(arr.shape)),
                (name + "_scale_inv", "F32", np.ascontiguousarray(s, "<f4").tobytes(), list(s.shape))]
    return [(name, "BF16", mf.to_bf16_bytes(arr), list(arr.shape))]


def write_safetensors(path, entries):
    """entries: [(name, dtype, bytes, shape)]. Header JSON padded with spaces to 8 bytes."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, blob, shape in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, blob, _ in entries:
            f.write(blob)
    return offset


def write_checkpoint(out_dir, entries, shards, n_layers):
    if shards == 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), entries)
        return
    assert shards == 2
    # Shard 1: embeddings and the inference layers; shard 2: the MTP layer, final norm, lm_head
    # (published V3 also keeps layer 61 in the last shards).
    def second(name):
        return not (name == "model.embed_tokens.weight" or
                    (name.startswith("model.layers.") and int(name.split(".")[2]) < n_layers))
    groups = [[e for e in entries if not second(e[0])], [e for e in entries if second(e[0])]]
    weight_map = {}
    for g, group in enumerate(groups):
        fname = f"model-{g + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(out_dir, fname), group)
        weight_map.update({e[0]: fname for e in group})
    index = {"metadata": {"total_size": sum(len(e[2]) for e in entries)}, "weight_map": weight_map}
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# golden cases
# ---------------------------------------------------------------------------------------------

def usage_order(routing, layer):
    counts = np.bincount(routing[layer].ravel(), minlength=1)
    return sorted(range(len(counts)), key=lambda e: (-counts[e], e))


def few_experts(routing, layer, n, group_size=None):
    """The n most selected experts of `layer`, at most one per group when grouped."""
    chosen, seen = [], set()
    for e in usage_order(routing, layer):
        g = e // group_size if group_size else e
        if g in seen:
            continue
        chosen.append(e)
        seen.add(g)
        if len(chosen) == n:
            break
    return sorted(chosen)


def case_list(c, mask_layer, base):
    """[(name, mask, mode)]."""
    L, K, E = mask_layer, int(c.num_experts_per_tok), int(c.n_routed_experts)
    gsize = E // c.n_group if c.grouped else None
    few3 = few_experts(base["routing"], L, 3, gsize)
    few2 = few3[:2]
    top1 = usage_order(base["routing"], L)[0]
    j3, j2 = ",".join(map(str, few3)), ",".join(map(str, few2))
    u3, u2 = "_".join(map(str, few3)), "_".join(map(str, few2))
    cases = [("baseline", "", "reroute"),
             (f"disable_{u3}_in_L{L}_reroute", f"L{L}:{j3}", "reroute"),
             (f"disable_{u3}_in_L{L}_drop", f"L{L}:{j3}", "drop"),
             (f"disable_{top1}_everywhere_reroute", f"*:{top1}", "reroute")]
    if c.grouped:
        counts = np.bincount(base["groups"][L].ravel(), minlength=c.n_group)
        g = int(sorted(range(c.n_group), key=lambda i: (-counts[i], i))[0])
        members = ",".join(str(e) for e in range(g * gsize, (g + 1) * gsize))
        cases += [(f"disable_group{g}_in_L{L}_reroute", f"L{L}:{members}", "reroute"),
                  (f"disable_group{g}_in_L{L}_drop", f"L{L}:{members}", "drop")]
    if c.n_shared_width > 0:
        cases += [("shared_off", "*:shared", "reroute"),
                  (f"shared_off_k{K + 1}", f"*:shared;*:k={K + 1}", "reroute")]
    cases += [("k1", "*:k=1", "reroute"),
              (f"k{K + 2}", f"*:k={K + 2}", "reroute"),
              ("skip_top2", "*:skip-top=2", "reroute"),
              (f"L{L}_disable_{u2}_skip_top1_reroute", f"L{L}:{j2};*:skip-top=1", "reroute"),
              (f"L{L}_disable_{u2}_skip_top1_drop", f"L{L}:{j2};*:skip-top=1", "drop")]
    last = c.moe_layers()[-1]
    scoped = [f"L{L}:k={max(K - 1, 1)}"] + ([f"L{L}:shared"] if c.n_shared_width > 0 else []) + \
             [f"L{last}:skip-top=1"]
    cases.append(("layer_scoped_k_shared_skip", ";".join(scoped), "reroute"))
    return cases


def compute_cases(fx, model):
    c = model.cfg
    for attempt in range(fx.get("ids_attempt", 0), 2000):
        ids = mf.draw_ids(c.vocab_size, fx["n_tokens"], fx["seed"] * 1000 + attempt)
        base = model.forward(ids)
        if base["min_boundary_gap"] < GAP_MIN:
            continue
        results, ok = [], True
        for name, spec, mode in case_list(c, fx["mask_layer"], base):
            res = base if spec == "" else model.forward(ids, ref.ExpertMask(spec, mode))
            if res["min_boundary_gap"] < GAP_MIN:
                ok = False
                break
            results.append((name, ids, spec, mode, res))
        if ok:
            return attempt, results
    raise RuntimeError(f"{fx['name']}: no token draw met the routing gap of {GAP_MIN}")


MASK_SEMANTICS = (
    "Mask semantics (docs/masks.md extended to grouped routing), per MoE layer and token: "
    "(1) scores over all E routed experts: softmax of the router logits (deepseek_v2) or their "
    "sigmoid (deepseek_v3); the selection score sel is the score (V2) or score + "
    "e_score_correction_bias (V3, selection only); masks never change scores. (2) eligible = all "
    "experts, minus the switched-off ones in reroute mode, then minus the skip-top r eligible "
    "experts with the highest sel (before group selection). (3) grouped routing "
    "(group_limited_greedy, noaux_tc): group g holds experts g*E/n_group..(g+1)*E/n_group-1; a "
    "group with no eligible expert cannot be chosen; group score over the group's eligible "
    "experts only: max sel (V2 group_limited_greedy) or sum of the two highest sel (V3 "
    "noaux_tc; the one sel if only one is eligible); the topk_group selectable groups with the "
    "highest group score are kept; as in the HF code, the eligible experts of the other groups "
    "get selection score 0.0 and remain candidates (DS3 uses -inf; no case here depends on the "
    "difference). (4) selected = the k eligible experts with the highest group-masked sel, rank "
    "order = descending; fewer than k eligible experts is an error. Tie rule: descending value, "
    "exact ties to the lower expert / group index. (5) weights from the UNBIASED scores of the "
    "selected experts: deepseek_v2 (HF remote code): if k>1 and norm_topk_prob w/(sum w+1e-20) "
    "else w*routed_scaling_factor; deepseek_v3: if k>1 and norm_topk_prob w/(sum w+1e-20), then "
    "always w*routed_scaling_factor (k is the mask's k when it overrides). (6) drop mode: steps "
    "2-5 as if nothing were switched off (skip-top still applies); the switched-off experts' "
    "terms are left out, other weights unchanged. (7) y = sum_j w_j*Expert_idx_j(x) + "
    "Shared(x), without the shared term when shared is off.")


def golden_text(fx, cfg, results):
    c = ref.Config(cfg)
    grouped = c.grouped
    desc = (f"{fx['name']}: {fx['summary']}. Goldens computed in float64 by "
            "tests/reference/deepseek_v2v3_ref.py from the weights as stored (FP8 dequantised "
            "W = e4m3 value * scale_inv of its 128x128 block); each case is one forward pass over "
            "all its ids at positions 0..T-1. MLA: per head q = [nope | rope], kv_b_proj rows per "
            "head [k_nope | v], one shared rope key from kv_a_proj_with_mqa[kv_lora_rank:]; RoPE "
            "on adjacent pairs (x[2j], x[2j+1]) of the stored rope dims; YaRN inv_freq with "
            "floor/ceil correction range (HF remote code); softmax scale qk_head_dim^-0.5 * "
            "mscale(factor, mscale_all_dim)^2; q_a_layernorm / kv_a_layernorm eps 1e-6. "
            "Layers >= num_hidden_layers (the MTP layer) are not run. logits [T][vocab]; per MoE "
            "layer: routing = selected experts per position in rank order, gate_weights = their "
            "weights as applied (after norm_topk_prob / routed_scaling_factor), "
            "selection_scores = their selection scores as compared by the top-k (softmax "
            "probability for V2, sigmoid + e_score_correction_bias for V3; 0.0 for an expert of a "
            "group not kept)" +
            (", groups = the kept expert groups per position in descending group score" if grouped else "") +
            "; in drop mode the dropped experts stay listed with their weights but add nothing. "
            "min_boundary_gap: smallest selection-score difference at any ordering the routing "
            "depends on (skip-top boundary, " +
            ("group order among the first topk_group+1 selectable groups, " if grouped else "") +
            "rank order of the selected, k-th vs (k+1)-th candidate after group masking). " +
            MASK_SEMANTICS)
    parts = []
    for name, ids, spec, mode, res in results:
        layers = sorted(res["routing"])

        def block(key, fmt):
            return ",\n".join(f'    "{l}": ' + mf.rows(res[key][l], fmt, 5) for l in layers)
        extra = f'   "groups": {{\n{block("groups", str)}\n   }},\n' if grouped else ""
        parts.append(
            "  {\n"
            f'   "name": {json.dumps(name)},\n'
            f'   "ids": [{",".join(str(i) for i in ids)}],\n'
            f'   "mask": {json.dumps(spec)},\n'
            f'   "mask_mode": {json.dumps(mode)},\n'
            f'   "logits": {mf.rows(res["logits"], mf.num, 4)},\n'
            f'   "routing": {{\n{block("routing", str)}\n   }},\n'
            f'   "gate_weights": {{\n{block("gate_weights", mf.num)}\n   }},\n'
            f'   "selection_scores": {{\n{block("selection_scores", mf.num)}\n   }},\n'
            + extra +
            f'   "min_boundary_gap": {mf.num(res["min_boundary_gap"])}\n'
            "  }")
    return ("{\n"
            f' "description": {json.dumps(desc, ensure_ascii=False)},\n'
            ' "cases": [\n' + ",\n".join(parts) + "\n ]\n}\n")


# ---------------------------------------------------------------------------------------------

def bias_changes(model, ids):
    """Positions x MoE layers whose baseline selection differs when the V3 bias is zeroed."""
    saved = {n: a for n, a in model.w.items() if n.endswith("e_score_correction_bias")}
    try:
        for n in saved:
            model.w[n] = np.zeros_like(saved[n])
        unbiased = model.forward(ids)["routing"]
    finally:
        model.w.update(saved)
    biased = model.forward(ids)["routing"]
    return sum(int(not np.array_equal(np.sort(biased[l][t]), np.sort(unbiased[l][t])))
               for l in biased for t in range(len(ids)))


def clean_dir(d):
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
    c = ref.Config(cfg)
    tensors = make_weights(cfg, np.random.default_rng(fx["seed"]), fx)
    entries = [e for name, arr, kind in tensors for e in encode(name, arr, kind, fx["dtype"], c.fp8_block)]
    write_checkpoint(d, entries, fx["shards"], c.num_hidden_layers)
    model = ref.Model(d)  # goldens come from the weights exactly as stored
    attempt, results = compute_cases(fx, model)
    with open(os.path.join(d, "golden.json"), "w") as f:
        f.write(golden_text(fx, cfg, results))
    return d, attempt, results, model


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
        d, attempt, results, model = make_fixture(fx, args.out)
        if not args.quiet:
            size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
            gap = min(r[4]["min_boundary_gap"] for r in results)
            amax = max(float(np.abs(r[4]["logits"]).max()) for r in results)
            extra = ""
            if model.cfg.topk_method == "noaux_tc":
                extra = f", bias changes {bias_changes(model, results[0][1])} selections"
            print(f"{fx['name']}: {len(results)} cases, ids attempt {attempt}, directory {size} bytes, "
                  f"min gap {gap:.3g}, max |logit| {amax:.3g}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
