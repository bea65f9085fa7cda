#!/usr/bin/python3
"""The PyTorch eager peer of `moewb bench`: the same DeepSeekMoE shapes with random weights,
prefill of a prompt of random ids and greedy decode with a KV cache, timed the same way
(best of --repeat), printed as JSON. Researchers' usual baseline is the published modeling
code run eagerly; this is that computation written directly (no transformers needed):
RMSNorm, rotary attention (scaled_dot_product_attention; causal for the prompt, over the
cache for each new token), SiLU-gated MLPs, the softmax router with top-k, each selected
expert run on its tokens (as the published inference path loops over experts), the shared
experts, lm_head.

  /usr/bin/python3 bench/torch_peer.py --random-config ../shared/configs/deepseek-moe-16b-base.json \\
      --device cuda --prompt-tokens 2048 --gen-tokens 128

Only model_type "deepseek" (DeepSeekMoE 16B); --layers N keeps the first N layers.
--model DIR runs a checkpoint instead (config.json + model.safetensors, Hugging Face names);
with --ids 1,2,3 it prints the last position's logits instead of timing, which is how the
test suite checks that the peer computes what the engine computes (`moewb logits`).
"""

import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--random-config", help="a Hugging Face config.json of model_type deepseek")
    src.add_argument("--model", help="a checkpoint directory (config.json, model.safetensors)")
    ap.add_argument("--ids", help="with --model: print the logits of the last of these token ids (no timing)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32"])
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--layers", type=int, default=0, help="keep the first N layers (0: all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return ap.parse_args(argv)


def attention(q, k, v, causal):
    """softmax(q kᵀ / √d) v, causal over the prompt; torch's fused kernel where it has one (2.0+)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    s = (q.float() @ k.float().transpose(-1, -2)) / (q.shape[-1] ** 0.5)
    if causal:
        T = q.shape[-2]
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return (s.softmax(dim=-1) @ v.float()).to(q.dtype)


class Peer:
    def __init__(self, cfg, layers, dtype, device, seed, tensors=None):
        if cfg.get("model_type") != "deepseek":
            raise ValueError(f"model_type {cfg.get('model_type')!r}: the peer is written for \"deepseek\" only")
        if cfg.get("scoring_func", "softmax") != "softmax":
            raise ValueError("scoring_func must be softmax")
        self.cfg, self.dtype, self.device = cfg, dtype, device
        self.H = cfg["hidden_size"]
        self.nh = cfg["num_attention_heads"]
        self.nkv = cfg.get("num_key_value_heads", self.nh)
        self.hd = self.H // self.nh
        self.E, self.K = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
        self.norm_topk = cfg.get("norm_topk_prob", False)
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.L = layers or cfg["num_hidden_layers"]
        g = torch.Generator(device=device).manual_seed(seed)
        self.weight_bytes = 0

        def w(*shape, name=None):
            if tensors is not None:
                t = tensors[name].to(device=device, dtype=dtype)
                if tuple(t.shape) != shape:
                    raise ValueError(f"{name}: shape {tuple(t.shape)}, expected {shape}")
            else:
                t = (torch.randn(*shape, generator=g, device=device, dtype=torch.float32) * 0.02).to(dtype)
            self.weight_bytes += t.numel() * t.element_size()
            return t

        def stacked(names, *shape):  # experts' matrices as one [E, ...] tensor
            if tensors is None:
                return w(len(names), *shape)
            return torch.stack([w(*shape, name=n) for n in names])

        def ones(name):
            t = torch.ones(self.H, device=device, dtype=dtype) if tensors is None else tensors[name].to(device=device, dtype=dtype)
            return t

        H, V = self.H, cfg["vocab_size"]
        F_dense, F_moe, S = cfg["intermediate_size"], cfg["moe_intermediate_size"], cfg.get("n_shared_experts") or 0
        self.embed = w(V, H, name="model.embed_tokens.weight")
        self.layers = []
        for i in range(self.L):
            p = f"model.layers.{i}."
            layer = {
                "in_norm": ones(p + "input_layernorm.weight"),
                "post_norm": ones(p + "post_attention_layernorm.weight"),
                "q": w(self.nh * self.hd, H, name=p + "self_attn.q_proj.weight"),
                "k": w(self.nkv * self.hd, H, name=p + "self_attn.k_proj.weight"),
                "v": w(self.nkv * self.hd, H, name=p + "self_attn.v_proj.weight"),
                "o": w(H, self.nh * self.hd, name=p + "self_attn.o_proj.weight"),
            }
            moe = i >= cfg.get("first_k_dense_replace", 0) and i % cfg.get("moe_layer_freq", 1) == 0
            m = p + "mlp."
            if moe:
                layer["router"] = w(self.E, H, name=m + "gate.weight")
                ex = [f"{m}experts.{e}." for e in range(self.E)]
                # per expert [gate F | up F] rows, as one matmul
                layer["gate_up"] = torch.cat([stacked([x + "gate_proj.weight" for x in ex], F_moe, H),
                                              stacked([x + "up_proj.weight" for x in ex], F_moe, H)], dim=1)
                layer["down"] = stacked([x + "down_proj.weight" for x in ex], H, F_moe)
                if S:
                    sh = m + "shared_experts."
                    layer["shared"] = (torch.cat([w(F_moe * S, H, name=sh + "gate_proj.weight"),
                                                  w(F_moe * S, H, name=sh + "up_proj.weight")]),
                                       w(H, F_moe * S, name=sh + "down_proj.weight"))
            else:
                layer["mlp"] = (torch.cat([w(F_dense, H, name=m + "gate_proj.weight"), w(F_dense, H, name=m + "up_proj.weight")]),
                                w(H, F_dense, name=m + "down_proj.weight"))
            self.layers.append(layer)
        self.final_norm = ones("model.norm.weight")
        self.lm_head = w(V, H, name="lm_head.weight" if not cfg.get("tie_word_embeddings") else "model.embed_tokens.weight")
        max_pos = cfg.get("max_position_embeddings", 4096)
        inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, self.hd, 2, device=device).float() / self.hd))
        ang = torch.outer(torch.arange(max_pos, device=device).float(), inv)
        self.cos = torch.cat([ang, ang], dim=-1).cos().to(dtype)  # [P, hd], the rotate_half layout
        self.sin = torch.cat([ang, ang], dim=-1).sin().to(dtype)

    def rms(self, x, weight):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(self.dtype) * weight

    def rope(self, x, pos):  # x [1, h, T, hd]
        c, s = self.cos[pos], self.sin[pos]
        half = x.shape[-1] // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * c + rot * s

    @staticmethod
    def mlp(x, gate_up, down):
        g, u = F.linear(x, gate_up).chunk(2, dim=-1)
        return F.linear(F.silu(g) * u, down)

    def moe(self, layer, x):  # x [T, H]
        probs = F.linear(x, layer["router"]).float().softmax(dim=-1)
        w, idx = probs.topk(self.K, dim=-1)
        if self.norm_topk and self.K > 1:
            w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
        out = torch.zeros(x.shape[0], self.H, device=x.device, dtype=torch.float32)
        flat = idx.reshape(-1)
        order = flat.argsort()
        counts = torch.bincount(flat, minlength=self.E).tolist()
        tok = order // self.K
        start = 0
        for e, c in enumerate(counts):
            if c == 0:
                continue
            rows = tok[start:start + c]
            y = self.mlp(x[rows], layer["gate_up"][e], layer["down"][e]).float()
            out.index_add_(0, rows, y * w.reshape(-1)[order[start:start + c]].unsqueeze(1))
            start += c
        if "shared" in layer:
            out += self.mlp(x, *layer["shared"]).float()
        return out.to(self.dtype)

    @torch.no_grad()
    def forward(self, ids, cache, pos0):
        """ids [T] -> logits of the last token; cache: per layer [k, v] of [1, nkv, P, hd]."""
        T = ids.shape[0]
        pos = torch.arange(pos0, pos0 + T, device=self.device)
        h = self.embed[ids]  # [T, H]
        for layer, (kc, vc) in zip(self.layers, cache):
            a = self.rms(h, layer["in_norm"])
            q = F.linear(a, layer["q"]).view(T, self.nh, self.hd).transpose(0, 1).unsqueeze(0)
            k = F.linear(a, layer["k"]).view(T, self.nkv, self.hd).transpose(0, 1).unsqueeze(0)
            v = F.linear(a, layer["v"]).view(T, self.nkv, self.hd).transpose(0, 1).unsqueeze(0)
            q, k = self.rope(q, pos), self.rope(k, pos)
            kc[:, :, pos0:pos0 + T] = k
            vc[:, :, pos0:pos0 + T] = v
            keys, values = kc[:, :, :pos0 + T], vc[:, :, :pos0 + T]
            if self.nkv != self.nh:
                keys = keys.repeat_interleave(self.nh // self.nkv, dim=1)
                values = values.repeat_interleave(self.nh // self.nkv, dim=1)
            att = attention(q, keys, values, causal=(pos0 == 0 and T > 1))
            h = h + F.linear(att.squeeze(0).transpose(0, 1).reshape(T, self.nh * self.hd), layer["o"])
            a = self.rms(h, layer["post_norm"])
            h = h + (self.moe(layer, a) if "router" in layer else self.mlp(a, *layer["mlp"]))
        return F.linear(self.rms(h[-1:], self.final_norm), self.lm_head).float()

    def new_cache(self, length):
        return [[torch.zeros(1, self.nkv, length, self.hd, device=self.device, dtype=self.dtype) for _ in range(2)]
                for _ in range(self.L)]


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None):
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg_path = a.random_config or os.path.join(a.model, "config.json")
    with open(cfg_path, encoding="utf-8") as f:
        cfg = json.load(f)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    tensors = None
    if a.model:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "train"))
        from safetensors_io import read_safetensors  # noqa: E402
        tensors = read_safetensors(os.path.join(a.model, "model.safetensors"))
    peer = Peer(cfg, a.layers, dtype, a.device, a.seed, tensors)
    if a.ids:
        ids = torch.tensor([int(x) for x in a.ids.split(",")], device=a.device)
        logits = peer.forward(ids, peer.new_cache(len(ids)), 0)
        print(json.dumps({"logits": logits[0].tolist()}))
        return 0
    g = torch.Generator().manual_seed(a.seed + 1)
    prompt = torch.randint(0, cfg["vocab_size"], (a.prompt_tokens,), generator=g).to(a.device)
    best_prefill, best_decode = 0.0, 0.0
    for r in range(a.repeat + 1):  # the first run warms up (kernels, allocator)
        cache = peer.new_cache(a.prompt_tokens + a.gen_tokens)
        sync(a.device)
        t0 = time.perf_counter()
        logits = peer.forward(prompt, cache, 0)
        sync(a.device)
        t1 = time.perf_counter()
        tok = logits.argmax(dim=-1)
        for i in range(a.gen_tokens):
            logits = peer.forward(tok, cache, a.prompt_tokens + i)
            tok = logits.argmax(dim=-1)
        sync(a.device)
        t2 = time.perf_counter()
        if r > 0 or a.repeat == 0:
            best_prefill = max(best_prefill, a.prompt_tokens / (t1 - t0))
            if a.gen_tokens:
                best_decode = max(best_decode, a.gen_tokens / (t2 - t1))
    device_name = torch.cuda.get_device_name(0) if str(a.device).startswith("cuda") else "cpu"
    print(json.dumps({
        "peer": "pytorch-eager", "config": cfg_path, "device": device_name, "dtype": a.dtype,
        "layers": peer.L, "prompt_tokens": a.prompt_tokens, "gen_tokens": a.gen_tokens,
        "prefill_tok_s": best_prefill, "decode_tok_s": best_decode, "weight_bytes": peer.weight_bytes,
        "torch": torch.__version__,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
