#!/usr/bin/python3
"""Self-check of the DeepSeek-V2/V3 float64 reference and of its committed fixtures.

Run from anywhere:  /usr/bin/python3 tests/reference/check_v2v3.py
Checks: float8 e4m3fn coding and FP8 block dequantisation (partial edge blocks) through a
safetensors round trip; YaRN numbers of the published configs; adjacent-pair RoPE against the
HF remote code's permute + rotate_half form; absorbed vs expanded MLA; KV-cache decode vs one
prefill; hand-computed routing for greedy / group_limited_greedy / noaux_tc with reroute, drop,
skip-top, all-disabled groups and the tie rule; the V3 fixture's tensor dtypes and MTP layer;
goldens recomputed from the stored weights; byte-identical regeneration; and that each fixture
actually discriminates the known pitfalls (DS3 rounding of the YaRN ramp, missing mscale², the
halves RoPE layout, ignoring the bias, ungrouped selection). Exits 1 if any check fails.
"""

import filecmp
import json
import math
import os
import sys
import tempfile
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(HERE), "fixtures")
sys.path.insert(0, HERE)
import deepseek_v2v3_ref as ref  # noqa: E402
import make_fixtures_v2v3 as mk  # noqa: E402

NAMES = [fx["name"] for fx in mk.FIXTURES]
_models = {}


def model(name):
    if name not in _models:
        _models[name] = ref.Model(os.path.join(FIXTURES, name))
    return _models[name]


def golden(name):
    with open(os.path.join(FIXTURES, name, "golden.json")) as f:
        return json.load(f)


def close(a, b, tol=1e-12):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.all(np.abs(a - b) <= tol), f"max diff {np.max(np.abs(a - b))}"


def cfg_v2(**over):
    raw = dict(model_type="deepseek_v2", vocab_size=8, hidden_size=8, intermediate_size=8,
               moe_intermediate_size=4, num_hidden_layers=2, num_attention_heads=2, q_lora_rank=None,
               kv_lora_rank=4, qk_nope_head_dim=4, qk_rope_head_dim=64, v_head_dim=4,
               n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2,
               first_k_dense_replace=1, rope_theta=10000, rope_scaling=dict(mk.YARN_V2))
    raw.update(over)
    return ref.Config(raw)


# --------------------------------------------------------------------------------- float8 / FP8

def check_e4m3_table():
    t = ref.E4M3_TABLE
    assert t[0x7E] == 448.0 and t[0xFE] == -448.0
    assert t[0x38] == 1.0 and t[0x01] == 2.0 ** -9 and t[0x08] == 2.0 ** -6 and t[0x07] == 7 * 2.0 ** -9
    assert math.isnan(t[0x7F]) and math.isnan(t[0xFF]) and not np.isinf(t).any()
    assert t[0x80] == 0.0 and math.copysign(1, t[0x80]) == -1
    codes = np.array([c for c in range(256) if c not in (0x7F, 0xFF, 0x80)], dtype=np.uint8)
    assert np.array_equal(ref.e4m3_encode(ref.e4m3_decode(codes)), codes)


def check_e4m3_rounding():
    enc = ref.e4m3_encode
    assert enc(np.array([1.0625]))[0] == 0x38          # midway 1.0 / 1.125: even code
    assert enc(np.array([1.1875]))[0] == 0x3A          # midway 1.125 / 1.25: even code 0x3A
    assert enc(np.array([1.07]))[0] == 0x39
    assert enc(np.array([2.0 ** -10]))[0] == 0x00      # midway 0 / smallest subnormal
    assert enc(np.array([3 * 2.0 ** -10]))[0] == 0x02  # midway 2^-9 / 2·2^-9: even code 0x02
    assert enc(np.array([3 * 2.0 ** -11]))[0] == 0x01  # 0.75·2^-9: nearer 2^-9 than 0
    assert enc(np.array([500.0, -500.0])).tolist() == [0x7E, 0xFE]   # saturates
    assert enc(np.array([-1.0]))[0] == 0xB8


