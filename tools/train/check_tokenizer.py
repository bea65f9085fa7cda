#!/usr/bin/python3
"""Checks that the C++ engine's tokenizer (`moewb tokenize`) gives the same ids as this
directory's Python encoder (byte_level_bpe.py) on documents of every domain, with BOS as the
tokenizer config says. The Python encoder is what tokenizes the corpora for training, so any
difference would mean the engine sees other ids than the model was trained on.

Also useful on DeepSeek's own tokenizer (checks the Python pre-tokenizer against the engine's):
  /usr/bin/python3 tools/train/check_tokenizer.py --tokenizer tests/fixtures/tokenizers/deepseek-llm/tokenizer.json
Exit status 0 when every document matches, 1 otherwise.
"""

import argparse
import json
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from byte_level_bpe import Encoder  # noqa: E402
from domains import DEFAULT_DATASETS, DEFAULT_GSM8K, REPO, SPLITS, Corpora  # noqa: E402


def engine_ids(moewb, tokenizer_json, text):
    r = subprocess.run([moewb, "tokenize", "--tokenizer", tokenizer_json], input=text.encode("utf-8"),
                       capture_output=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"moewb tokenize failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return json.loads(r.stdout)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json (tokenizer_config.json beside it)")
    ap.add_argument("--moewb", default=os.path.join(REPO, "build", "app", "moewb"))
    ap.add_argument("--datasets", default=DEFAULT_DATASETS)
    ap.add_argument("--gsm8k", default=DEFAULT_GSM8K, help="GSM8K directory ('' for none)")
    ap.add_argument("--docs-per-domain", type=int, default=20, help="documents per domain and split")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    enc = Encoder(a.tokenizer)
    corpora = Corpora(a.datasets, a.gsm8k)
    failures = total = tokens = 0
    for d in corpora.domains:
        for split in SPLITS:
            docs = corpora.documents(d, split)
            pick = random.Random(f"{a.seed}:{d}:{split}").sample(range(len(docs)), min(a.docs_per_domain, len(docs)))
            # One concatenated text per split as well: boundaries between documents.
            texts = [docs[i]["text"] for i in pick]
            texts.append("\n\n".join(texts[:5]))
            for t in texts:
                py = enc.encode(t)
                cc = engine_ids(a.moewb, a.tokenizer, t)
                total += 1
                tokens += len(py)
                if py != cc:
                    failures += 1
                    k = next((i for i, (x, y) in enumerate(zip(py, cc)) if x != y), min(len(py), len(cc)))
                    print(f"MISMATCH {d}/{split}: first difference at token {k}: python {py[k:k + 8]} "
                          f"engine {cc[k:k + 8]} near {enc.decode(py[max(0, k - 4):k + 4])!r}")
    print(f"{total - failures}/{total} texts identical ({tokens} tokens, domains: {', '.join(corpora.domains)})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
