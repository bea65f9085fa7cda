#!/usr/bin/python3
"""Self-check of the float64 reference and of the committed fixtures.

Run from anywhere:  /usr/bin/python3 tests/reference/check_reference.py
Checks the reference's building blocks on hand-computable values (RMSNorm, SiLU, softmax, RoPE
with and without scaling, GQA, router selection under reroute / drop / skip-top / k and the
tie rule, the mask grammar, safetensors round trips), a few whole-model invariants on the
fixtures, and that make_fixtures.py regenerates every fixture file byte for byte.
Exits 1 if any check fails.
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
import deepseek_moe_ref as ref  # noqa: E402
import make_fixtures  # noqa: E402


def close(a, b, tol=1e-12):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.all(np.abs(a - b) <= tol), f"max diff {np.max(np.abs(a - b))}:\n{a}\n{b}"


def tiny_config(**over):
    raw = dict(model_type="deepseek", vocab_size=8, hidden_size=8, intermediate_size=8,
               moe_intermediate_size=4, num_hidden_layers=2, num_attention_heads=2,
               num_key_value_heads=2, n_routed_experts=6, n_shared_experts=1,
               num_experts_per_tok=2, first_k_dense_replace=1, moe_layer_freq=1,
               rope_theta=10000, max_position_embeddings=8, rope_scaling=None)
    raw.update(over)
    return ref.Config(raw)


# --------------------------------------------------------------------------------- elementary

def check_rms_norm():
    out = ref.rms_norm(np.array([[3.0, 4.0]]), np.array([1.0, 2.0]), 0.0)
    r = math.sqrt(12.5)
    close(out, [[3 / r, 8 / r]])


def check_silu_softmax():
    close(ref.silu(np.array([0.0, 1.0, -1.0])), [0.0, 1 / (1 + math.exp(-1)), -1 / (1 + math.exp(1))])
    close(ref.silu(np.array([-1000.0, 1000.0])), [0.0, 1000.0])     # no overflow
    close(ref.softmax(np.array([0.0, math.log(2), math.log(3)])), [1 / 6, 2 / 6, 3 / 6])


def check_rope_identity_at_zero():
    cfg = tiny_config(hidden_size=16, num_attention_heads=2)        # hd 8
    x = np.random.default_rng(1).standard_normal((1, 2, 8))
    cos, sin = ref.rope_tables(cfg, 1, [0])
    close(ref.apply_rope(x, cos, sin), x, 0.0)


def check_rope_rotation():
    cfg = tiny_config(hidden_size=8, num_attention_heads=2)          # hd 4: inv_freq [1, 1/100]
    cos, sin = ref.rope_tables(cfg, 4, range(4))
    p = 3
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    # halves form: pairs (x0, x2) rotate by p·1, (x1, x3) by p/100
    a, b = p * 1.0, p / 100.0
    want = [1 * math.cos(a) - 3 * math.sin(a), 2 * math.cos(b) - 4 * math.sin(b),
            3 * math.cos(a) + 1 * math.sin(a), 4 * math.cos(b) + 2 * math.sin(b)]
    close(ref.apply_rope(x, cos[p:p + 1], sin[p:p + 1])[0, 0], want)


def check_rope_linear():
    plain = tiny_config(hidden_size=8, num_attention_heads=2)
    lin = tiny_config(hidden_size=8, num_attention_heads=2, rope_scaling={"type": "linear", "factor": 4.0})
    c1, s1 = ref.rope_tables(lin, 6, [5])
    c2, s2 = ref.rope_tables(plain, 6, [5 / 4])
    close(c1, c2, 0.0)
    close(s1, s2, 0.0)


def check_rope_dynamic():
    dyn = tiny_config(hidden_size=8, num_attention_heads=2, max_position_embeddings=8,
                      rope_scaling={"type": "dynamic", "factor": 2.0})
    plain = tiny_config(hidden_size=8, num_attention_heads=2)
    # seq_len <= max_position_embeddings: unchanged
    close(ref.rope_tables(dyn, 8, range(8))[1], ref.rope_tables(plain, 8, range(8))[1], 0.0)
    # seq_len 16: base = 10000·(2·16/8 − 1)^(4/2) = 90000, inv_freq = [1, 1/300]
    cos, sin = ref.rope_tables(dyn, 16, range(16))
    close(sin[3], [math.sin(3), math.sin(3 / 300), math.sin(3), math.sin(3 / 300)])
    close(cos[15], [math.cos(15), math.cos(15 / 300), math.cos(15), math.cos(15 / 300)])


def check_gqa_matches_repeated_kv():
    rng = np.random.default_rng(7)
    H, nh, hd, T = 8, 4, 2, 5
    gqa = tiny_config(hidden_size=H, num_attention_heads=nh, num_key_value_heads=2)
    mha = tiny_config(hidden_size=H, num_attention_heads=nh, num_key_value_heads=nh)
    w = {"a.q_proj.weight": rng.standard_normal((nh * hd, H)),
         "a.k_proj.weight": rng.standard_normal((2 * hd, H)),
         "a.v_proj.weight": rng.standard_normal((2 * hd, H)),
         "a.o_proj.weight": rng.standard_normal((H, nh * hd))}
    # kv head g serves query heads 2g and 2g+1 (HF repeat_kv): repeat each kv head's rows twice
    rep = lambda m: np.concatenate([m[0:hd], m[0:hd], m[hd:2 * hd], m[hd:2 * hd]])
    w_mha = dict(w, **{"a.k_proj.weight": rep(w["a.k_proj.weight"]),
                       "a.v_proj.weight": rep(w["a.v_proj.weight"])})
    x = rng.standard_normal((T, H))
    cos, sin = ref.rope_tables(gqa, T, range(T))
    close(ref.attention(gqa, x, w, "a", cos, sin), ref.attention(mha, x, w_mha, "a", cos, sin), 1e-12)


def check_causal_first_row():
    # Position 0 attends only to itself: output = v_0 through o_proj.
    cfg = tiny_config(hidden_size=4, num_attention_heads=1, num_key_value_heads=1)
    rng = np.random.default_rng(3)
    w = {f"a.{n}_proj.weight": rng.standard_normal((4, 4)) for n in "qkvo"}
    x = rng.standard_normal((3, 4))
    cos, sin = ref.rope_tables(cfg, 3, range(3))
    out = ref.attention(cfg, x, w, "a", cos, sin)
    close(out[0], w["a.o_proj.weight"] @ (w["a.v_proj.weight"] @ x[0]))


# --------------------------------------------------------------------------------- routing

P = np.array([0.05, 0.30, 0.10, 0.25, 0.20, 0.10])


def sel(**kw):
    idx, w, active, gap = ref.route(P, **kw)
    return list(map(int, idx)), list(w), list(map(bool, active)), gap


def check_route_plain():
    idx, w, act, gap = sel(k=2)
    assert idx == [1, 3] and act == [True, True], idx
    close(w, [0.30, 0.25])
    close(gap, 0.05)
    idx, w, _, _ = sel(k=2, norm_topk_prob=True)
    close(w, [0.30 / 0.55, 0.25 / 0.55])
    idx, w, _, _ = sel(k=1, norm_topk_prob=True)       # k = 1: never renormalised
    assert idx == [1]
    close(w, [0.30])


def check_route_reroute():
    idx, w, act, _ = sel(k=2, disabled={1})
    assert idx == [3, 4] and act == [True, True], idx
    close(w, [0.25, 0.20])                              # p is not re-softmaxed
    idx, w, _, _ = sel(k=2, disabled={1}, norm_topk_prob=True)
    close(w, [0.25 / 0.45, 0.20 / 0.45])


def check_route_drop():
    idx, w, act, _ = sel(k=2, disabled={1}, mode="drop")
    assert idx == [1, 3] and act == [False, True], (idx, act)
    close(w, [0.30, 0.25])
    _, w, _, _ = sel(k=2, disabled={1}, mode="drop", norm_topk_prob=True)
    close(w, [0.30 / 0.55, 0.25 / 0.55])               # the sum includes the dropped expert


def check_route_skip_top_and_ties():
    idx, _, _, _ = sel(k=2, skip_top=1)
    assert idx == [3, 4], idx
    idx, w, _, _ = sel(k=2, skip_top=2)
    assert idx == [4, 2], idx                           # 2 and 5 tie at 0.10: lower index first
    close(w, [0.20, 0.10])
    idx, _, _, _ = sel(k=3, skip_top=2)
    assert idx == [4, 2, 5], idx
    idx, _, _, _ = sel(k=2, skip_top=1, disabled={3})   # reroute: skip among the eligible
    assert idx == [4, 2], idx
    idx, _, act, _ = sel(k=2, skip_top=1, disabled={3}, mode="drop")
    assert idx == [3, 4] and act == [False, True], (idx, act)
    idx, _, _, gap = ref.route(np.full(4, 0.25), 2)
    assert list(idx) == [0, 1] and gap == 0.0, idx


def check_mask_grammar():
    m = ref.ExpertMask("L1:3,5; *:skip-top=1", "reroute")
    assert m.disabled_for(1) == {3, 5} and m.disabled_for(2) == set()
    assert m.skip_for(1) == 1 and m.skip_for(2) == 1
    m = ref.ExpertMask("*:2;L1:4;L2:shared;*:k=3;L1:k=1;L2:skip-top=2", "drop")
    assert m.disabled_for(1) == {2, 4} and m.disabled_for(2) == {2}
    assert m.shared_on(1) and not m.shared_on(2)
    assert m.k_for(1, 6) == 1 and m.k_for(2, 6) == 3
    assert m.skip_for(1) == 0 and m.skip_for(2) == 2
    m = ref.ExpertMask("", "reroute")
    assert m.k_for(1, 6) == 6 and m.shared_on(1) and not m.disabled_for(1)
    assert not ref.ExpertMask("*:shared").shared_on(5)
    for bad in ("L1:", "X:3", "L1:k=0", "L1:-3", "*:skip-top=a", "1:3", "L1:3,,4"):
        try:
            ref.ExpertMask(bad)
        except ValueError:
            continue
        raise AssertionError(f"mask {bad!r} was accepted")
    try:
        ref.ExpertMask("", "zero")
        raise AssertionError("mode 'zero' was accepted")
    except ValueError:
        pass
    cfg = tiny_config()   # layer 0 dense, layer 1 MoE, 6 experts
    for bad in ("L0:1", "L1:6", "*:k=7", "L0:shared"):
        try:
            ref.ExpertMask(bad).validate(cfg)
        except ValueError:
            continue
        raise AssertionError(f"mask {bad!r} validated against a model it does not fit")


def check_moe_layer_rule():
    cfg = tiny_config(num_hidden_layers=6, first_k_dense_replace=1, moe_layer_freq=2)
    assert cfg.moe_layers() == [2, 4], cfg.moe_layers()
    cfg = tiny_config(num_hidden_layers=4, first_k_dense_replace=0, moe_layer_freq=1)
    assert cfg.moe_layers() == [0, 1, 2, 3]
    assert tiny_config(n_routed_experts=None).moe_layers() == []


# --------------------------------------------------------------------------------- safetensors

def check_safetensors_round_trip():
    a = np.array([[1.0, -2.5], [3.25, 1e-3]], dtype=np.float32)
    # halfway cases: 1+2^-8 rounds down to 1 (even), 1+3·2^-8 rounds up to 1+2^-6 (even)
    b = np.array([1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, -0.0, 65280.0], dtype=np.float32)
    with tempfile.TemporaryDirectory() as d:
        for dtype, arr, want in (("F32", a, a), ("BF16", b, [1.0, 1.0 + 2 ** -6, -0.0, 65280.0])):
            path = os.path.join(d, dtype + ".safetensors")
            make_fixtures.write_safetensors(path, [("t", arr)], dtype)
            with open(path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                header = f.read(n)
            assert n % 8 == 0, n
            assert json.loads(header)["t"]["dtype"] == dtype
            got = ref.read_safetensors(path)["t"]
            close(got, want, 0.0)
            assert got.dtype == np.float64


def check_sharded_index():
    d = os.path.join(FIXTURES, "f32_sharded_gqa")
    with open(os.path.join(d, "model.safetensors.index.json")) as f:
        index = json.load(f)
    shards = sorted(set(index["weight_map"].values()))
    assert shards == [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)], shards
    weights = ref.load_weights(d)
    assert set(weights) == set(index["weight_map"])
    assert index["metadata"]["total_size"] == sum(4 * w.size for w in weights.values())


# --------------------------------------------------------------------------------- whole model

def load_golden(name):
    with open(os.path.join(FIXTURES, name, "golden.json")) as f:
        return json.load(f)


def check_goldens_match_reference():
    """Every golden case recomputes exactly from the stored weights; the gap bound holds."""
    for name in (fx["name"] for fx in make_fixtures.FIXTURES):
        model = ref.Model(os.path.join(FIXTURES, name))
        golden = load_golden(name)
        assert any(c["mask"] == "" for c in golden["cases"]), f"{name}: no baseline case"
        for case in golden["cases"]:
            res = model.forward(case["ids"], ref.ExpertMask(case["mask"], case["mask_mode"]))
            where = f"{name}/{case['name']}"
            assert np.array_equal(res["logits"], np.array(case["logits"])), where
            assert sorted(map(str, res["routing"])) == sorted(case["routing"]), where
            for layer, idx in res["routing"].items():
                assert idx.tolist() == case["routing"][str(layer)], where
                assert np.array_equal(res["gate_weights"][layer], np.array(case["gate_weights"][str(layer)])), where
            assert case["min_boundary_gap"] >= make_fixtures.GAP_MIN, where
            assert case["min_boundary_gap"] == res["min_boundary_gap"], where


def check_model_invariants():
    model = ref.Model(os.path.join(FIXTURES, "f32_single"))
    base_case = load_golden("f32_single")["cases"][0]
    ids = base_case["ids"]
    base = model.forward(ids)
    # causal: a prefix's logits do not depend on later tokens (plain RoPE, no dynamic scaling)
    close(model.forward(ids[:7])["logits"], base["logits"][:7], 1e-12)
    # k = the default and drop of nothing change nothing
    close(model.forward(ids, ref.ExpertMask("*:k=4"))["logits"], base["logits"], 0.0)
    # disabling an expert no token picks leaves the result unchanged in reroute mode
    used = set(base["routing"][1].ravel().tolist())
    unused = [e for e in range(model.cfg.n_routed_experts) if e not in used]
    if unused:
        close(model.forward(ids, ref.ExpertMask(f"L1:{unused[0]}"))["logits"], base["logits"], 0.0)
    # drop mode keeps the routing of the baseline
    dropped = model.forward(ids, ref.ExpertMask("L1:0,1,2", "drop"))
    assert np.array_equal(dropped["routing"][1], base["routing"][1])
    # tied embeddings: no lm_head tensor, the embedding matrix is the head
    tied = ref.Model(os.path.join(FIXTURES, "bf16_tied"))
    assert tied.cfg.tie_word_embeddings and "lm_head.weight" not in tied.w
    assert tied.cfg.n_shared_width == 0


def check_regeneration_is_byte_identical():
    with tempfile.TemporaryDirectory() as tmp:
        make_fixtures.main(["--out", tmp, "--quiet"])
        for fx in make_fixtures.FIXTURES:
            a, b = os.path.join(FIXTURES, fx["name"]), os.path.join(tmp, fx["name"])
            files_a = sorted(f for f in os.listdir(a) if not f.startswith("."))
            files_b = sorted(os.listdir(b))
            assert files_a == files_b, f"{fx['name']}: files {files_a} vs regenerated {files_b}"
            match, mismatch, errors = filecmp.cmpfiles(a, b, files_b, shallow=False)
            assert not mismatch and not errors, f"{fx['name']}: differs after regeneration: {mismatch + errors}"


CHECKS = [
    check_rms_norm, check_silu_softmax, check_rope_identity_at_zero, check_rope_rotation,
    check_rope_linear, check_rope_dynamic, check_gqa_matches_repeated_kv, check_causal_first_row,
    check_route_plain, check_route_reroute, check_route_drop, check_route_skip_top_and_ties,
    check_mask_grammar, check_moe_layer_rule, check_safetensors_round_trip, check_sharded_index,
    check_goldens_match_reference, check_model_invariants, check_regeneration_is_byte_identical,
]


def main():
    failed = 0
    for check in CHECKS:
        try:
            check()
            print(f"PASS {check.__name__}")
        except Exception:  # noqa: BLE001 - report every failing check, then exit non-zero
            failed += 1
            print(f"FAIL {check.__name__}")
            traceback.print_exc(file=sys.stdout)
    print(f"{len(CHECKS) - failed}/{len(CHECKS)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
