#!/usr/bin/python3
"""Specialisation of a training checkpoint, without exporting it: for each domain's test text
(the files --eval-text-dir wrote) the first --tokens tokens run through the checkpoint in
windows of --context, and for each MoE layer the expert the domain selects most, with its
ratio to uniform routing (fraction of the domain's tokens that select it ÷ k/E) — the
model card's specialisation measure, here in PyTorch on the f32 weights, to watch a run.

  /usr/bin/python3 tools/train/probe_routing.py --checkpoint build/train/run/checkpoint.pt \\
      --shape tools/train/shapes/default.json --tokenizer build/train/tokenizer \\
      --texts build/train/test-texts
"""

import argparse
import glob
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from byte_level_bpe import Encoder  # noqa: E402
from model import DeepseekForCausalLM  # noqa: E402
from train import load_shape  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--shape", required=True)
    ap.add_argument("--tokenizer", required=True, help="directory with tokenizer.json")
    ap.add_argument("--texts", required=True, help="directory of <domain>.test.txt files")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    enc = Encoder(os.path.join(a.tokenizer, "tokenizer.json"))
    shape = load_shape(a.shape, enc.vocab_size, a.context)
    ck = torch.load(a.checkpoint, map_location="cpu")
    net = DeepseekForCausalLM(shape)
    net.load_state_dict(ck["model"])
    net.eval()
    moes = [m for m in net.modules() if hasattr(m, "last_counts")]
    uniform = shape.num_experts_per_tok / shape.n_routed_experts
    print(f"step {ck['step']}: top routed expert per domain and MoE layer, × uniform ({shape.num_experts_per_tok}/"
          f"{shape.n_routed_experts})")
    for path in sorted(glob.glob(os.path.join(a.texts, "*.test.txt"))):
        with open(path, encoding="utf-8") as f:
            ids = enc.encode(f.read())[:a.tokens]
        totals = [torch.zeros(shape.n_routed_experts) for _ in moes]
        with torch.no_grad():
            for s in range(0, len(ids), a.context):
                net(torch.tensor([ids[s:s + a.context]]))
                for i, m in enumerate(moes):
                    totals[i] += m.last_counts.float()
        name = os.path.basename(path).split(".")[0]
        cells = [f"#{int(t.argmax())} {float(t.max()) / len(ids) / uniform:.1f}×" for t in totals]
        print(f"{name:10s} " + "  ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
