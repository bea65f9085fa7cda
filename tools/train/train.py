#!/usr/bin/python3
"""Trains the embedded DeepSeekMoE model on the domain corpora (CPU, Debian's python3-torch) and
exports it as a Hugging Face directory the engine loads.

AdamW, linear warmup then cosine decay to --min-lr, gradient clipping, fixed seeds, domain-balanced
batches (the same number of seq_len windows per domain per step), the DeepSeekMoE expert-level
balance loss (α = aux_loss_alpha of the shape). Writes OUT/log.jsonl (see docs/training.md),
OUT/checkpoint.pt every --checkpoint-minutes (model, optimizer, step, RNG states; --resume
continues from it bit-for-bit), stops after --steps or when the training time reaches --minutes,
then exports to --export (config.json, BF16 model.safetensors, tokenizer files) and writes
test_loss.json there: the per-domain test loss of the exported BF16 weights (evaluate.py's
protocol, which `moewb eval` reproduces).

  /usr/bin/python3 tools/train/train.py --shape tools/train/shapes/default.json \\
      --tokenizer build/train/tokenizer --out build/train/run --export resources/models/default --steps 1800
"""

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from byte_level_bpe import Encoder  # noqa: E402
from domains import DEFAULT_DATASETS, DEFAULT_GSM8K, Corpora  # noqa: E402
from evaluate import domain_test_losses  # noqa: E402
from export import export_model, load_exported  # noqa: E402
from model import DeepseekForCausalLM, DeepseekShape  # noqa: E402
from threads import set_threads  # noqa: E402
from token_streams import TokenStreams  # noqa: E402

# Arguments a resumed run must share with the checkpoint (others, e.g. --minutes, may change).
RESUME_FIXED = ("seq_len", "batch_per_domain", "lr", "min_lr", "warmup", "weight_decay", "seed", "domains")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", required=True,
                    help="JSON of model.py DeepseekShape keys (vocab_size comes from the tokenizer)")
    ap.add_argument("--tokenizer", required=True, help="directory with tokenizer.json + tokenizer_config.json")
    ap.add_argument("--out", required=True, help="run directory: log.jsonl, checkpoint.pt, token cache")
    ap.add_argument("--export", default="", help="Hugging Face model directory to write at the end")
    ap.add_argument("--datasets", default=DEFAULT_DATASETS)
    ap.add_argument("--gsm8k", default=DEFAULT_GSM8K, help="GSM8K directory ('' for none; default: corpus.py's)")
    ap.add_argument("--domains", default="", help="comma-separated subset of domains (default: all)")
    ap.add_argument("--steps", type=int, default=0,
                    help="optimizer steps (the schedule's length); 0: planned from the measured speed and --minutes")
    ap.add_argument("--minutes", type=float, default=0, help="training-time budget over all resumed sessions")
    ap.add_argument("--replan-every", type=int, default=50, help="without --steps: steps between re-plans")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch-per-domain", type=int, default=4, help="windows per domain per step")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=2e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for matrix products (weights stay f32)")
    ap.add_argument("--threads", type=int, default=2, help="BLAS threads (matrix products)")
    ap.add_argument("--torch-threads", type=int, default=1, help="torch's own threads (see threads.py)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--load-every", type=int, default=50, help="steps between expert-load histograms")
    ap.add_argument("--eval-every", type=int, default=200, help="steps between validation losses")
    ap.add_argument("--val-tokens", type=int, default=8192, help="validation tokens per domain")
    ap.add_argument("--test-tokens", type=int, default=32768, help="test tokens per domain for test_loss.json")
    ap.add_argument("--slice-tokens", type=int, default=512, help="the small fixed test slice in test_loss.json")
    ap.add_argument("--eval-text-dir", default="", help="also write the test texts here (for moewb eval)")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--stop-after", type=int, default=0,
                    help="interrupt at this step (checkpoint, no export); --resume continues the same schedule")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ap.add_argument("--export-only", action="store_true", help="with --resume: export the checkpoint, no training")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.export_only and not a.resume:
        ap.error("--export-only needs --resume")
    if not a.steps and not a.minutes:
        ap.error("give --steps, --minutes or both")
    return a


