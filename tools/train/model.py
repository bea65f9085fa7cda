"""DeepSeekMoE (Hugging Face model_type "deepseek") in PyTorch, for training the embedded model.

Written from model-spec.md §1 (the published DeepseekForCausalLM remote code): RMSNorm in f32,
rotary embedding in the HF "rotate_half" layout, causal multi-head attention (GQA when
num_key_value_heads < num_attention_heads), SiLU-gated MLPs, dense FFN in the first
first_k_dense_replace layers, MoE elsewhere: softmax router over all routed experts, top-K
weights not renormalised unless norm_topk_prob, the shared experts as one MLP of width F·S.
Training adds the DeepSeekMoE paper's expert-level balance loss (arXiv 2401.06066 §3.3):
L = α Σ_i f_i P_i, f_i = E/(K·T) · (tokens routed to i), P_i = mean router probability of i,
per sequence (seq_aux) and averaged over the batch. Routed experts are stored stacked
([E, ...] tensors) so tokens can be grouped by expert; export.py writes per-expert tensors.
Not an inference engine: no KV cache; the C++ engine (engine/) is that.
"""

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DeepseekShape:
    """The config.json keys that define the network (Hugging Face names)."""
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    moe_intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    n_routed_experts: int = 64
    n_shared_experts: int = 2
    num_experts_per_tok: int = 6
    first_k_dense_replace: int = 1
    moe_layer_freq: int = 1
    norm_topk_prob: bool = False
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 256
    aux_loss_alpha: float = 0.001
    seq_aux: bool = True
    initializer_range: float = 0.02

    @classmethod
    def from_dict(cls, d):
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown shape keys {unknown} (known: {sorted(names)})")
        return cls(**d)

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def is_moe_layer(self, i):
        return (self.n_routed_experts > 0 and i >= self.first_k_dense_replace
                and i % self.moe_layer_freq == 0)

    def check(self):
        if self.hidden_size % self.num_attention_heads or self.head_dim % 2:
            raise ValueError("hidden_size must be num_attention_heads × an even head dimension")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_key_value_heads must divide num_attention_heads")
        if self.num_experts_per_tok > self.n_routed_experts:
            raise ValueError("num_experts_per_tok exceeds n_routed_experts")


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))  # [H]
        self.eps = eps

    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(seq_len, head_dim, theta):
    """cos, sin [T, hd]: angle(p, j) = p · θ^(−2j/hd), emb = [angle, angle] (HF layout)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))  # [hd/2]
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)  # [T, hd/2]
    emb = torch.cat([angles, angles], dim=-1)  # [T, hd]
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


class Attention(nn.Module):
    def __init__(self, s: DeepseekShape):
        super().__init__()
        self.nh, self.nkv, self.hd = s.num_attention_heads, s.num_key_value_heads, s.head_dim
        H = s.hidden_size
        self.q_proj = nn.Linear(H, self.nh * self.hd, bias=False)
        self.k_proj = nn.Linear(H, self.nkv * self.hd, bias=False)
        self.v_proj = nn.Linear(H, self.nkv * self.hd, bias=False)
        self.o_proj = nn.Linear(self.nh * self.hd, H, bias=False)

    def forward(self, x, cos, sin, mask):  # x [B, T, H]; cos, sin [T, hd]; mask [T, T] additive
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.nh, self.hd).transpose(1, 2)  # [B, nh, T, hd]
        k = self.k_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)  # [B, nkv, T, hd]
        v = self.v_proj(x).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.nkv != self.nh:
            rep = self.nh // self.nkv
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        scores = torch.matmul(q, k.transpose(-1, -2)).float() / math.sqrt(self.hd) + mask  # [B, nh, T, T]
        p = scores.softmax(dim=-1).to(v.dtype)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, T, self.nh * self.hd)
        return self.o_proj(o)


class MLP(nn.Module):
    def __init__(self, H, width):
        super().__init__()
        self.gate_proj = nn.Linear(H, width, bias=False)
        self.up_proj = nn.Linear(H, width, bias=False)
        self.down_proj = nn.Linear(width, H, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Gate(nn.Module):
    """The router: mlp.gate.weight [E, H], no bias, run in f32."""

    def __init__(self, E, H):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(E, H))

    def forward(self, x):  # x [N, H] -> probabilities [N, E]
        with torch.autocast("cpu", enabled=False):
            return F.linear(x.float(), self.weight.float()).softmax(dim=-1)


class MoE(nn.Module):
    def __init__(self, s: DeepseekShape):
        super().__init__()
        E, H, Fw = s.n_routed_experts, s.hidden_size, s.moe_intermediate_size
        self.E, self.K, self.norm_topk_prob = E, s.num_experts_per_tok, s.norm_topk_prob
        self.alpha, self.seq_aux = s.aux_loss_alpha, s.seq_aux
        self.gate = Gate(E, H)
        # Routed experts, stacked: gate and up projections fused as rows [gate F | up F].
        self.experts_gate_up = nn.Parameter(torch.empty(E, 2 * Fw, H))  # [E, 2F, H]
        self.experts_down = nn.Parameter(torch.empty(E, H, Fw))  # [E, H, F]
        self.shared_experts = MLP(H, Fw * s.n_shared_experts) if s.n_shared_experts else None
        self.last_counts = None  # [E] tokens routed to each expert in the last forward

    def forward(self, x):  # x [B, T, H]
        B, T, H = x.shape
        flat = x.reshape(B * T, H)
        probs = self.gate(flat)  # [N, E]
        w, idx = probs.topk(self.K, dim=-1)  # [N, K]
        if self.norm_topk_prob:
            w = w / (w.sum(dim=-1, keepdim=True) + 1e-20)
        flat_e = idx.reshape(-1)  # [N·K]
        counts = torch.bincount(flat_e, minlength=self.E)  # [E]
        self.last_counts = counts.detach()
        # Group the (token, expert) assignments by expert: one matmul chain per expert.
        order = flat_e.argsort()
        tok = order // self.K  # [N·K] token of each sorted assignment
        xs = flat[tok]  # [N·K, H]
        # unbind / split (not slicing): their backward concatenates the per-expert gradients
        # once instead of accumulating E full-size gradients.
        gate_up, down = self.experts_gate_up.unbind(0), self.experts_down.unbind(0)
        outs = []
        for e, xe in enumerate(xs.split(counts.tolist())):  # xe [c_e, H]
            if xe.shape[0] == 0:
                continue
            g, u = F.linear(xe, gate_up[e]).chunk(2, dim=-1)  # [c_e, F] each
            outs.append(F.linear(F.silu(g) * u, down[e]))  # [c_e, H]
        ys = torch.cat(outs).float() * w.reshape(-1)[order].unsqueeze(1)  # [N·K, H]
        y = torch.zeros(B * T, H, dtype=torch.float32, device=x.device).index_add_(0, tok, ys)
        y = y.view(B, T, H)
        if self.shared_experts is not None:
            y = y + self.shared_experts(x)
        aux = x.new_zeros((), dtype=torch.float32)
        if self.training and self.alpha > 0:
            p = probs.view(B, T, self.E)
            if self.seq_aux:  # per sequence, then the batch mean
                ce = torch.zeros(B, self.E, device=x.device).scatter_add_(
                    1, idx.view(B, T * self.K), torch.ones(B, T * self.K, device=x.device))
                f = ce * (self.E / (self.K * T))  # [B, E]
                aux = (f * p.mean(dim=1)).sum(dim=1).mean() * self.alpha
            else:
                f = counts.float() * (self.E / (self.K * B * T))
                aux = (f * p.reshape(B * T, self.E).mean(dim=0)).sum() * self.alpha
        return y, aux


class DecoderLayer(nn.Module):
    def __init__(self, s: DeepseekShape, i):
        super().__init__()
        self.input_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)
        self.self_attn = Attention(s)
        self.post_attention_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)
        self.is_moe = s.is_moe_layer(i)
        self.mlp = MoE(s) if self.is_moe else MLP(s.hidden_size, s.intermediate_size)

    def forward(self, x, cos, sin, mask):
        h = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        f = self.mlp(self.post_attention_layernorm(h))
        if self.is_moe:
            f, aux = f
        else:
            aux = None
        return h + f, aux


class DeepseekBody(nn.Module):
    def __init__(self, s: DeepseekShape):
        super().__init__()
        self.embed_tokens = nn.Embedding(s.vocab_size, s.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(s, i) for i in range(s.num_hidden_layers))
        self.norm = RMSNorm(s.hidden_size, s.rms_norm_eps)


class DeepseekForCausalLM(nn.Module):
    """Parameter names follow the checkpoint's (model.layers.{i}.…, lm_head.weight), except the
    stacked routed experts (mlp.experts_gate_up, mlp.experts_down)."""

    def __init__(self, s: DeepseekShape):
        super().__init__()
        s.check()
        self.shape = s
        self.model = DeepseekBody(s)
        self.lm_head = nn.Linear(s.hidden_size, s.vocab_size, bias=False)
        self._rope = {}
        self.reset_parameters()

    def reset_parameters(self):
        """Normal(0, initializer_range) as the HF code; output projections of residual branches
        scaled by 1/sqrt(2·L) (GPT-2) so the residual stream starts near unit scale."""
        s = self.shape
        std = s.initializer_range
        out_std = std / math.sqrt(2 * s.num_hidden_layers)
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith(("o_proj.weight", "down_proj.weight", "experts_down")):
                nn.init.normal_(p, 0.0, out_std)
            else:
                nn.init.normal_(p, 0.0, std)

    def rope(self, T, device):
        key = (T, str(device))
        if key not in self._rope:
            cos, sin = rope_tables(T, self.shape.head_dim, self.shape.rope_theta)
            mask = torch.full((T, T), float("-inf")).triu(1)
            self._rope[key] = (cos.to(device), sin.to(device), mask.to(device))
        return self._rope[key]

    def forward(self, ids):
        """ids [B, T] -> logits [B, T, V] (f32), balance loss (scalar, 0 in eval mode)."""
        B, T = ids.shape
        cos, sin, mask = self.rope(T, ids.device)
        x = self.model.embed_tokens(ids)
        aux = x.new_zeros((), dtype=torch.float32)
        for layer in self.model.layers:
            x, a = layer(x, cos, sin, mask)
            if a is not None:
                aux = aux + a
        logits = self.lm_head(self.model.norm(x)).float()
        return logits, aux

    def expert_counts(self):
        """{layer: [E] counts of the last forward} for the MoE layers."""
        return {i: l.mlp.last_counts for i, l in enumerate(self.model.layers) if l.is_moe}
