"""Byte-level BPE in Python: the DeepSeek LLM pre-tokenizer and a tokenizer.json encoder.

Matches Hugging Face tokenizers (and the C++ engine, engine/tokenizer.h) on tokenizer.json files
whose pre-tokenizer is the DeepSeek LLM one (model-spec.md §2): Isolated regex Splits, Digits with
individual digits, ByteLevel without prefix space or regex; BPE merges applied by rank. Not a
general tokenizer.json reader: other components are refused. Used by the trainer
(train_tokenizer.py) and to tokenize the corpora for training (train.py).
"""

import json
import os
import re
import unicodedata

# The pre-tokenizer is copied verbatim from DeepSeek's published tokenizer (the regexes in
# model-spec.md §2 were Unicode-normalised in transit; this file is the source of truth).
DEEPSEEK_LLM_TOKENIZER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                      "fixtures", "tokenizers", "deepseek-llm", "tokenizer.json")

BOS_TOKEN = "<｜begin▁of▁sentence｜>"  # U+FF5C bars, U+2581 spaces, as DeepSeek's
EOS_TOKEN = "<｜end▁of▁sentence｜>"

# Oniguruma's \s (HF tokenizers' regex engine) is the Unicode White_Space property; Python's \s
# also matches U+001C..U+001F, so the class is spelled out.
_WHITE_SPACE = "[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def load_deepseek_llm_pre_tokenizer():
    """The `pre_tokenizer` object of DeepSeek LLM's tokenizer.json, unchanged."""
    with open(DEEPSEEK_LLM_TOKENIZER, encoding="utf-8") as f:
        return json.load(f)["pre_tokenizer"]


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (the ByteLevel pre-tokenizer's alphabet)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def _translate_onig(pattern):
    """Oniguruma pattern -> Python `re` pattern for the constructs DeepSeek LLM uses."""
    if "\\p" in pattern or "\\P" in pattern or "\\S" in pattern:
        raise ValueError(f"pattern /{pattern}/ uses a construct this encoder does not translate")
    return pattern.replace("\\s", _WHITE_SPACE)


def _is_numeric(ch):
    # Rust's char::is_numeric (HF's Digits pre-tokenizer): general category Nd, Nl or No.
    return unicodedata.category(ch)[0] == "N"


class PreTokenizer:
    """A Sequence of Split (Isolated) / Digits (individual) / ByteLevel steps, as HF runs them."""

    def __init__(self, spec):
        steps = spec["pretokenizers"] if spec.get("type") == "Sequence" else [spec]
        self.steps = []
        self.byte_level = False
        for s in steps:
            t = s["type"]
            if t == "Split":
                if s.get("behavior") != "Isolated" or s.get("invert", False) or "Regex" not in s["pattern"]:
                    raise ValueError(f"Split {s} is not supported (Isolated regex splits only)")
                # Oniguruma's Ruby syntax: ^ and $ are line anchors.
                self.steps.append(("regex", re.compile(_translate_onig(s["pattern"]["Regex"]), re.MULTILINE)))
            elif t == "Digits":
                if not s.get("individual_digits", False):
                    raise ValueError("Digits without individual_digits is not supported")
                self.steps.append(("digits", None))
            elif t == "ByteLevel":
                if s.get("add_prefix_space", False) or s.get("use_regex", True):
                    raise ValueError("ByteLevel with add_prefix_space or use_regex is not supported")
                self.byte_level = True
            else:
                raise ValueError(f"pre-tokenizer {t} is not supported")
        if not self.byte_level:
            raise ValueError("the pre-tokenizer must end with ByteLevel")

    @staticmethod
    def _isolate(piece, spans):
        out, last = [], 0
        for a, b in spans:
            if a > last:
                out.append(piece[last:a])
            out.append(piece[a:b])
            last = b
        if last < len(piece):
            out.append(piece[last:])
        return out

    def split(self, text):
        """Text -> pieces (str), before the byte-level mapping."""
        pieces = [text] if text else []
        for kind, rx in self.steps:
            nxt = []
            for p in pieces:
                if kind == "regex":
                    spans = [m.span() for m in rx.finditer(p)]
                else:
                    spans = [(i, i + 1) for i, ch in enumerate(p) if _is_numeric(ch)]
                nxt.extend(self._isolate(p, spans) if spans else [p])
            pieces = nxt
        return pieces

    def __call__(self, text):
        """Text -> pieces in the byte-level alphabet (what BPE runs on)."""
        return ["".join(BYTE_TO_CHAR[b] for b in p.encode("utf-8")) for p in self.split(text)]


def bpe_word(word, ranks, cache=None):
    """Applies merges by rank (lowest first, leftmost first among equals) to one piece."""
    if cache is not None:
        hit = cache.get(word)
        if hit is not None:
            return hit
    parts = list(word)
    while len(parts) > 1:
        best, best_rank = None, None
        for i in range(len(parts) - 1):
            r = ranks.get((parts[i], parts[i + 1]))
            if r is not None and (best_rank is None or r < best_rank):
                best, best_rank = (parts[i], parts[i + 1]), r
        if best is None:
            break
        merged, i = [], 0
        while i < len(parts):
            if i + 1 < len(parts) and parts[i] == best[0] and parts[i + 1] == best[1]:
                merged.append(parts[i] + parts[i + 1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    if cache is not None and len(word) < 256:
        cache[word] = parts
    return parts


class Encoder:
    """Encodes text with a byte-level BPE tokenizer.json (+ tokenizer_config.json beside it)."""

    def __init__(self, tokenizer_json_path):
        with open(tokenizer_json_path, encoding="utf-8") as f:
            tj = json.load(f)
        model = tj["model"]
        if model.get("type") != "BPE":
            raise ValueError(f"{tokenizer_json_path}: model type {model.get('type')} is not BPE")
        if tj.get("normalizer") not in (None, {"type": "Sequence", "normalizers": []}):
            raise ValueError(f"{tokenizer_json_path}: normalizers are not supported")
        self.vocab = model["vocab"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.pre = PreTokenizer(tj["pre_tokenizer"])
        self.added = {t["content"]: t["id"] for t in tj.get("added_tokens", [])}
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.id_to_token.update({i: t for t, i in self.added.items()})
        self.vocab_size = 1 + max(self.id_to_token)
        cfg_path = os.path.join(os.path.dirname(tokenizer_json_path), "tokenizer_config.json")
        cfg = {}
        if os.path.exists(cfg_path):
            with open(cfg_path, encoding="utf-8") as f:
                cfg = json.load(f)

        def token_of(v):
            return v.get("content") if isinstance(v, dict) else v

        self.bos_id = self.added.get(token_of(cfg.get("bos_token")))
        self.eos_id = self.added.get(token_of(cfg.get("eos_token")))
        self.add_bos = bool(cfg.get("add_bos_token", False))
        self.add_eos = bool(cfg.get("add_eos_token", False))
        if self.added:
            alts = sorted(self.added, key=len, reverse=True)  # longest first: leftmost-longest
            self._added_rx = re.compile("|".join(re.escape(a) for a in alts))
        else:
            self._added_rx = None
        self._cache = {}

    def _encode_plain(self, text, out):
        for piece in self.pre(text):
            for tok in bpe_word(piece, self.ranks, self._cache):
                out.append(self.vocab[tok])

    def encode(self, text, add_special=True):
        ids = []
        if add_special and self.add_bos:
            ids.append(self.bos_id)
        last = 0
        if self._added_rx is not None:
            for m in self._added_rx.finditer(text):
                self._encode_plain(text[last:m.start()], ids)
                ids.append(self.added[m.group(0)])
                last = m.end()
        self._encode_plain(text[last:], ids)
        if add_special and self.add_eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            t = self.id_to_token[i]
            if t in self.added:
                out += t.encode("utf-8")
            else:
                out += bytes(CHAR_TO_BYTE[c] for c in t)
        return out.decode("utf-8", errors="replace")
