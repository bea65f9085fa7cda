#!/usr/bin/python3
"""Size / speed study for the embedded model: for each candidate shape, the parameter count, the
BF16 safetensors size, and the training throughput (tokens/s of full optimizer steps: forward,
backward, AdamW) on this machine (--threads BLAS threads, --torch-threads for torch's own ops).
Uses random token batches of the real step size (no corpora needed); prints one JSON object per
shape, with and without bf16 autocast when --bf16 both.

  /usr/bin/python3 tools/train/study.py tools/train/shapes/*.json --vocab-size 6000
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import DeepseekForCausalLM, DeepseekShape  # noqa: E402
from threads import set_threads  # noqa: E402


def measure(shape, tokens_per_step, seq_len, steps, warmup_steps, bf16, seed=0):
    torch.manual_seed(seed)
    net = DeepseekForCausalLM(shape)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    B = tokens_per_step // seq_len
    g = torch.Generator().manual_seed(seed)
    times = []
    for i in range(warmup_steps + steps):
        x = torch.randint(0, shape.vocab_size, (B, seq_len + 1), generator=g)
        t0 = time.time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, aux = net(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, shape.vocab_size), x[:, 1:].reshape(-1)) + aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if i >= warmup_steps:
            times.append(time.time() - t0)
    times.sort()
    median = times[len(times) // 2]
    return {"seconds_per_step": median, "tokens_per_s": B * seq_len / median}


def describe(shape):
    s = shape
    H, E, K, Fw = s.hidden_size, s.n_routed_experts, s.num_experts_per_tok, s.moe_intermediate_size
    attn = H * s.head_dim * (2 * s.num_attention_heads + 2 * s.num_key_value_heads)
    n_moe = sum(s.is_moe_layer(i) for i in range(s.num_hidden_layers))
    n_dense = s.num_hidden_layers - n_moe
    shared = 3 * H * Fw * s.n_shared_experts
    total = (2 * s.vocab_size * H + s.num_hidden_layers * (attn + 2 * H) + H
             + n_dense * 3 * H * s.intermediate_size + n_moe * (E * H + E * 3 * H * Fw + shared))
    active = (s.vocab_size * H + s.num_hidden_layers * attn + n_dense * 3 * H * s.intermediate_size
              + n_moe * (E * H + K * 3 * H * Fw + shared))
    return {"parameters": total, "activated_per_token": active, "bf16_mb": round(2 * total / 1e6, 2)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shapes", nargs="+", help="shape JSON files (as for train.py --shape)")
    ap.add_argument("--vocab-size", type=int, default=6000)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--tokens-per-step", type=int, default=3072)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup-steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="BLAS threads (matrix products)")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch's own threads (elementwise ops)")
    ap.add_argument("--bf16", choices=("off", "on", "both"), default="both")
    a = ap.parse_args(argv)
    threads = set_threads(a.threads, a.torch_threads)
    for path in a.shapes:
        with open(path, encoding="utf-8") as f:
            d = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
        d["vocab_size"] = a.vocab_size
        d.setdefault("max_position_embeddings", a.seq_len)
        shape = DeepseekShape.from_dict(d)
        row = {"shape": os.path.basename(path), **describe(shape), "blas_threads": threads["blas_threads"],
               "torch_threads": a.torch_threads,
               "tokens_per_step": a.tokens_per_step, "seq_len": a.seq_len}
        for bf16 in ([False, True] if a.bf16 == "both" else [a.bf16 == "on"]):
            m = measure(shape, a.tokens_per_step, a.seq_len, a.steps, a.warmup_steps, bf16)
            row["bf16" if bf16 else "f32"] = m
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
