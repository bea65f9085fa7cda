#!/usr/bin/python3
"""Measures the embedded model with the workbench's own engine and writes its model card.

Everything in the card's results comes from `moewb` (the C++ engine) run here, except the
training-script numbers it is compared with (test_loss.json, log.jsonl):

  - per-domain test loss with `moewb eval` on the texts the training script evaluated
    (--texts, written by train.py --eval-text-dir), against the script's test_loss.json;
  - a unigram baseline per domain (add-one smoothed token frequencies of the domain's
    training split, token ids from the training run's cache) on the same test ids;
  - routing specialisation from `moewb trace` + `moewb stats --csv` on the test split;
  - shared experts off, top/least-routed experts off, skip-top, from `moewb ablate`.

Figures are SVG written here (no plotting library needed): the loss curve and, per MoE layer,
the experts x domains share heatmap the DeepSeekMoE paper draws.

  /usr/bin/python3 tools/train/model_card.py --moewb build/app/moewb \\
      --model resources/models/default --run build/train/run --texts build/train/test-texts \\
      --work build/card
"""

import argparse
import csv
import glob
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr)
    t0 = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout
    print(f"  ({time.time() - t0:.1f} s)", file=sys.stderr)
    return out


# ---- SVG ----------------------------------------------------------------------------------

VIRIDIS = [(68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142), (31, 158, 137),
           (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37)]


def viridis(t):
    t = min(max(t, 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(t), len(VIRIDIS) - 2)
    f = t - i
    a, b = VIRIDIS[i], VIRIDIS[i + 1]
    return "#%02x%02x%02x" % tuple(round(a[j] + (b[j] - a[j]) * f) for j in range(3))


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def loss_curve_svg(points_by_series, path, title):
    """points_by_series: {name: [(step, loss), ...]}; one polyline each, shared axes."""
    W, H, L, R, T, B = 760, 360, 60, 150, 30, 45
    xs = [p[0] for pts in points_by_series.values() for p in pts]
    ys = [p[1] for pts in points_by_series.values() for p in pts]
    x0, x1 = 0, max(xs)
    y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
    sx = lambda x: L + (x - x0) / (x1 - x0) * (W - L - R)
    sy = lambda y: T + (y1 - y) / (y1 - y0) * (H - T - B)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="14">{esc(title)}</text>']
    for y in range(int(y0), int(y1) + 1):
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y}</text>')
    step = 10 ** max(0, int(math.log10(max(x1, 1))) )
    if x1 / step < 4:
        step //= 2 or 1
    for x in range(0, int(x1) + 1, max(step, 1)):
        out.append(f'<text x="{sx(x):.1f}" y="{H - B + 16}" text-anchor="middle">{x}</text>')
    out.append(f'<line x1="{L}" x2="{W - R}" y1="{H - B}" y2="{H - B}" stroke="#444"/>')
    out.append(f'<line x1="{L}" x2="{L}" y1="{T}" y2="{H - B}" stroke="#444"/>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 8}" text-anchor="middle">optimizer step</text>')
    out.append(f'<text x="16" y="{(T + H - B) / 2}" transform="rotate(-90 16 {(T + H - B) / 2})" '
               f'text-anchor="middle">loss (nats/token)</text>')
    for i, (name, pts) in enumerate(points_by_series.items()):
        c = colors[i % len(colors)]
        d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        width = 2.2 if i == 0 else 1.2
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="{width}" points="{d}"/>')
        out.append(f'<line x1="{W - R + 12}" x2="{W - R + 32}" y1="{T + 14 + 16 * i}" y2="{T + 14 + 16 * i}" '
                   f'stroke="{c}" stroke-width="{width}"/>')
        out.append(f'<text x="{W - R + 38}" y="{T + 18 + 16 * i}">{esc(name)}</text>')
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


