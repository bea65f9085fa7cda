"""The training corpora as the training tools see them: domains and their train / validation /
test documents, read through tools/corpora/corpus.py (the corpus format's one reader:
datasets/<domain>/{train,validation,test}.jsonl of {"id", "text"}, plus `gsm8k` from beside the
checkout when present). This adds only the choice of a subset of domains and materialised lists.
"""

import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "corpora"))
from corpus import SPLITS, Corpus  # noqa: E402,F401

DEFAULT_DATASETS = os.path.join(REPO, "datasets")
DEFAULT_GSM8K = None  # corpus.py's default: $MOE_GSM8K_DIR, else ../shared/datasets/gsm8k


class Corpora:
    """Domains in corpus.py's order (the manifest's, then gsm8k); documents as lists."""

    def __init__(self, datasets_dir=DEFAULT_DATASETS, gsm8k_dir=DEFAULT_GSM8K, only=None):
        # gsm8k_dir "" leaves GSM8K out, None takes corpus.py's default location.
        self.corpus = Corpus(datasets_dir=datasets_dir, gsm8k_dir=gsm8k_dir)
        names = self.corpus.domains()
        if only:
            missing = [d for d in only if d not in names]
            if missing:
                raise ValueError(f"domain(s) {missing} not found (have {names})")
            names = [d for d in names if d in only]
        if not names:
            raise ValueError(f"no domains in {self.corpus.datasets_dir} (and no GSM8K)")
        self.domains = names

    def documents(self, domain, split):
        return list(self.corpus.documents(domain, split))
