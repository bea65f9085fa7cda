"""French domain: Debian's French documentation, one document per numbered section.

Sources are the plain-text renderings shipped in the packages: the Debian FAQ (question and
answer sections), the Debian Reference and the New Maintainers' Guide. The translations leave
some paragraphs, command examples and screen output in English; only paragraphs that
text.is_french accepts are kept. Tables, admonition labels, footnotes and tables of contents
are dropped; paragraphs and list items are reflowed to one line each.
"""

import gzip
import os
import re

from sources import Document
from text import french_score, is_french, join_lines, normalise, paragraphs

PACKAGES = ["debian-faq-fr", "debian-reference-fr", "maint-guide-fr"]
FILES = {  # package -> (path inside, short name used in document ids)
    "debian-faq-fr": ("usr/share/doc/debian/FAQ/debian-faq.fr.txt.gz", "debian-faq"),
    "debian-reference-fr": ("usr/share/debian-reference/debian-reference.fr.txt.gz",
                            "debian-reference"),
    "maint-guide-fr": ("usr/share/doc/maint-guide-fr/maint-guide.fr.txt.gz", "maint-guide"),
}
PATHS = {pkg: [path] for pkg, (path, _) in FILES.items()}
DESCRIPTION = ("French Debian documentation: the Debian FAQ's question/answer sections, plus "
               "the French paragraphs of the Debian Reference and the New Maintainers' Guide; "
               "one document per numbered section.")
LICENCE = ("Debian FAQ: SPI verbatim/modified-copies notice; Debian Reference and Maintainers' "
           "Guide: GPL-2+")

MIN_BODY_BYTES = 150
# Section headings start at column 0: "Chapitre 3.", "Annexe A.", "A.3.", "3.1.4."
_HEADING = re.compile(r"^(Chapitre (\d+)\.|Annexe ([A-Z])\.|([A-Z](?:\.\d+)+)\.|"
                      r"(\d+(?:\.\d+)*)\.)\s+\S")
_BULLET = re.compile(r"^\s*([*+o])\s+")
_ADMONITION = {"note", "astuce", "attention", "avertissement", "important", "mise en garde",
               "warning", "tip", "caution"}
_FOOTNOTE_MARK = re.compile(r"\s?\^\[\d+\]")


def _sections(text):
    """(number, heading, body lines) per numbered section of the rendered book, from the
    first chapter on; tables of contents are skipped."""
    lines = text.split("\n")
    start = next((i for i, ln in enumerate(lines) if ln.startswith("Chapitre 1.")), None)
    if start is None:
        raise ValueError("no line starting with 'Chapitre 1.': not a rendered DocBook book")
    sections, i = [], start
    while i < len(lines):
        line = lines[i]
        m = _HEADING.match(line)
        if m:
            number = m.group(2) or m.group(3) or m.group(4) or m.group(5)
            heading = [line]
            i += 1
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(" "):
                heading.append(lines[i])
                i += 1
            title = join_lines(heading)[len(m.group(1)):].strip()  # without its number
            sections.append((number, title, []))
            continue
        if line.strip() == "Table des matières":
            i += 1
            while i < len(lines) and not lines[i].strip():
                i += 1
            while i < len(lines) and lines[i].strip():
                i += 1
            continue
        if sections:
            sections[-1][2].append(line)
        i += 1
    return sections


def _items(block):
    items = []
    for line in block:
        if _BULLET.match(line) or not items:
            items.append([line])
        else:
            items[-1].append(line)
    return items


def _body(lines):
    """French paragraphs and list items of a section body."""
    kept = []
    for block in paragraphs("\n".join(lines)):
        first = block[0].strip()
        if first.startswith(("^[", "---", "$ ", "# ")):
            continue  # footnote, the rule above the footnotes, or a shell session
        if any(ln.strip().startswith(("|", "+-", "+=")) for ln in block):
            continue  # rendered table
        if len(block) == 1 and first.lower() in _ADMONITION:
            continue
        for item in _items(block):
            m = _BULLET.match(item[0])
            lines_ = [item[0][m.end():]] + item[1:] if m else item
            text = _FOOTNOTE_MARK.sub("", join_lines(lines_)).strip()
            if text and is_french(text):
                kept.append(("* " if m else "") + text)
    return kept


def extract(roots):
    docs = []
    for pkg in PACKAGES:
        path, short = FILES[pkg]
        with gzip.open(os.path.join(roots[pkg], path), "rt", encoding="utf-8") as f:
            text = normalise(f.read())
        seen = set()
        for number, title, body in _sections(text):
            kept = _body(body)
            if sum(len(p.encode()) for p in kept) < MIN_BODY_BYTES:
                continue
            title = _FOOTNOTE_MARK.sub("", title)
            fr, en = french_score(title)
            # Short titles have few cue words: keep one unless it reads as English.
            head = [title] if len(title) >= 3 and (en == 0 or fr > en) else []
            doc_id = f"{short}/{number}"
            if doc_id in seen:
                raise ValueError(f"{path}: section number {number} appears twice")
            seen.add(doc_id)
            docs.append(Document(id=doc_id, text="\n\n".join(head + kept), package=pkg,
                                 path=path))
    return docs
