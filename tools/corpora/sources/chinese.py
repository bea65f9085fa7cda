"""Chinese domain: the Linux kernel documentation's Simplified Chinese translations
(linux-doc-6.1, Documentation/translations/zh_CN/**/*.rst.gz), one document per file.

reST is reduced to prose: directives, comments, field lists, literal (code) blocks, tables and
section adornments are dropped, inline roles and links keep their text, paragraphs and list
items are reflowed, and only paragraphs that are mostly CJK (text.cjk_share >= 0.5) are kept,
which drops untranslated English passages and stray code. Not a reST parser: a line filter
tuned to these files.
"""

import gzip
import os
import re

from sources import Document
from text import cjk_share, join_lines, normalise, paragraphs

PACKAGES = ["linux-doc-6.1"]
BASE = "usr/share/doc/linux-doc-6.1/Documentation/translations/zh_CN"
PATHS = {"linux-doc-6.1": [BASE + "/**/*.rst.gz"]}
DESCRIPTION = ("Simplified Chinese translations of the Linux kernel documentation, reST "
               "markup stripped, only paragraphs that are mostly CJK, one document per file.")
LICENCE = "GPL-2.0 (Linux kernel documentation; per-file SPDX tags, see COPYRIGHT)"

MIN_CJK_SHARE = 0.5
# Directives whose body is prose that stays; every other directive's block is dropped.
_ADMONITIONS = {"note", "warning", "attention", "tip", "important", "hint", "caution",
                "danger", "error", "admonition", "seealso"}
_DIRECTIVE = re.compile(r"^(\s*)\.\.(?:\s+([\w:-]+)::)?(.*)$")
_ADORNMENT = re.compile(r"^\s*([=\-~^\"'`#*+_.:])\1{2,}\s*$|^\s*=+( +=+)+\s*$")
_FIELD = re.compile(r"^(\s*):[^:`]+:(\s|$)")
_TABLE = re.compile(r"^\s*(\+[-=+]+|\|)")
_BULLET = re.compile(r"^(\s*)([-*+•]|#\.|\d+\.|\(\d+\)|\(\*\)|[a-z]\))\s+")

_INLINE = [
    (re.compile(r":[\w:+-]+:`~?!?([^`<]*?)\s*<[^`>]*>`"), r"\1"),  # :ref:`text <target>`
    (re.compile(r":[\w:+-]+:`~?!?([^`]*)`"), r"\1"),               # :c:func:`name`
    (re.compile(r"`([^`<]*?)\s*<[^`>]*>`_{0,2}"), r"\1"),          # `text <url>`_
    (re.compile(r"``([^`]+)``"), r"\1"),                           # ``literal``
    (re.compile(r"`([^`]+)`_{0,2}"), r"\1"),                       # `ref`_ / `interpreted`
    (re.compile(r"\*\*(\S(?:.*?\S)?)\*\*"), r"\1"),                # **strong**
    (re.compile(r"(?<![\w*])\*(\S(?:[^*]*?\S)?)\*(?![\w*])"), r"\1"),  # *emphasis*
    (re.compile(r"\s*\[(?:#\w*|\d+)\]_"), ""),                     # footnote references
    (re.compile(r"\\ "), ""),                                      # escaped space
]


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _skip_block(lines, i, indent):
    """Index of the first line after the block that starts at i: blank lines and lines
    indented deeper than `indent`."""
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > indent):
        i += 1
    return i


def strip_rest(source):
    """Prose lines of a reST document, blank lines kept as paragraph breaks."""
    lines = normalise(source).expandtabs(8).split("\n")
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        m = _DIRECTIVE.match(line)
        if m:
            if (m.group(2) or "").lower() in _ADMONITIONS:
                if m.group(3).strip():
                    out.append(m.group(1) + "   " + m.group(3).strip())
                i += 1  # keep the body: it is prose
            else:
                i = _skip_block(lines, i + 1, _indent(line))
                out.append("")  # what follows a dropped block starts a new paragraph
            continue
        if _FIELD.match(line):
            i = _skip_block(lines, i + 1, _indent(line))
            out.append("")
            continue
        if _ADORNMENT.match(line):
            i += 1
            out.append("")  # a section title is a paragraph of its own
            continue
        if _TABLE.match(line):
            i += 1
            continue
        if line.rstrip().endswith("::"):
            # "text::" introduces a literal block and reads as "text:"; a lone "::" vanishes.
            head = line.rstrip()[:-2].rstrip()
            if head.strip():
                out.append(head + ("：" if re.search(r"[\u4e00-\u9fff]$", head) else ":"))
            i = _skip_block(lines, i + 1, _indent(line))
            out.append("")
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _items(block):
    """Split a paragraph into list items (each starting with a bullet) or one item. A
    definition list's term (a line followed by a deeper-indented line) is an item of its own."""
    items = []
    for line in block:
        prev = items[-1] if items else None
        term = (prev is not None and len(prev) == 1 and not _BULLET.match(prev[0])
                and _indent(line) > _indent(prev[0]))
        if _BULLET.match(line) or not items or term:
            items.append([line])
        else:
            items[-1].append(line)
    return items


def _inline(text):
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


def to_text(source):
    kept = []
    for block in paragraphs(strip_rest(source)):
        for item in _items(block):
            m = _BULLET.match(item[0])
            bullet = m.group(2) + " " if m else ""
            first = item[0][m.end():] if m else item[0]
            body = _inline(join_lines([first] + item[1:])).strip()
            if body and cjk_share(body) >= MIN_CJK_SHARE:
                kept.append(bullet + body)
    return "\n\n".join(kept)


def extract(roots):
    base = os.path.join(roots["linux-doc-6.1"], BASE)
    docs = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(".rst.gz"):
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            with gzip.open(full, "rt", encoding="utf-8") as f:
                text = normalise(to_text(f.read()))
            docs.append(Document(id="zh_CN/" + rel[:-len(".rst.gz")], text=text,
                                 package="linux-doc-6.1", path=f"{BASE}/{rel}"))
    return docs