def lr_at(step, total, warmup, lr, min_lr):
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


def make_optimizer(net, a):
    decay = [p for n, p in net.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in net.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=a.lr, betas=(0.9, 0.95), eps=1e-8)


class Log:
    def __init__(self, path, quiet):
        self.path, self.quiet = path, quiet

    def truncate_after(self, step):
        """On resume: drop records written after the checkpoint (they will be written again)."""
        if not os.path.exists(self.path):
            return
        with open(self.path, encoding="utf-8") as f:
            keep = [ln for ln in f if json.loads(ln).get("step", 0) <= step]
        with open(self.path, "w", encoding="utf-8") as f:
            f.writelines(keep)

    def write(self, record):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def say(self, *x):
        if not self.quiet:
            print(*x, file=sys.stderr, flush=True)


def save_checkpoint(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def validation_losses(net, streams, max_tokens):
    was = net.training
    net.eval()
    out = {}
    for d in streams.domains:
        x = streams.validation_windows(d, max_tokens)
        if x is None:
            continue
        total, n = 0.0, 0
        for b in range(0, x.shape[0], 8):
            xb = x[b:b + 8]
            logits, _ = net(xb[:, :-1])
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), xb[:, 1:].reshape(-1),
                                     reduction="sum").item()
            n += xb[:, 1:].numel()
        out[d] = total / n
    net.train(was)
    return out


def load_shape(path, vocab_size, seq_len):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    d = {k: v for k, v in d.items() if not k.startswith("_")}  # "_comment" keys
    d["vocab_size"] = vocab_size
    d.setdefault("max_position_embeddings", seq_len)
    return DeepseekShape.from_dict(d)


class Progress:
    """What a checkpoint saves besides the model and optimizer."""

    def __init__(self, planned):
        self.step, self.elapsed, self.tokens_seen, self.planned = 0, 0.0, 0, planned