def check_fp8_roundtrip():
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((130, 200)) * np.linspace(0.1, 3, 200)).astype(np.float32)
    q, s = mk.quantize_fp8(a, (128, 128))
    assert s.shape == (2, 2)
    entries = mk.encode("w", a, "linear", "FP8", (128, 128))
    assert [e[1] for e in entries] == ["F8_E4M3", "F32"] and entries[1][0] == "w_scale_inv"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.safetensors")
        mk.write_safetensors(path, entries)
        arrays, dtypes = ref.read_safetensors(path)
        assert dtypes == {"w": "F8_E4M3", "w_scale_inv": "F32"}
        deq, _ = ref.dequantize_fp8(arrays, dtypes)
    want = ref.e4m3_decode(q) * np.repeat(np.repeat(s.astype(np.float64), 128, 0), 128, 1)[:130, :200]
    close(deq["w"], want, 0.0)
    assert "w_scale_inv" not in deq
    # Partial blocks: each block's scale is its own amax / 448; relative error <= 2^-4.
    for (i, j) in [(1, 1), (0, 1), (1, 0)]:
        blk = a[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
        assert s[i, j] == np.float32(np.abs(blk).max() / 448.0)
    err = np.abs(deq["w"] - a) / np.repeat(np.repeat(s * 448.0, 128, 0), 128, 1)[:130, :200]
    assert err.max() <= 2.0 ** -4, err.max()


def check_fp8_errors():
    arrays = {"w": np.zeros((3, 3)), "w_scale_inv": np.ones((2, 1))}
    dtypes = {"w": "F8_E4M3", "w_scale_inv": "F32"}
    for bad in [({"w": arrays["w"]}, {"w": "F8_E4M3"}),               # no scale
                ({"w": arrays["w"], "w_scale_inv": arrays["w_scale_inv"]}, dtypes)]:  # wrong shape
        try:
            ref.dequantize_fp8(dict(bad[0]), dict(bad[1]))
        except ValueError:
            continue
        raise AssertionError("bad FP8 tensor accepted")


# --------------------------------------------------------------------------------- YaRN / RoPE

def check_yarn_published():
    c = cfg_v2(qk_nope_head_dim=128)          # published dims: qk_head_dim 192
    low, high, cd = ref.yarn_correction_range(c)
    assert (low, high) == (10, 23), (low, high, cd)
    inv, mul = ref.rope_inv_freq(c)
    extra = np.array([10000.0 ** (-2 * j / 64) for j in range(32)])
    close(inv[:11], extra[:11], 1e-15)
    close(inv[23:], extra[23:] / 40, 1e-18)
    r = (16 - 10) / 13
    close(inv[16], extra[16] / 40 * r + extra[16] * (1 - r), 1e-18)
    assert mul == 1.0
    assert abs(ref.softmax_scale(c) - 0.1147214) < 5e-8, ref.softmax_scale(c)
    v3 = cfg_v2(qk_nope_head_dim=128, rope_scaling=dict(mk.YARN_V3))
    assert abs(ref.softmax_scale(v3) - 0.1352338) < 5e-8, ref.softmax_scale(v3)
    plain = cfg_v2(rope_scaling=None)
    assert ref.softmax_scale(plain) == (4 + 64) ** -0.5
    assert ref.rope_inv_freq(plain)[1] == 1.0
    # mscale != mscale_all_dim: cos/sin multiplied by the ratio (RC / TF)
    odd = cfg_v2(rope_scaling=dict(mk.YARN_V2, mscale=1.0))
    _, mul = ref.rope_inv_freq(odd)
    close(mul, (0.1 * math.log(40) + 1) / (0.0707 * math.log(40) + 1), 1e-15)


def check_yarn_fixture_ranges():
    # The fixtures pick rope dims where floor/ceil and DS3's round() disagree.
    want = {"v2lite_yarn": (2, 6), "v2_group_yarn": (2, 9), "v3_fp8_mtp": (10, 23)}
    for name, lh in want.items():
        low, high, cd = ref.yarn_correction_range(model(name).cfg)
        assert (low, high) == lh, (name, low, high, cd)


def check_rope_pairs_vs_rc():
    """Adjacent-pair rotation == RC's de-interleave + rotate_half in every q·k score."""
    c = cfg_v2(qk_rope_head_dim=16)
    rng = np.random.default_rng(3)
    T, n, dr = 7, 3, 16
    q, k = rng.standard_normal((T, n, dr)), rng.standard_normal((T, 1, dr))
    cos, sin = ref.rope_cos_sin(c, range(T))
    qa, ka = ref.apply_rope_pairs(q, cos, sin), ref.apply_rope_pairs(k, cos, sin)
    perm = np.concatenate([np.arange(0, dr, 2), np.arange(1, dr, 2)])
    emb_c, emb_s = np.concatenate([cos, cos], -1), np.concatenate([sin, sin], -1)

    def rc(x):
        x = x[..., perm]
        rot = np.concatenate([-x[..., dr // 2:], x[..., :dr // 2]], -1)
        return x * emb_c[:, None] + rot * emb_s[:, None]
    close(rc(q), qa[..., perm], 1e-13)
    s_pairs = np.einsum("tnd,sd->nts", qa, ka[:, 0])
    s_rc = np.einsum("tnd,sd->nts", rc(q), rc(k)[:, 0])
    close(s_pairs, s_rc, 1e-12)
    # complex form (DS3 apply_rotary_emb)
    inv, _ = ref.rope_inv_freq(c)
    z = (q[..., 0::2] + 1j * q[..., 1::2]) * np.exp(1j * np.arange(T)[:, None, None] * inv)
    close(qa[..., 0::2], z.real, 1e-12)
    close(qa[..., 1::2], z.imag, 1e-12)


# --------------------------------------------------------------------------------- MLA

def check_mla_absorbed():
    for name in NAMES:
        m = model(name)
        c, w = m.cfg, m.w
        x = w["model.embed_tokens.weight"][[0, 5, 9, 3, 17, 2, 11, 30, 4]]
        for layer in (0, c.num_hidden_layers - 1):
            p = f"model.layers.{layer}"
            xn = ref.rms_norm(x, w[p + ".input_layernorm.weight"], c.rms_norm_eps)
            pos = list(range(len(x)))
            a = ref.mla_attention(c, xn, w, p + ".self_attn", pos)
            b = ref.mla_attention_absorbed(c, xn, w, p + ".self_attn", pos)
            close(a, b, 1e-11)


def check_kv_decode_equals_prefill():
    for name in NAMES:
        m = model(name)
        ids = golden(name)["cases"][0]["ids"]
        full = m.forward(ids)
        cache = m.new_cache()
        parts = [m.forward(ids[:5], start_pos=0, cache=cache)]
        for t in range(5, len(ids)):
            parts.append(m.forward(ids[t:t + 1], start_pos=t, cache=cache))
        close(np.concatenate([p["logits"] for p in parts]), full["logits"], 1e-10)
        for layer in full["routing"]:
            got = np.concatenate([p["routing"][layer] for p in parts])
            assert np.array_equal(got, full["routing"][layer]), (name, layer)
        assert cache[0]["kv_c"].shape == (len(ids), m.cfg.kv_lora_rank)
        assert cache[0]["k_pe"].shape == (len(ids), m.cfg.qk_rope_head_dim)


# --------------------------------------------------------------------------------- routing

def check_greedy_ties():
    p = np.array([0.1, 0.2, 0.2, 0.05, 0.2, 0.25])
    r = ref.route_greedy(p, 3)
    assert r.idx.tolist() == [5, 1, 2] and r.gap == 0.0
    r = ref.route_greedy(p, 2, disabled={5}, mode="reroute")
    assert r.idx.tolist() == [1, 2]
    r = ref.route_greedy(p, 2, disabled={5}, mode="drop")
    assert r.idx.tolist() == [5, 1]
    r = ref.route_greedy(p, 2, skip_top=1)
    assert r.idx.tolist() == [1, 2]


def check_group_limited_greedy():
    # 8 experts, 4 groups of 2; group max = [0.30, 0.12, 0.25, 0.20]
    p = np.array([0.30, 0.01, 0.12, 0.11, 0.05, 0.25, 0.20, 0.19])
    r = ref.route_group_limited_greedy(p, 3, 4, 2)
    assert r.groups.tolist() == [0, 2] and r.idx.tolist() == [0, 5, 4], (r.groups, r.idx)
    close(r.gap, min(0.30 - 0.25, 0.25 - 0.20, 0.30 - 0.25, 0.25 - 0.05, 0.05 - 0.01))
    # the HF 0.0-fill formulation gives the same choice
    keep = np.repeat(np.isin(np.arange(4), r.groups), 2)
    hf = np.where(keep, p, 0.0)
    assert np.argsort(-hf, kind="stable")[:3].tolist() == r.idx.tolist()
    # reroute: disabling expert 0 lowers group 0's score to 0.01 -> groups 2, 3 kept
    r = ref.route_group_limited_greedy(p, 3, 4, 2, disabled={0})
    assert r.groups.tolist() == [2, 3] and r.idx.tolist() == [5, 6, 7]
    # an all-disabled group is never chosen, even in drop mode's absence
    r = ref.route_group_limited_greedy(p, 2, 4, 2, disabled={0, 1, 4, 5})
    assert r.groups.tolist() == [3, 1] and r.idx.tolist() == [6, 7]
    # drop: selection as unmasked
    r = ref.route_group_limited_greedy(p, 3, 4, 2, disabled={0, 1}, mode="drop")
    assert r.idx.tolist() == [0, 5, 4]
    # skip-top applies before group selection: expert 0 removed -> group 0 score 0.01
    r = ref.route_group_limited_greedy(p, 2, 4, 2, skip_top=1)
    assert r.groups.tolist() == [2, 3] and r.idx.tolist() == [5, 6]
    # k above the kept groups' experts: as HF, experts of other groups compete with score 0.0
    r = ref.route_group_limited_greedy(p, 5, 4, 2)
    assert r.idx.tolist() == [0, 5, 4, 1, 2] and r.sel.tolist()[-1] == 0.0 and r.gap == 0.0
    try:
        ref.route_group_limited_greedy(p, 7, 4, 2, disabled={0, 1})
    except ValueError:
        pass
    else:
        raise AssertionError("k above the eligible experts accepted")


def check_noaux_tc():
    # 8 experts, 4 groups of 2, topk_group 2, k 2.
    s = np.array([0.9, 0.1, 0.6, 0.55, 0.7, 0.2, 0.5, 0.45])
    b = np.array([0.0, 0.0, 0.0, 0.0, -0.3, 0.0, 0.1, 0.1])
    # sel = [0.9, 0.1, 0.6, 0.55, 0.4, 0.2, 0.6, 0.55]; top-2 sums: [1.0, 1.15, 0.6, 1.15]
    r = ref.route_noaux_tc(s, b, 2, 4, 2)
    assert r.groups.tolist() == [1, 3], r.groups          # tie 1.15 / 1.15 -> lower group first
    assert r.idx.tolist() == [2, 6], r.idx                 # sel 0.6 / 0.6 tie -> lower index
    close(r.sel, [0.6, 0.6])
    cfg = ref.Config(dict(model_type="deepseek_v3", vocab_size=8, hidden_size=8, intermediate_size=8,
                          moe_intermediate_size=4, num_hidden_layers=1, num_attention_heads=1,
                          q_lora_rank=4, kv_lora_rank=4, qk_nope_head_dim=2, qk_rope_head_dim=2,
                          v_head_dim=2, n_routed_experts=8, num_experts_per_tok=2, n_group=4,
                          topk_group=2, norm_topk_prob=True, routed_scaling_factor=2.5))
    w = ref.gate_weights(cfg, s, r.idx)                    # UNBIASED 0.6, 0.5
    close(w, [0.6 / (1.1 + 1e-20) * 2.5, 0.5 / (1.1 + 1e-20) * 2.5], 1e-15)
    close(ref.gate_weights(cfg, s, r.idx[:1]), [0.6 * 2.5])  # k = 1: no normalisation
    # without the bias the choice differs: group sums [1.0, 1.15, 0.9, 0.95] -> groups 1, 0
    r0 = ref.route_noaux_tc(s, np.zeros(8), 2, 4, 2)
    assert r0.groups.tolist() == [1, 0] and r0.idx.tolist() == [0, 2], (r0.groups, r0.idx)
    # reroute of expert 2: group 1 sum becomes 0.55 -> groups 3, 0
    r = ref.route_noaux_tc(s, b, 2, 4, 2, disabled={2})
    assert r.groups.tolist() == [3, 0] and r.idx.tolist() == [0, 6], (r.groups, r.idx)
    # a group with one eligible expert scores that expert alone
    r = ref.route_noaux_tc(s, b, 1, 4, 1, disabled={1, 2, 3, 6, 7})
    assert r.groups.tolist() == [0] and r.idx.tolist() == [0]
    # HF 0.0 fill: sel [0.4, -0.05, 0.1, -0.1], group 0 kept (0.35 > 0.0); expert 1's -0.05
    # loses to the 0.0 of group 1's experts (tie 2/3 -> lower index); DS3's -inf would pick 1.
    r = ref.route_noaux_tc(np.array([0.1, 0.05, 0.9, 0.8]), np.array([0.3, -0.1, -0.8, -0.9]), 2, 2, 1)
    assert r.groups.tolist() == [0] and r.idx.tolist() == [0, 2], (r.groups, r.idx)
    close(r.sel, [0.4, 0.0], 1e-15)
    assert r.gap == 0.0


def check_v2_weights():
    c = cfg_v2(routed_scaling_factor=16.0)
    p = np.array([0.5, 0.3, 0.2])
    close(ref.gate_weights(c, p, np.array([0, 1])), [8.0, 4.8])
    c = cfg_v2(routed_scaling_factor=16.0, norm_topk_prob=True)   # RC V2: normalise, no scaling
    close(ref.gate_weights(c, p, np.array([0, 1])), [0.5 / 0.8, 0.3 / 0.8], 1e-15)
    close(ref.gate_weights(c, p, np.array([0])), [8.0])


# --------------------------------------------------------------------------------- fixtures

FP8_LINEARS = {"q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj", "gate_proj",
               "up_proj", "down_proj"}


def check_v3_tensors():
    d = os.path.join(FIXTURES, "v3_fp8_mtp")
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        wm = json.load(f)["weight_map"]
    dtypes = {}
    for shard in sorted(set(wm.values())):
        dtypes.update(ref.read_safetensors(os.path.join(d, shard))[1])
    m = model("v3_fp8_mtp")
    c = m.cfg
    for name, dt in dtypes.items():
        if name.endswith("_scale_inv"):
            assert dt == "F32" and dtypes[name[:-10]] == "F8_E4M3", name
        elif name.endswith("e_score_correction_bias"):
            assert dt == "F32", name
        elif name.split(".")[-2] in FP8_LINEARS:
            assert dt == "F8_E4M3", (name, dt)
        else:
            assert dt == "BF16", (name, dt)
    assert dtypes["model.layers.0.mlp.gate_proj.weight_scale_inv"] == "F32"
    a, _ = ref.read_safetensors(os.path.join(d, wm["model.layers.0.mlp.down_proj.weight"]))
    assert a["model.layers.0.mlp.down_proj.weight_scale_inv"].shape == (2, 2)   # [200, 136]
    N = c.num_hidden_layers
    assert c.num_nextn_predict_layers == 1
    H, V = c.hidden_size, c.vocab_size
    for suffix, shape in [("embed_tokens.weight", (V, H)), ("enorm.weight", (H,)), ("hnorm.weight", (H,)),
                          ("eh_proj.weight", (H, 2 * H)), ("shared_head.norm.weight", (H,)),
                          ("shared_head.head.weight", (V, H)), ("input_layernorm.weight", (H,)),
                          ("mlp.gate.e_score_correction_bias", (c.n_routed_experts,)),
                          ("mlp.experts.15.down_proj.weight", (H, c.moe_intermediate_size))]:
        assert m.w[f"model.layers.{N}.{suffix}"].shape == shape, suffix
    assert not any(f"model.layers.{N + 1}." in n for n in m.w)
    # The reference never reads the MTP layer: the forward pass without it is unchanged.
    ids = golden("v3_fp8_mtp")["cases"][0]["ids"]
    saved = {n: a for n, a in m.w.items() if n.startswith(f"model.layers.{N}.")}
    try:
        for n in saved:
            del m.w[n]
        close(m.forward(ids)["logits"], np.array(golden("v3_fp8_mtp")["cases"][0]["logits"]), 0.0)
    finally:
        m.w.update(saved)


def check_goldens_recompute():
    for name in NAMES:
        m = model(name)
        for case in golden(name)["cases"]:
            res = m.forward(case["ids"], ref.ExpertMask(case["mask"], case["mask_mode"]))
            assert np.array_equal(res["logits"], np.array(case["logits"])), (name, case["name"])
            for key in ("routing", "gate_weights", "selection_scores") + (("groups",) if m.cfg.grouped else ()):
                assert {str(l): v.tolist() for l, v in res[key].items()} == case[key], (name, case["name"], key)
            assert res["min_boundary_gap"] == case["min_boundary_gap"]


def check_regenerates_identically():
    with tempfile.TemporaryDirectory() as tmp:
        mk.main(["--out", tmp, "--quiet"])
        for name in NAMES:
            produced = sorted(os.listdir(os.path.join(tmp, name)))
            committed = sorted(f for f in os.listdir(os.path.join(FIXTURES, name)))
            assert produced == committed, (name, produced, committed)
            for f in produced:
                assert filecmp.cmp(os.path.join(tmp, name, f), os.path.join(FIXTURES, name, f),
                                   shallow=False), f"{name}/{f} differs on regeneration"


# --------------------------------------------------------------------------------- sensitivity

def _ds3_inv_freq(cfg):
    """DS3 precompute_freqs_cis: round() correction range, +0.001 ramp denominator."""
    sc, dr, theta = cfg.rope_scaling, cfg.qk_rope_head_dim, cfg.rope_theta
    extra = np.array([1.0 / math.pow(theta, (2 * j) / dr) for j in range(dr // 2)])
    _, _, cd = ref.yarn_correction_range(cfg)
    low, high = [min(max(round(v), 0), dr - 1) for v in cd]
    ramp = np.clip((np.arange(dr // 2) - low) / (high - low + 0.001), 0, 1)
    return extra * ((1 - ramp) + ramp / float(sc["factor"])), 1.0


def _halves_rope(x, cos, sin):
    h = x.shape[-1] // 2
    c, s = np.concatenate([cos, cos], -1)[:, None], np.concatenate([sin, sin], -1)[:, None]
    return x * c + np.concatenate([-x[..., h:], x[..., :h]], -1) * s


def _no_mscale(cfg):
    return cfg.qk_head_dim ** -0.5


def _diff_with(name, attr, repl, cfg_over=None):
    m = model(name)
    case = golden(name)["cases"][0]
    saved = getattr(ref, attr) if attr else None
    saved_cfg = {}
    try:
        if attr:
            setattr(ref, attr, repl)
        for k, v in (cfg_over or {}).items():
            saved_cfg[k] = getattr(m.cfg, k)
            setattr(m.cfg, k, v)
        res = m.forward(case["ids"])
    finally:
        if attr:
            setattr(ref, attr, saved)
        for k, v in saved_cfg.items():
            setattr(m.cfg, k, v)
    return float(np.abs(res["logits"] - np.array(case["logits"])).max())


def check_sensitivity():
    """Each pitfall moves some logit by far more than the 1e-4 comparison tolerance."""
    report = []
    for name in NAMES:
        for label, attr, repl in [("DS3 round() YaRN ramp", "rope_inv_freq", _ds3_inv_freq),
                                  ("no mscale^2", "softmax_scale", _no_mscale),
                                  ("halves RoPE", "apply_rope_pairs", _halves_rope)]:
            if label.startswith("DS3") and name == "v3_fp8_mtp":
                continue          # published V3 dims: floor/ceil == round, only the 0.001 differs
            d = _diff_with(name, attr, repl)
            report.append(f"{name}: {label} -> max |dlogit| {d:.3g}")
            assert d > 1e-3, report[-1]
        if model(name).cfg.grouped:
            d = _diff_with(name, None, None, {"topk_method": "greedy"} if name.startswith("v2") else
                           {"n_group": 1, "topk_group": 1})
            report.append(f"{name}: ungrouped selection -> max |dlogit| {d:.3g}")
            assert d > 1e-3, report[-1]
    m = model("v3_fp8_mtp")
    saved = {n: a for n, a in m.w.items() if n.endswith("e_score_correction_bias")}
    try:
        for n in saved:
            m.w[n] = np.zeros_like(saved[n])
        d = float(np.abs(m.forward(golden("v3_fp8_mtp")["cases"][0]["ids"])["logits"]
                         - np.array(golden("v3_fp8_mtp")["cases"][0]["logits"])).max())
    finally:
        m.w.update(saved)
    report.append(f"v3_fp8_mtp: bias ignored -> max |dlogit| {d:.3g}")
    assert d > 1e-3, report[-1]
    return report


CHECKS = [check_e4m3_table, check_e4m3_rounding, check_fp8_roundtrip, check_fp8_errors,
          check_yarn_published, check_yarn_fixture_ranges, check_rope_pairs_vs_rc,
          check_mla_absorbed, check_kv_decode_equals_prefill, check_greedy_ties,
          check_group_limited_greedy, check_noaux_tc, check_v2_weights, check_v3_tensors,
          check_goldens_recompute, check_regenerates_identically, check_sensitivity]


def main():
    failed = 0
    for check in CHECKS:
        try:
            out = check()
            print(f"ok   {check.__name__}")
            for line in out or []:
                print(f"       {line}")
        except Exception:  # noqa: BLE001 - report every failing check
            failed += 1
            print(f"FAIL {check.__name__}")
            traceback.print_exc()
    print(f"{len(CHECKS) - failed}/{len(CHECKS)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
