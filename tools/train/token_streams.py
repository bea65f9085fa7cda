"""Tokenized corpora for training: per domain and split, one stream of ids made of every
document as [BOS] + its tokens, concatenated in file order. Streams are cached as .npy files
keyed by the SHA-256 of the tokenizer.json and of the documents, so a resumed or repeated run
does not tokenize again.

Batches are domain-balanced: every step takes the same number of windows of seq_len + 1 tokens
from each domain, at uniformly random offsets of its train stream (numpy Generator, seeded and
saved in checkpoints).
"""

import hashlib
import os

import numpy as np
import torch


def _key(tokenizer_json, docs):
    h = hashlib.sha256()
    with open(tokenizer_json, "rb") as f:
        h.update(f.read())
    for d in docs:
        h.update(d["text"].encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def load_stream(encoder, tokenizer_json, corpora, domain, split, cache_dir, log=None):
    docs = corpora.documents(domain, split)
    path = os.path.join(cache_dir, f"{domain}.{split}.{_key(tokenizer_json, docs)}.npy")
    if os.path.exists(path):
        return np.load(path)
    ids = []
    for d in docs:
        ids.extend(encoder.encode(d["text"]))  # BOS first (add_bos_token)
    arr = np.asarray(ids, dtype=np.int32)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = path + ".tmp.npy"
    np.save(tmp, arr)
    os.replace(tmp, path)
    if log:
        log(f"tokenized {domain}/{split}: {len(docs)} documents, {len(arr)} tokens")
    return arr


class TokenStreams:
    def __init__(self, encoder, tokenizer_json, corpora, cache_dir, seq_len, log=None):
        self.domains = list(corpora.domains)
        self.seq_len = seq_len
        def load(split):
            return {d: load_stream(encoder, tokenizer_json, corpora, d, split, cache_dir, log) for d in self.domains}
        self.train = load("train")
        self.validation = load("validation")
        for d, s in self.train.items():
            if len(s) < seq_len + 2:
                raise ValueError(f"domain '{d}': train split has {len(s)} tokens, fewer than seq_len + 2")

    def batch(self, rng, per_domain):
        """x [D·per_domain, seq_len + 1] (torch.long), rows grouped by domain in self.domains order."""
        rows = []
        for d in self.domains:
            s = self.train[d]
            starts = rng.integers(0, len(s) - self.seq_len - 1, size=per_domain)
            rows.extend(s[a:a + self.seq_len + 1] for a in starts)
        return torch.from_numpy(np.stack(rows).astype(np.int64))

    def validation_windows(self, domain, max_tokens):
        """Consecutive windows of seq_len + 1 tokens from the start of the validation stream."""
        s = self.validation[domain]
        n = min(len(s) // (self.seq_len + 1), max(1, max_tokens // self.seq_len))
        if n == 0:
            return None
        return torch.from_numpy(s[:n * (self.seq_len + 1)].reshape(n, self.seq_len + 1).astype(np.int64))