def main(argv=None):
    a = parse_args(argv)
    threads = set_threads(a.threads, a.torch_threads)
    os.makedirs(a.out, exist_ok=True)
    log = Log(os.path.join(a.out, "log.jsonl"), a.quiet)
    ckpt_path = os.path.join(a.out, "checkpoint.pt")
    tok_json = os.path.join(a.tokenizer, "tokenizer.json")
    encoder = Encoder(tok_json)
    corpora = Corpora(a.datasets, a.gsm8k, [d for d in a.domains.split(",") if d] or None)
    shape = load_shape(a.shape, encoder.vocab_size, a.seq_len)

    random.seed(a.seed)
    np.random.seed(a.seed)
    torch.manual_seed(a.seed)
    net = DeepseekForCausalLM(shape)
    opt = make_optimizer(net, a)
    rng = np.random.default_rng(a.seed)
    run = Progress(a.steps)
    if a.resume:
        ck = torch.load(ckpt_path)
        if ck["shape"] != shape.to_dict():
            raise SystemExit(f"{ckpt_path}: the checkpoint's shape {ck['shape']} differs from {a.shape}")
        for k in RESUME_FIXED:
            if ck["args"][k] != getattr(a, k):
                raise SystemExit(f"{ckpt_path}: --{k.replace('_', '-')} was {ck['args'][k]!r}, now {getattr(a, k)!r}")
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        run.step, run.elapsed, run.tokens_seen = ck["step"], ck["elapsed"], ck["tokens_seen"]
        run.planned = a.steps or ck["planned_steps"]
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"])
        random.setstate(ck["python_rng"])
        if not a.export_only:
            log.truncate_after(run.step)
            log.write({"type": "resume", "step": run.step, "time": round(run.elapsed, 2)})
        log.say(f"resumed at step {run.step} ({run.elapsed / 60:.1f} min trained)")

    def checkpoint():
        save_checkpoint(ckpt_path, {
            "model": net.state_dict(), "optimizer": opt.state_dict(), "step": run.step, "elapsed": run.elapsed,
            "tokens_seen": run.tokens_seen, "planned_steps": run.planned, "shape": shape.to_dict(),
            "args": vars(a), "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate()})
        log.write({"type": "checkpoint", "step": run.step, "time": round(run.elapsed, 1)})

    if not a.export_only:
        streams = TokenStreams(encoder, tok_json, corpora, os.path.join(a.out, "tokens"), a.seq_len, log.say)
        tokens_per_step = len(streams.domains) * a.batch_per_domain * a.seq_len
        n_params = sum(p.numel() for p in net.parameters())
        if run.step == 0:
            log.write({"type": "start", "step": 0, "shape": shape.to_dict(), "parameters": n_params,
                       "domains": streams.domains, "tokens_per_step": tokens_per_step,
                       "train_tokens": {d: int(len(s)) for d, s in streams.train.items()},
                       "args": vars(a), "torch": torch.__version__, "threads": threads})
        log.say(f"{n_params / 1e6:.2f} M parameters, {len(streams.domains)} domains, "
                f"{tokens_per_step} tokens per step")
        stopped = train_loop(a, net, opt, rng, streams, log, checkpoint, run)
        checkpoint()
        if stopped == "stop-after":
            return
    if a.export:
        export_and_test(a, net, encoder, corpora, log, run.step)


def train_loop(a, net, opt, rng, streams, log, checkpoint, run):
    D, B = len(streams.domains), a.batch_per_domain
    budget = a.minutes * 60 if a.minutes else float("inf")
    net.train()
    acc = {"loss": torch.zeros(D), "aux": 0.0, "n": 0, "tokens": 0, "time": 0.0}
    loads, load_steps = {}, 0
    last_ckpt = time.time()
    step_times = []
    val_time = 0.0
    if run.step == 0:
        t = time.time()
        val = validation_losses(net, streams, a.val_tokens)
        val_time = time.time() - t
        log.write({"type": "validation", "step": 0, "time": 0.0, "loss_by_domain": val})
    while True:
        if run.planned and run.step >= run.planned:
            reason = "steps"
            break
        if run.elapsed >= budget:
            reason = "minutes"
            break
        if a.stop_after and run.step >= a.stop_after:
            reason = "stop-after"
            break
        t0 = time.time()
        if run.planned:
            lr = lr_at(run.step, run.planned, a.warmup, a.lr, a.min_lr)
        else:  # until the schedule is planned (step 30): warmup
            lr = a.lr * min(1.0, (run.step + 1) / a.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        x = streams.batch(rng, B)  # [D·B, T+1]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            logits, aux = net(x[:, :-1])
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                             reduction="none").view(D, -1)  # [D, B·T]
        loss = ce.mean() + aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), a.grad_clip)
        opt.step()
        run.step += 1
        dt = time.time() - t0
        run.elapsed += dt
        run.tokens_seen += x[:, 1:].numel()
        acc["loss"] += ce.detach().mean(dim=1)
        acc["aux"] += float(aux)
        acc["n"] += 1
        acc["tokens"] += x[:, 1:].numel()
        acc["time"] += dt
        for layer, c in net.expert_counts().items():
            loads[layer] = loads.get(layer, 0) + c
        load_steps += 1
        step_times.append(dt)
        if not a.steps and len(step_times) >= 30 and len(step_times) % a.replan_every == 30 % a.replan_every:
            # No --steps: the schedule's length is the rest of the budget at the measured speed
            # (the last 200 steps, less validations), re-planned as the speed changes (the
            # machine may be shared). Not bit-reproducible; --steps is.
            per_step = float(np.mean(step_times[10:][-200:]))
            remaining = budget - run.elapsed
            n_val = 1 + remaining / per_step / a.eval_every
            run.planned = run.step + max(1, int(max(0.0, remaining - n_val * val_time) / per_step * 0.98))
            log.write({"type": "plan", "step": run.step, "planned_steps": run.planned, "seconds_per_step": per_step})
            log.say(f"planned {run.planned} steps ({per_step:.2f} s/step)")
        if run.step % a.log_every == 0:
            by_domain = (acc["loss"] / acc["n"]).tolist()
            rec = {"type": "train", "step": run.step, "steps": acc["n"], "time": round(run.elapsed, 2), "lr": lr,
                   "loss": sum(by_domain) / D,
                   "loss_by_domain": dict(zip(streams.domains, by_domain)),
                   "balance_loss": acc["aux"] / acc["n"],
                   "tokens_per_s": acc["tokens"] / acc["time"], "tokens": run.tokens_seen}
            log.write(rec)
            log.say(f"step {run.step}: loss {rec['loss']:.4f} balance {rec['balance_loss']:.5f} lr {lr:.2e} "
                    f"{rec['tokens_per_s']:.0f} tok/s, {run.elapsed / 60:.1f} min")
            acc = {"loss": torch.zeros(D), "aux": 0.0, "n": 0, "tokens": 0, "time": 0.0}
        if run.step % a.load_every == 0:
            log.write({"type": "expert_load", "step": run.step, "steps": load_steps,
                       "counts": {str(k): v.tolist() for k, v in loads.items()}})
            loads, load_steps = {}, 0
        if run.step % a.eval_every == 0:
            t = time.time()
            val = validation_losses(net, streams, a.val_tokens)
            val_time = time.time() - t
            run.elapsed += val_time
            log.write({"type": "validation", "step": run.step, "time": round(run.elapsed, 2), "loss_by_domain": val})
            log.say("validation " + ", ".join(f"{d} {v:.3f}" for d, v in val.items()))
        if time.time() - last_ckpt >= a.checkpoint_minutes * 60:
            checkpoint()
            last_ckpt = time.time()
    if run.step % a.eval_every != 0:
        val = validation_losses(net, streams, a.val_tokens)
        log.write({"type": "validation", "step": run.step, "time": round(run.elapsed, 2), "loss_by_domain": val})
    log.write({"type": "end", "step": run.step, "time": round(run.elapsed, 2), "reason": reason,
               "tokens": run.tokens_seen})
    log.say(f"stopped at step {run.step} ({reason}), {run.tokens_seen} tokens, {run.elapsed / 60:.1f} min")
    return reason


