#!/usr/bin/python3
"""Trains the embedded model's byte-level BPE tokenizer and writes it as a Hugging Face
tokenizer.json + tokenizer_config.json that the engine reads like DeepSeek's own.

The pre-tokenizer is DeepSeek LLM's, copied verbatim from its tokenizer.json (model-spec.md §2);
BPE is the classic byte-level algorithm (Sennrich et al. 2016, GPT-2's byte alphabet): start from
the 256 byte tokens, repeatedly merge the most frequent adjacent pair inside pre-tokenized pieces.
The sample is domain-balanced: up to --sample-mb of train-split text per domain, and a smaller
domain's piece counts are multiplied (integer factor) so every domain weighs about the same.
Ids: 0..255 the bytes (in byte order), then merged tokens in merge order, then BOS and EOS as
the last two ids (as DeepSeek's 100000 / 100001 follow its vocabulary). Deterministic.

  /usr/bin/python3 tools/train/train_tokenizer.py --out build/train/tokenizer [--vocab-size 6000]
"""

import argparse
import heapq
import json
import os
import random
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from byte_level_bpe import (BOS_TOKEN, BYTE_TO_CHAR, EOS_TOKEN, PreTokenizer,  # noqa: E402
                            load_deepseek_llm_pre_tokenizer)
from domains import DEFAULT_DATASETS, DEFAULT_GSM8K, Corpora  # noqa: E402

N_SPECIAL = 2

# deepseek-moe-16b-chat's chat template (its tokenizer_config.json), unchanged.
CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
    "{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")


def sample_documents(corpora, domain, max_bytes, seed):
    """Train documents of one domain in a seeded order, up to max_bytes of UTF-8."""
    docs = corpora.documents(domain, "train")
    order = list(range(len(docs)))
    random.Random(f"{seed}:{domain}").shuffle(order)
    out, total = [], 0
    for i in order:
        if total >= max_bytes:
            break
        t = docs[i]["text"]
        out.append(t)
        total += len(t.encode("utf-8"))
    return out, total


def count_pieces(texts, pre):
    counts = Counter()
    for t in texts:
        counts.update(pre(t))
    return counts