def heatmap_svg(rows, cols, values, path, title, vmax):
    """values[r][c] in [0, vmax]: rows = domains, cols = experts."""
    cw, ch, L, T = 11, 22, 80, 40
    W = L + cw * len(cols) + 90
    H = T + ch * len(rows) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="16" font-size="13">{esc(title)}</text>']
    for r, name in enumerate(rows):
        out.append(f'<text x="{L - 6}" y="{T + ch * r + ch / 2 + 4}" text-anchor="end">{esc(name)}</text>')
        for c in range(len(cols)):
            v = values[r][c]
            out.append(f'<rect x="{L + cw * c}" y="{T + ch * r}" width="{cw}" height="{ch}" fill="{viridis(v / vmax)}">'
                       f'<title>{esc(name)}, expert {cols[c]}: {v:.3f}</title></rect>')
    for c in range(0, len(cols), 8):
        out.append(f'<text x="{L + cw * c + cw / 2}" y="{T + ch * len(rows) + 14}" text-anchor="middle">{cols[c]}</text>')
    out.append(f'<text x="{L + cw * len(cols) / 2}" y="{H - 6}" text-anchor="middle">routed expert</text>')
    # colour scale
    x = L + cw * len(cols) + 20
    n = 40
    for i in range(n):
        y = T + ch * len(rows) * (1 - (i + 1) / n)
        out.append(f'<rect x="{x}" y="{y:.1f}" width="14" height="{ch * len(rows) / n + 0.5:.1f}" fill="{viridis(i / (n - 1))}"/>')
    out.append(f'<text x="{x + 18}" y="{T + 8}">{vmax:.2g}</text>')
    out.append(f'<text x="{x + 18}" y="{T + ch * len(rows)}">0</text>')
    out.append(f'<text x="{x - 4}" y="{T - 6}">× uniform</text>')
    out.append("</svg>")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")


# ---- measurements -------------------------------------------------------------------------

