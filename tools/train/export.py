"""Writes a trained model.py network as a Hugging Face model directory the engine loads:
config.json (the keys of deepseek-moe-16b-base's config.json, with this model's values),
model.safetensors in BF16 with the checkpoint's tensor names (model-spec.md §1; the stacked
routed experts become mlp.experts.{e}.{gate,up,down}_proj.weight), and the tokenizer files.
Also reads such a directory back into a model.py network (f32 copies of the BF16 weights).
"""

import json
import os
import shutil

import torch

from model import DeepseekForCausalLM, DeepseekShape
from safetensors_io import read_safetensors, write_safetensors

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def hf_config(shape: DeepseekShape, bos_id, eos_id):
    """Same keys, in the same order, as ../shared/configs/deepseek-moe-16b-base.json."""
    s = shape
    return {
        "architectures": ["DeepseekForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "auto_map": {
            "AutoConfig": "configuration_deepseek.DeepseekConfig",
            "AutoModel": "modeling_deepseek.DeepseekModel",
            "AutoModelForCausalLM": "modeling_deepseek.DeepseekForCausalLM",
        },
        "aux_loss_alpha": s.aux_loss_alpha,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "first_k_dense_replace": s.first_k_dense_replace,
        "hidden_act": "silu",
        "hidden_size": s.hidden_size,
        "initializer_range": s.initializer_range,
        "intermediate_size": s.intermediate_size,
        "max_position_embeddings": s.max_position_embeddings,
        "model_type": "deepseek",
        "moe_intermediate_size": s.moe_intermediate_size,
        "moe_layer_freq": s.moe_layer_freq,
        "n_routed_experts": s.n_routed_experts,
        "n_shared_experts": s.n_shared_experts,
        "norm_topk_prob": s.norm_topk_prob,
        "num_attention_heads": s.num_attention_heads,
        "num_experts_per_tok": s.num_experts_per_tok,
        "num_hidden_layers": s.num_hidden_layers,
        "num_key_value_heads": s.num_key_value_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": s.rms_norm_eps,
        "rope_scaling": None,
        "rope_theta": int(s.rope_theta) if float(s.rope_theta).is_integer() else s.rope_theta,
        "scoring_func": "softmax",
        "seq_aux": s.seq_aux,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.36.0",
        "use_cache": True,
        "vocab_size": s.vocab_size,
    }


def checkpoint_tensors(net: DeepseekForCausalLM):
    """[(checkpoint name, tensor)] in model-spec.md §1 order, values as trained (f32)."""
    s = net.shape
    Fw = s.moe_intermediate_size
    sd = net.state_dict()
    out = [("model.embed_tokens.weight", sd["model.embed_tokens.weight"])]
    for i in range(s.num_hidden_layers):
        p = f"model.layers.{i}."
        out.append((p + "input_layernorm.weight", sd[p + "input_layernorm.weight"]))
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out.append((p + f"self_attn.{proj}.weight", sd[p + f"self_attn.{proj}.weight"]))
        out.append((p + "post_attention_layernorm.weight", sd[p + "post_attention_layernorm.weight"]))
        if not s.is_moe_layer(i):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                out.append((p + f"mlp.{proj}.weight", sd[p + f"mlp.{proj}.weight"]))
            continue
        out.append((p + "mlp.gate.weight", sd[p + "mlp.gate.weight"]))
        gate_up, down = sd[p + "mlp.experts_gate_up"], sd[p + "mlp.experts_down"]  # [E, 2F, H], [E, H, F]
        for e in range(s.n_routed_experts):
            out.append((p + f"mlp.experts.{e}.gate_proj.weight", gate_up[e, :Fw]))
            out.append((p + f"mlp.experts.{e}.up_proj.weight", gate_up[e, Fw:]))
            out.append((p + f"mlp.experts.{e}.down_proj.weight", down[e]))
        if s.n_shared_experts:
            for proj in ("gate_proj", "up_proj", "down_proj"):
                out.append((p + f"mlp.shared_experts.{proj}.weight", sd[p + f"mlp.shared_experts.{proj}.weight"]))
    out.append(("model.norm.weight", sd["model.norm.weight"]))
    out.append(("lm_head.weight", sd["lm_head.weight"]))
    return out


def export_model(net: DeepseekForCausalLM, out_dir, tokenizer_dir, bos_id, eos_id):
    """Writes config.json, model.safetensors (BF16) and the tokenizer files into out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    tensors = [(n, t.detach().to(torch.bfloat16)) for n, t in checkpoint_tensors(net)]
    tmp = os.path.join(out_dir, "model.safetensors.tmp")
    write_safetensors(tmp, tensors)
    os.replace(tmp, os.path.join(out_dir, "model.safetensors"))
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config(net.shape, bos_id, eos_id), f, indent=2)
        f.write("\n")
    for name in TOKENIZER_FILES:
        src = os.path.join(tokenizer_dir, name)
        if os.path.abspath(src) != os.path.abspath(os.path.join(out_dir, name)):
            shutil.copyfile(src, os.path.join(out_dir, name))


def shape_from_config(cfg):
    keys = DeepseekShape.__dataclass_fields__
    return DeepseekShape.from_dict({k: v for k, v in cfg.items() if k in keys})


def load_exported(model_dir):
    """A model.py network holding the exported (BF16-rounded) weights as f32, in eval mode."""
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        shape = shape_from_config(json.load(f))
    net = DeepseekForCausalLM(shape)
    tensors = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    s = shape
    sd = {}
    for name, t in tensors.items():
        if ".mlp.experts." not in name:
            sd[name] = t.float()
    for i in range(s.num_hidden_layers):
        if not s.is_moe_layer(i):
            continue
        p = f"model.layers.{i}.mlp."
        sd[p + "experts_gate_up"] = torch.stack([
            torch.cat([tensors[p + f"experts.{e}.gate_proj.weight"], tensors[p + f"experts.{e}.up_proj.weight"]])
            for e in range(s.n_routed_experts)]).float()
        sd[p + "experts_down"] = torch.stack(
            [tensors[p + f"experts.{e}.down_proj.weight"] for e in range(s.n_routed_experts)]).float()
    net.load_state_dict(sd, strict=True)
    return net.eval()
