"""Math domain: the PARI/GP tutorials and user manuals (pari-doc), kept as the TeX source
(plain TeX with PARI's macros), one document per chapter, section or subsection.

The LaTeX/TeX markup is the point here: formulas, \\kbd{} commands and \\bprog...@eprog GP
sessions are what math text looks like. Only full-line TeX comments (licence headers,
commented-out macros) outside GP code blocks are dropped, as is each file's title page
before its first heading. refcard*.tex and develop.tex (reference cards, developer notes)
are not included.
"""

import os
import re

from sources import Document
from text import normalise

PACKAGES = ["pari-doc"]
BASE = "usr/share/pari/doc"
FILES = ["tutorial.tex", "tutorial-mf.tex"] + [f"usersch{i}.tex" for i in range(1, 9)]
PATHS = {"pari-doc": [f"{BASE}/{name}" for name in FILES]}
DESCRIPTION = ("PARI/GP documentation in its TeX source: the GP tutorial, the modular forms "
               "tutorial and the User's Guides to GP and to the PARI library; one document "
               "per chapter, section or subsection.")
LICENCE = "GPL-2+"

MIN_BYTES = 200
_HEADING = re.compile(r"^\\(chapter|section|subsection|subsec|subseckbd)\b")


def _chunks(source):
    """Runs of lines from one heading to the next; the part before the first heading
    (title page, macro setup) is dropped. Full-line comments outside \\bprog...@eprog are
    removed (inside, a line starting with '%' is GP's history output, e.g. '%1 = 2')."""
    chunks, current, in_prog = [], None, False
    for line in source.split("\n"):
        if "\\bprog" in line:
            in_prog = True
        if "@eprog" in line:
            in_prog = False
        if not in_prog and line.lstrip().startswith("%"):
            continue
        if _HEADING.match(line):
            current = [line]
            chunks.append(current)
        elif current is not None:
            current.append(line)
    return ["\n".join(c) for c in chunks]


def extract(roots):
    docs = []
    for name in FILES:
        path = os.path.join(roots["pari-doc"], BASE, name)
        with open(path, encoding="utf-8") as f:
            source = normalise(f.read(), prose=False)
        stem = name[:-len(".tex")]
        for index, chunk in enumerate(_chunks(source)):
            docs.append(Document(id=f"{stem}/{index:04d}", text=normalise(chunk, prose=False),
                                 package="pari-doc", path=f"{BASE}/{name}"))
    return docs
