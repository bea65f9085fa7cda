"""Loss of a token sequence the way the engine computes it (engine/evaluate.h, `moewb eval`):
the ids are cut into windows of `context` tokens, each window starts fresh and predicts its
tokens after the first; a last window of one token predicts nothing. Mean NLL in nats.

And the test-loss protocol whose numbers the engine must reproduce within 0.5 %: for a domain,
text = "\n\n".join(the first n test documents, in file order), n the smallest count whose text
has at least `max_tokens` tokens (or all documents); ids = the tokenizer's encoding of the text
with BOS (add_bos_token); windows of `context`. So `moewb eval --model DIR --text FILE
--context N` on the same text gives the same number up to f32 rounding.
"""

import hashlib
import math
import os

import torch
import torch.nn.functional as F


@torch.no_grad()
def window_loss(net, ids, context, batch=8):
    """(total NLL, predicted tokens) of ids under the engine's windowing. f32, eval mode."""
    was_training = net.training
    net.eval()
    windows = [ids[s:s + context] for s in range(0, len(ids), context)]
    windows = [w for w in windows if len(w) >= 2]
    total, n = 0.0, 0
    by_len = {}
    for w in windows:
        by_len.setdefault(len(w), []).append(w)
    for length, ws in sorted(by_len.items()):
        for b in range(0, len(ws), batch):
            x = torch.tensor(ws[b:b + batch], dtype=torch.long)  # [B, T]
            logits, _ = net(x)
            nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).double(),
                                  x[:, 1:].reshape(-1), reduction="sum")
            total += nll.item()
            n += x.shape[0] * (length - 1)
    net.train(was_training)
    return total, n


def test_text(encoder, docs, max_tokens):
    """(text, ids, n_docs) of the protocol above."""
    sep = len(encoder.encode("\n\n", add_special=False))
    count, n = (1 if encoder.add_bos else 0), 0
    for n, d in enumerate(docs, 1):
        count += len(encoder.encode(d["text"], add_special=False)) + (sep if n > 1 else 0)
        if count >= max_tokens:
            break
    text = "\n\n".join(d["text"] for d in docs[:n])
    return text, encoder.encode(text), n


def domain_test_losses(net, encoder, corpora, split, max_tokens, context, text_dir=None):
    """{domain: {...}} of the protocol on `split`; optionally writes each text to
    text_dir/<domain>.<split>.txt for the engine."""
    out = {}
    for d in corpora.domains:
        text, ids, n_docs = test_text(encoder, corpora.documents(d, split), max_tokens)
        total, predicted = window_loss(net, ids, context)
        loss = total / max(predicted, 1)
        out[d] = {"loss": loss, "perplexity": math.exp(loss), "tokens": len(ids), "predicted": predicted,
                  "documents": n_docs, "text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
        if text_dir:
            os.makedirs(text_dir, exist_ok=True)
            with open(os.path.join(text_dir, f"{d}.{split}.txt"), "w", encoding="utf-8") as f:
                f.write(text)
    return out
