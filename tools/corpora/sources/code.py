"""Code domain: the Python 3.11 standard library sources shipped by Debian
(libpython3.11-minimal and libpython3.11-stdlib), one document per .py file, verbatim.

Generated data modules are left out because they are tables rather than code: the
charmap codecs (encodings/cp1252.py and friends), pydoc_data/topics.py and
_sysconfigdata*.py. So are files over MAX_BYTES, which would each take a large share of the
capped domain.
"""

import os
import re

from sources import Document
from text import normalise

PACKAGES = ["libpython3.11-minimal", "libpython3.11-stdlib"]
BASE = "usr/lib/python3.11"
PATHS = {pkg: [BASE + "/**/*.py"] for pkg in PACKAGES}
DESCRIPTION = ("Python 3.11 standard library sources (Debian's libpython3.11-minimal and "
               "libpython3.11-stdlib), one document per module file.")
LICENCE = "PSF-2.0 (Python Software Foundation License; see COPYRIGHT)"

MAX_BYTES = 32 * 1024
_GENERATED = [re.compile(p) for p in (r"^pydoc_data/", r"^_sysconfigdata")]
_CHARMAP_TABLE = "decoding_table = ("


def extract(roots):
    docs, seen = [], set()
    for pkg in PACKAGES:
        base = os.path.join(roots[pkg], BASE)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.endswith(".py"):
                    continue
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, base)
                if rel in seen or any(p.search(rel) for p in _GENERATED):
                    continue
                with open(full, "rb") as f:
                    raw = f.read()
                if len(raw) > MAX_BYTES:
                    continue
                text = raw.decode("utf-8")
                if _CHARMAP_TABLE in text:
                    continue
                seen.add(rel)
                docs.append(Document(id=f"python3.11/{rel}",
                                     text=normalise(text, prose=False),
                                     package=pkg, path=f"{BASE}/{rel}"))
    return docs