def export_and_test(a, net, encoder, corpora, log, step):
    export_model(net, a.export, a.tokenizer, encoder.bos_id, encoder.eos_id)
    exported = load_exported(a.export)  # the BF16 weights as written, read back
    result = {
        "about": "Test loss (nats per predicted token) of the exported BF16 weights, computed by "
                 "tools/train/train.py (tools/train/evaluate.py): per domain, the first test documents "
                 "joined by blank lines until at least max_tokens tokens, encoded with BOS, in windows of "
                 "`context` tokens. `moewb eval --model DIR --text FILE --context N` reproduces it.",
        "step": step, "context": a.seq_len,
        "test": {"max_tokens": a.test_tokens,
                 "domains": domain_test_losses(exported, encoder, corpora, "test", a.test_tokens, a.seq_len,
                                               a.eval_text_dir or None)},
        "slice": {"max_tokens": a.slice_tokens,
                  "domains": domain_test_losses(exported, encoder, corpora, "test", a.slice_tokens, a.seq_len)},
    }
    with open(os.path.join(a.export, "test_loss.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    test = result["test"]["domains"]
    log.write({"type": "test", "step": step, "loss_by_domain": {d: r["loss"] for d, r in test.items()}})
    log.say("exported to " + a.export + "; test " +
            ", ".join(f"{d} {r['loss']:.3f}" for d, r in result["test"]["domains"].items()))


if __name__ == "__main__":
    main()
