"""Read the text corpora: the committed domains under datasets/, any domain a researcher drops
there, and GSM8K from beside the checkout when it is present.

A domain is a directory datasets/<name>/ holding train.jsonl, validation.jsonl and test.jsonl,
one {"id": str, "text": str} object per line (UTF-8). GSM8K is never copied into the project:
it is read from ../shared/datasets/gsm8k (or the directory given / $MOE_GSM8K_DIR) and appears
as the `gsm8k` domain, text = question + "\\n" + answer, its test.jsonl as test and every 20th
problem of its train.jsonl (the first, the 21st, ...) as validation; ids are
gsm8k-<train|test>-<index of the problem in its file, from 0>. Everything works without it.
Standard library only.

    from corpus import Corpus
    corpus = Corpus()                      # repo root found from this file
    for domain in corpus.domains():
        for doc in corpus.documents(domain, "train"):
            doc["id"], doc["text"]
"""

import json
import os

SPLITS = ("train", "validation", "test")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GSM8K = "gsm8k"
GSM8K_DEFAULT = os.path.join("..", "shared", "datasets", "gsm8k")  # relative to the repo root
# Every 20th train problem (indices 0, 20, 40, ...) is validation: 5%, the same rule as
# tools/train/domains.py, so both readers see the same GSM8K splits.
GSM8K_VALIDATION_EVERY = 20


class CorpusError(ValueError):
    """A missing domain or split, or a malformed line (file and line number in the message)."""


class Corpus:
    def __init__(self, repo_root=None, datasets_dir=None, gsm8k_dir=None):
        """repo_root defaults to this checkout; datasets_dir to <repo_root>/datasets;
        gsm8k_dir to $MOE_GSM8K_DIR, else <repo_root>/../shared/datasets/gsm8k. Pass
        gsm8k_dir="" to leave GSM8K out."""
        self.repo_root = os.path.abspath(repo_root or REPO)
        self.datasets_dir = os.path.abspath(datasets_dir or
                                            os.path.join(self.repo_root, "datasets"))
        if gsm8k_dir is None:
            gsm8k_dir = os.environ.get("MOE_GSM8K_DIR") or \
                os.path.join(self.repo_root, GSM8K_DEFAULT)
        self.gsm8k_dir = os.path.abspath(gsm8k_dir) if gsm8k_dir else None

    # -- discovery ----------------------------------------------------------------------

    def manifest(self):
        """datasets/manifest.json, or None for a datasets directory without one."""
        path = os.path.join(self.datasets_dir, "manifest.json")
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def has_gsm8k(self):
        return bool(self.gsm8k_dir) and all(
            os.path.isfile(os.path.join(self.gsm8k_dir, f"{s}.jsonl")) for s in ("train", "test"))

    def local_domains(self):
        """Domains under datasets/: the manifest's, in its order, then any other directory
        with all three split files, by name."""
        manifest = self.manifest()
        listed = [d["name"] for d in manifest["domains"]] if manifest else []
        others = []
        if os.path.isdir(self.datasets_dir):
            for name in sorted(os.listdir(self.datasets_dir)):
                d = os.path.join(self.datasets_dir, name)
                if name not in listed and all(
                        os.path.isfile(os.path.join(d, f"{s}.jsonl")) for s in SPLITS):
                    others.append(name)
        return listed + others

    def domains(self):
        """All domain names; `gsm8k` last, when its directory is present."""
        names = self.local_domains()
        if self.has_gsm8k() and GSM8K not in names:
            names.append(GSM8K)
        return names

    # -- reading ------------------------------------------------------------------------

    def documents(self, domain, split):
        """Iterator over {"id", "text"} dicts of one split, in file order."""
        if split not in SPLITS:
            raise CorpusError(f"unknown split '{split}', expected one of {', '.join(SPLITS)}")
        if domain == GSM8K and GSM8K not in self.local_domains():
            return self._gsm8k(split)
        path = os.path.join(self.datasets_dir, domain, f"{split}.jsonl")
        if not os.path.isfile(path):
            raise CorpusError(f"domain '{domain}': no {path}")
        return self._read_jsonl(path)

    def texts(self, domain, split):
        return [doc["text"] for doc in self.documents(domain, split)]

    @staticmethod
    def _read_jsonl(path):
        with open(path, encoding="utf-8", newline="\n") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CorpusError(f"{path}:{lineno}: not JSON ({e})") from e
                if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) \
                        or not isinstance(obj.get("text"), str):
                    raise CorpusError(f"{path}:{lineno}: expected {{\"id\": str, \"text\": str}}")
                yield {"id": obj["id"], "text": obj["text"]}

    def _gsm8k(self, split):
        if not self.has_gsm8k():
            raise CorpusError(f"gsm8k: no train.jsonl/test.jsonl in {self.gsm8k_dir}")
        source = "test" if split == "test" else "train"
        path = os.path.join(self.gsm8k_dir, f"{source}.jsonl")
        index = -1
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                index += 1
                try:
                    obj = json.loads(line)
                    question, answer = obj["question"], obj["answer"]
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise CorpusError(f"{path}:{lineno}: expected {{\"question\", \"answer\"}} "
                                      f"({e})") from e
                in_validation = index % GSM8K_VALIDATION_EVERY == 0
                if source == "train" and in_validation != (split == "validation"):
                    continue
                yield {"id": f"gsm8k-{source}-{index}", "text": question + "\n" + answer}


def main():
    """Print each domain's document and byte counts per split."""
    corpus = Corpus()
    for domain in corpus.domains():
        cells = []
        for split in SPLITS:
            texts = corpus.texts(domain, split)
            cells.append(f"{split} {len(texts)} docs {sum(len(t.encode()) for t in texts)} B")
        print(f"{domain:10s} " + ", ".join(cells))


if __name__ == "__main__":
    main()
