"""English domain: Jane Austen's six novels from r-cran-janeaustenr, one document per chapter.

The package stores each novel as an R character vector (one element per line of the Project
Gutenberg text) in a lazy-load database, read here with rxdr without R. Paragraphs are
reflowed to one line each and Gutenberg's _underscore_ italics marks are removed.
"""

import re

import rxdr
from sources import Document
from text import join_lines, normalise, paragraphs

PACKAGES = ["r-cran-janeaustenr"]
DATA_PATH = "usr/lib/R/site-library/janeaustenr/data/Rdata.rdx"
PATHS = {"r-cran-janeaustenr": [DATA_PATH, DATA_PATH[:-1] + "b"]}
DESCRIPTION = ("Jane Austen's six completed novels (Project Gutenberg texts as packaged by "
               "janeaustenr), one document per chapter, paragraphs reflowed to single lines.")
LICENCE = "Public domain (novels); MIT (janeaustenr package)"

NOVELS = {  # R variable name -> short id used in document ids
    "sensesensibility": "sense-and-sensibility",
    "prideprejudice": "pride-and-prejudice",
    "mansfieldpark": "mansfield-park",
    "emma": "emma",
    "northangerabbey": "northanger-abbey",
    "persuasion": "persuasion",
}
_VOLUME = re.compile(r"^\s*VOLUME\s+([IVXLC]+)\s*$", re.I)
_CHAPTER = re.compile(r"^\s*CHAPTER\s+([IVXLC]+|\d+)\.?\s*$", re.I)
_ITALIC = re.compile(r"_([^_\n]+)_")
_ROMAN = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


def _number(token):
    if token.isdigit():
        return int(token)
    values = [_ROMAN[c] for c in token.upper()]
    return sum(-v if i + 1 < len(values) and v < values[i + 1] else v
               for i, v in enumerate(values))


def _chapters(lines):
    """(volume, chapter, body lines) for each chapter; text before chapter 1 (title page,
    the author's advertisement) is not a chapter and is dropped."""
    volume, current, out = 0, None, []
    for line in lines:
        line = line if line is not None else ""
        m_vol, m_ch = _VOLUME.match(line), _CHAPTER.match(line)
        if m_vol:
            volume = _number(m_vol.group(1))
        elif m_ch:
            current = (volume, _number(m_ch.group(1)), [])
            out.append(current)
        elif current is not None:
            current[2].append(line)
    return out


def extract(roots):
    root = roots["r-cran-janeaustenr"]
    novels = rxdr.read_lazyload(f"{root}/{DATA_PATH}")
    docs = []
    for var, slug in NOVELS.items():
        for volume, chapter, body in _chapters(novels[var].value):
            text = normalise("\n".join(body))
            text = "\n\n".join(join_lines(p) for p in paragraphs(text))
            text = _ITALIC.sub(r"\1", text)
            vol = f"v{volume}-" if volume else ""
            docs.append(Document(id=f"{slug}/{vol}ch{chapter:02d}", text=text,
                                 package="r-cran-janeaustenr", path=DATA_PATH))
    return docs