def unigram_ppl(train_ids, test_ids, vocab):
    counts = np.bincount(train_ids, minlength=vocab).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    pred = np.asarray(test_ids[1:])  # the positions the model predicts (no BOS prediction)
    return float(math.exp(-logp[pred].mean()))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moewb", default=os.path.join(ROOT, "build/app/moewb"))
    ap.add_argument("--model", default=os.path.join(ROOT, "resources/models/default"))
    ap.add_argument("--run", default=os.path.join(ROOT, "build/train/run"))
    ap.add_argument("--texts", default=os.path.join(ROOT, "build/train/test-texts"))
    ap.add_argument("--datasets", default=os.path.join(ROOT, "datasets"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build/card"))
    ap.add_argument("--trace-tokens", type=int, default=16384, help="test tokens per domain for the routing figures")
    ap.add_argument("--ablate-tokens", type=int, default=4096, help="test tokens per domain for the ablations")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    moewb = a.moewb
    thr = ["--threads", str(a.threads)]
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    E, K = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    results = {"model": os.path.relpath(a.model, ROOT)}

    # 1. Engine test loss vs the training script, and the unigram baseline.
    script = json.load(open(os.path.join(a.model, "test_loss.json")))
    context = script["context"]
    tokens_dir = os.path.join(a.run, "tokens")
    eval_rows = {}
    for domain, s in script["test"]["domains"].items():
        text = os.path.join(a.texts, f"{domain}.test.txt")
        e = json.loads(run([moewb, "eval", "--model", a.model, "--text", text, "--context", str(context), "--json"] + thr))
        ids = json.loads(run([moewb, "tokenize", "--model", a.model], input=open(text, encoding="utf-8").read()))
        train = np.concatenate([np.load(p) for p in sorted(glob.glob(os.path.join(tokens_dir, f"{domain}.train.*.npy")))])
        uni = unigram_ppl(train.astype(np.int64), ids, cfg["vocab_size"])
        eval_rows[domain] = {"tokens": e["tokens"], "engine_loss": e["loss"], "script_loss": s["loss"],
                             "rel_diff": abs(e["loss"] - s["loss"]) / s["loss"], "perplexity": e["perplexity"],
                             "unigram_perplexity": uni, "ratio_to_unigram": e["perplexity"] / uni}
    results["test"] = eval_rows

    # 2. Routing on the test split: trace, per-expert CSV.
    db = os.path.join(a.work, "card.db")
    for ext in ("", "-wal", "-shm"):
        if os.path.exists(db + ext):
            os.remove(db + ext)
    tr = json.loads(run([moewb, "trace", "--model", a.model, "--corpus", a.datasets, "--db", db, "--max-tokens",
                         str(a.trace_tokens), "--quiet", "--json"] + thr))
    run_id = tr["run_id"]
    csv_path = os.path.join(a.work, "experts.csv")
    run([moewb, "stats", "--db", db, "--run", str(run_id), "--csv", csv_path])
    ratio = {}  # (layer, domain) -> [E]
    for row in csv.DictReader(open(csv_path, newline="", encoding="utf-8")):
        key = (int(row["layer"]), row["domain"])
        ratio.setdefault(key, [0.0] * E)[int(row["expert"])] = float(row["ratio_to_uniform"])
    layers = sorted({l for l, _ in ratio})
    domains = [d for d in eval_rows if any((l, d) in ratio for l in layers)]
    spec = {}
    for l in layers:
        per = {}
        for d in domains:
            r = ratio[(l, d)]
            top = max(range(E), key=lambda e: r[e])
            per[d] = {"top_expert": top, "top_ratio": r[top]}
        spec[l] = {"domains": per,
                   "all_domains_top_at_least_3x": all(v["top_ratio"] >= 3 for v in per.values()),
                   "distinct_top_experts": len({v["top_expert"] for v in per.values()})}
        heatmap_svg(domains, list(range(E)), [ratio[(l, d)] for d in domains],
                    os.path.join(a.model, f"routing-layer{l}.svg"),
                    f"Layer {l}: tokens selecting each routed expert, relative to uniform routing (k/E), test split",
                    vmax=max(4.0, max(max(ratio[(l, d)]) for d in domains)))
    results["specialisation"] = {"run_tokens_per_domain": a.trace_tokens, "layers": spec,
                                 "layers_meeting_bar": sum(v["all_domains_top_at_least_3x"] for v in spec.values()),
                                 "moe_layers": len(layers)}

    # 3. Ablations on the test split.
    def ablate(extra):
        return json.loads(run([moewb, "ablate", "--model", a.model, "--corpus", a.datasets, "--max-tokens",
                               str(a.ablate_tokens), "--db", db, "--quiet", "--json"] + thr + extra))
    shared = ablate(["--sweep", "shared"])
    routed = ablate(["--sweep", "top-routed", "--fractions", "0.0625,0.125,0.25", "--from-run", str(run_id)])
    skip = ablate(["--sweep", "skip-top", "--ratios", "0,0.0625,0.125,0.1875,0.25"])
    results["ablation"] = {"shared": shared, "top_routed": routed, "skip_top": skip,
                           "tokens_per_domain": a.ablate_tokens}

    # 4. Loss curve from the training log.
    log = [json.loads(l) for l in open(os.path.join(a.run, "log.jsonl"), encoding="utf-8")]
    train_pts = [(r["step"], r["loss"]) for r in log if r.get("type") == "train"]
    series = {"train (all domains)": train_pts}
    val = [r for r in log if r.get("type") == "validation"]
    for d in (val[0]["loss_by_domain"] if val else {}):
        series[f"validation {d}"] = [(r["step"], r["loss_by_domain"][d]) for r in val]
    loss_curve_svg(series, os.path.join(a.model, "loss-curve.svg"), "Training loss of the embedded model")
    results["training"] = {k: v for k, v in (log[-1].items() if log else {}) if k != "type"}

    with open(os.path.join(a.model, "card.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, default=float)
        f.write("\n")
    write_card(results, cfg, log, json.load(open(os.path.join(a.datasets, "manifest.json"))), layers,
               os.path.join(a.model, "README.md"))
    print(json.dumps({"test": eval_rows, "layers_meeting_bar": results["specialisation"]["layers_meeting_bar"]},
                     indent=1))


def write_card(res, cfg, log, manifest, layers, path):
    start = next(r for r in log if r.get("type") == "start")
    args = start["args"]
    trains = [r for r in log if r.get("type") == "train"]
    last = trains[-1]
    tests = [r for r in log if r.get("type") == "test"]
    steps = tests[-1]["step"] if tests else last["step"]  # where training stopped (the export's step)
    minutes = last["time"] / 60
    tokens = steps * start["tokens_per_step"]
    test = res["test"]
    spec = res["specialisation"]
    L = []
    w = L.append
    w("# The embedded default model")
    w("")
    w("A small model with exactly the DeepSeekMoE 16B architecture — 64 fine-grained routed experts, 2 shared")
    w("experts, top-6 softmax routing without renormalisation, the first layer dense — trained by")
    w("`tools/train/train.py` on the workbench's domain corpora (`datasets/`, plus GSM8K), so that the")
    w("workbench shows real routing, specialisation and ablation effects out of the box. It is a")
    w("Hugging Face `model_type` \"deepseek\" directory (config.json, model.safetensors in BF16,")
    w("tokenizer.json); everything below was measured with the workbench's own engine (`moewb`) by")
    w("`tools/train/model_card.py`, except the numbers marked *script*.")
    w("")
    w("## Architecture")
    w("")
    w("| | |")
    w("|---|---|")
    for k, label in [("hidden_size", "hidden size"), ("num_hidden_layers", "layers"),
                     ("num_attention_heads", "attention heads"), ("intermediate_size", "dense FFN width (layer 0)"),
                     ("n_routed_experts", "routed experts per MoE layer"), ("moe_intermediate_size", "expert FFN width"),
                     ("n_shared_experts", "shared experts"), ("num_experts_per_tok", "experts per token (k)"),
                     ("first_k_dense_replace", "dense layers before the MoE layers"),
                     ("vocab_size", "vocabulary (byte-level BPE, trained on the corpora)"),
                     ("max_position_embeddings", "context")]:
        w(f"| {label} | {cfg[k]} |")
    w(f"| parameters | {start['parameters'] / 1e6:.2f} M |")
    w("")
    w("## Data")
    w("")
    w("Domain-balanced batches: every optimizer step takes the same number of 256-token windows from each")
    w("domain. Sources, versions and licences are in `datasets/manifest.json` and each domain's COPYRIGHT.")
    w("")
    w("| domain | text | source | licence | training tokens |")
    w("|---|---|---|---|---|")
    for d in manifest["domains"]:
        src = d["source"]["package"] + " " + d["source"]["version"]
        w(f"| {d['name']} | {d.get('description', '')} | Debian package {src} | {d['licence']} | "
          f"{start['train_tokens'].get(d['name'], 0):,} |")
    for d in manifest.get("external", []):
        if d["name"] in start["train_tokens"]:
            w(f"| {d['name']} | {d.get('description', '')} | {d['origin']} (read from `{d['path']}`, not committed) | "
              f"{d['licence']} | {start['train_tokens'][d['name']]:,} |")
    w("")
    w("## Training")
    w("")
    w(f"AdamW (β = 0.9, 0.95, weight decay {args['weight_decay']}), learning rate {args['lr']} with {args['warmup']} "
      f"warmup steps and cosine decay to {args['min_lr']} over {args['steps']} planned steps, gradient clipping "
      f"{args['grad_clip']}, the DeepSeekMoE expert-level balance loss (α = {start['shape']['aux_loss_alpha']}, "
      f"{'per sequence' if start['shape'].get('seq_aux', True) else 'over each step’s tokens'}), seed "
      f"{args['seed']}, {start['tokens_per_step']} tokens per step, CPU (2 cores), f32. This model: {steps} steps, "
      f"{tokens / 1e6:.1f} M tokens, {minutes:.0f} minutes; final training loss {last['loss']:.3f}.")
    w("")
    w("![training loss](loss-curve.svg)")
    w("")
    w("## Test results (engine)")
    w("")
    w("Per domain, the test text of the training script's protocol (`tools/train/evaluate.py`: the first test")
    w("documents joined by blank lines until 32,768 tokens) evaluated by `moewb eval` in windows of the model's")
    w("context, against the script's own number and a unigram baseline (add-one smoothed token frequencies")
    w("of the domain's training split, on the same tokens). Bars: perplexity at most a quarter of the")
    w("unigram perplexity; engine within 0.5 % of the script.")
    w("")
    w("| domain | tokens | loss (engine) | loss (*script*) | difference | perplexity | unigram perplexity | ratio |")
    w("|---|---|---|---|---|---|---|---|")
    for d, r in test.items():
        w(f"| {d} | {r['tokens']:,} | {r['engine_loss']:.4f} | {r['script_loss']:.4f} | {100 * r['rel_diff']:.3f} % | "
          f"{r['perplexity']:.1f} | {r['unigram_perplexity']:.1f} | {r['ratio_to_unigram']:.3f} |")
    w("")
    w("## Routing")
    w("")
    w(f"`moewb trace` over the test split ({spec['run_tokens_per_domain']:,} tokens per domain), `moewb stats`: for each")
    w("MoE layer and domain the expert the domain selects most, and how often it is selected relative to")
    w(f"uniform routing (`ratio_to_uniform`: the fraction of the domain's tokens that select it ÷ k/E =")
    w(f"{cfg['num_experts_per_tok']}/{cfg['n_routed_experts']}). Bar: in most layers every domain's top expert gets at least")
    w(f"3× the uniform share — met in {spec['layers_meeting_bar']} of {spec['moe_layers']} MoE layers.")
    w("")
    doms = list(next(iter(spec["layers"].values()))["domains"].keys())
    w("| layer | " + " | ".join(doms) + " | distinct top experts |")
    w("|---|" + "---|" * len(doms) + "---|")
    for l, v in spec["layers"].items():
        cells = [f"#{v['domains'][d]['top_expert']}: {v['domains'][d]['top_ratio']:.1f}×" for d in doms]
        w(f"| {l} | " + " | ".join(cells) + f" | {v['distinct_top_experts']} of {len(doms)} |")
    w("")
    for l in layers:
        w(f"![routing, layer {l}](routing-layer{l}.svg)")
        w("")
    w("## Ablations (engine)")
    w("")
    ab = res["ablation"]
    w(f"`moewb ablate` on the test split, {ab['tokens_per_domain']:,} tokens per domain; Δloss in nats per token")
    w("against the unablated model on the same tokens; KL(baseline ‖ ablated) of the next-token distributions.")
    w("")

    def table(conds, label):
        names = [s["domain"] for s in conds[0]["domains"]]
        w(f"| {label} | " + " | ".join(names) + " | all: Δloss | all: KL | all: top-1 agreement |")
        w("|---|" + "---|" * len(names) + "---|---|---|")
        for c in conds:
            what = f"`{c['mask']}`" + (f" (control: {c['control']})" if c.get("control") else "")
            if c.get("value") is not None and c["mask"].startswith("L"):
                what = f"{c['value']:g} of the experts, {c.get('control') or 'most routed'}"
            cells = [f"{s['delta_loss']:+.3f}" for s in c["domains"]]
            al = c["all"]
            w(f"| {what} | " + " | ".join(cells) +
              f" | {al['delta_loss']:+.3f} | {al['kl']:.3f} | {100 * al['top1_agreement']:.1f} % |")
        w("")
    w("Shared experts (the paper's equal-compute variant adds one routed expert; the control adds it with the")
    w("shared experts on):")
    w("")
    table(ab["shared"]["conditions"], "condition")
    w("Routed experts switched off in every MoE layer, chosen by how often the trace above selected them")
    w("(most routed), with the least-routed and random controls:")
    w("")
    table(ab["top_routed"]["conditions"], "switched off")
    w("Per token, the most probable routed experts excluded (the DeepSeekMoE paper's redundancy experiment),")
    w("with random exclusion of as many as the control:")
    w("")
    table(ab["skip_top"]["conditions"], "excluded")
    w("## Reproduce")
    w("")
    w("```sh")
    w("/usr/bin/python3 tools/train/train_tokenizer.py --out build/train/tokenizer")
    w(f"/usr/bin/python3 tools/train/train.py --shape {args['shape']} --tokenizer build/train/tokenizer \\")
    w(f"    --out build/train/run --export resources/models/default --eval-text-dir build/train/test-texts \\")
    w(f"    --steps {args['steps']} --minutes {args['minutes']:g}")
    w("/usr/bin/python3 tools/train/model_card.py")
    w("```")
    w("")
    w("Details: docs/training.md. The weights are a product of the corpora above; their licences apply.")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