def train_bpe(word_counts, n_merges_max, vocab_target, min_frequency=2, progress=None):
    """word_counts: {piece (byte-level str): weight}. Returns (vocab {token: id}, merges [(a, b)]).

    Tie rule: among pairs of equal count, the lexicographically smallest (left string, right
    string) merges first. A merge whose result already exists as a token reuses its id."""
    tokens = [BYTE_TO_CHAR[b] for b in range(256)]
    token_id = {t: i for i, t in enumerate(tokens)}
    words, weights = [], []
    for w, c in word_counts.items():
        words.append([token_id[ch] for ch in w])
        weights.append(c)
    pair_counts = Counter()
    where = {}
    for wi, syms in enumerate(words):
        c = weights[wi]
        for p in zip(syms, syms[1:]):
            pair_counts[p] += c
            where.setdefault(p, set()).add(wi)
    heap = [(-c, tokens[a], tokens[b], a, b) for (a, b), c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(tokens) < vocab_target and len(merges) < n_merges_max and heap:
        negc, _, _, a, b = heapq.heappop(heap)
        c = pair_counts.get((a, b), 0)
        if c != -negc:
            continue  # stale entry; a fresh one was pushed when the count changed
        if c < min_frequency:
            break
        s = tokens[a] + tokens[b]
        new = token_id.get(s)
        if new is None:
            new = len(tokens)
            tokens.append(s)
            token_id[s] = new
        merges.append((tokens[a], tokens[b]))
        changed = set()
        for wi in sorted(where.pop((a, b), ())):
            syms = words[wi]
            wc = weights[wi]
            if len(syms) < 2:
                continue
            # Remove the word's pairs, merge left to right, add its pairs back.
            for p in zip(syms, syms[1:]):
                pair_counts[p] -= wc
                changed.add(p)
            out, i, n = [], 0, len(syms)
            while i < n:
                if i + 1 < n and syms[i] == a and syms[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[wi] = out
            for p in zip(out, out[1:]):
                pair_counts[p] += wc
                changed.add(p)
                where.setdefault(p, set()).add(wi)
        pair_counts.pop((a, b), None)
        for p in changed:
            c2 = pair_counts.get(p, 0)
            if c2 <= 0:
                pair_counts.pop(p, None)
                where.pop(p, None)
            elif p != (a, b):
                heapq.heappush(heap, (-c2, tokens[p[0]], tokens[p[1]], p[0], p[1]))
        if progress and len(merges) % 500 == 0:
            progress(len(merges), len(tokens), c)
    return {t: i for i, t in enumerate(tokens)}, merges


def added_token(content, id_):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": False, "special": True}


def tokenizer_json(vocab, merges, pre_tokenizer):
    bos_id, eos_id = len(vocab), len(vocab) + 1
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added_token(BOS_TOKEN, bos_id), added_token(EOS_TOKEN, eos_id)],
        "normalizer": {"type": "Sequence", "normalizers": []},
        "pre_tokenizer": pre_tokenizer,
        # BOS first, as transformers' LlamaTokenizerFast (DeepSeek's tokenizer class) builds it
        # from add_bos_token; tokenizer_config.json says the same for readers that use it.
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS_TOKEN, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": BOS_TOKEN, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": BOS_TOKEN, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {BOS_TOKEN: {"id": BOS_TOKEN, "ids": [bos_id], "tokens": [BOS_TOKEN]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }


def tokenizer_config(model_max_length):
    def tok(content):
        return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
                "rstrip": False, "single_word": False}
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": tok(BOS_TOKEN),
        "eos_token": tok(EOS_TOKEN),
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
        "tokenizer_class": "LlamaTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output directory (tokenizer.json, tokenizer_config.json)")
    ap.add_argument("--vocab-size", type=int, default=6000, help="ids in all, the 2 special tokens included")
    ap.add_argument("--sample-mb", type=float, default=1.0, help="train-split text per domain (MB)")
    ap.add_argument("--datasets", default=DEFAULT_DATASETS)
    ap.add_argument("--gsm8k", default=DEFAULT_GSM8K, help="GSM8K directory ('' for none; default: corpus.py's)")
    ap.add_argument("--domains", default="", help="comma-separated subset of domains")
    ap.add_argument("--model-max-length", type=int, default=256, help="tokenizer_config.json model_max_length")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.vocab_size < 256 + N_SPECIAL + 1:
        ap.error(f"--vocab-size must be at least {256 + N_SPECIAL + 1}")
    log = (lambda *x: None) if a.quiet else (lambda *x: print(*x, file=sys.stderr, flush=True))
    t0 = time.time()
    corpora = Corpora(a.datasets, a.gsm8k, [d for d in a.domains.split(",") if d] or None)
    spec = load_deepseek_llm_pre_tokenizer()
    pre = PreTokenizer(spec)
    max_bytes = int(a.sample_mb * 1e6)
    per_domain = {}
    for d in corpora.domains:
        texts, nbytes = sample_documents(corpora, d, max_bytes, a.seed)
        per_domain[d] = (count_pieces(texts, pre), nbytes)
    largest = max(n for _, n in per_domain.values())
    counts = Counter()
    for d, (c, nbytes) in per_domain.items():
        factor = max(1, round(largest / max(nbytes, 1)))
        log(f"{d}: {nbytes / 1e6:.2f} MB sampled, {len(c)} distinct pieces, weight x{factor}")
        for w, n in c.items():
            counts[w] += n * factor
    log(f"{len(counts)} distinct pieces, pre-tokenized in {time.time() - t0:.1f} s")
    target = a.vocab_size - N_SPECIAL
    vocab, merges = train_bpe(counts, target - 256 + 100000, target,
                              progress=lambda m, v, c: log(f"  {m} merges, {v} tokens, last count {c}"))
    if len(vocab) < target:
        log(f"warning: the sample supports only {len(vocab)} tokens (< {target}); vocabulary is smaller")
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(vocab, merges, spec), f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(a.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config(a.model_max_length), f, ensure_ascii=False, indent=2)
        f.write("\n")
    log(f"wrote {a.out}: {len(vocab)} tokens + {N_SPECIAL} special, {len(merges)} merges, "
        f"{time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
