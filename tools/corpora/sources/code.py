"""Code domain: the Python 3.11 standard library sources shipped by Debian
(libpython3.11-minimal and libpython3.11-stdlib), one document per .py file, as code only:
comments and docstrings are removed (see strip_prose), since they are English prose - over a
third of the characters of these files - and would make the domain partly a second English one.

Generated data modules are left out because they are tables rather than code: the
charmap codecs (encodings/cp1252.py and friends), pydoc_data/topics.py and
_sysconfigdata*.py. So are files over MAX_BYTES as shipped, which would each take a large
share of the capped domain.
"""

import ast
import io
import os
import re
import tokenize

from sources import Document
from text import normalise

PACKAGES = ["libpython3.11-minimal", "libpython3.11-stdlib"]
BASE = "usr/lib/python3.11"
PATHS = {pkg: [BASE + "/**/*.py"] for pkg in PACKAGES}
DESCRIPTION = ("Python 3.11 standard library sources (Debian's libpython3.11-minimal and "
               "libpython3.11-stdlib), one document per module file, comments and docstrings removed.")
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
                try:
                    text = strip_prose(text)
                except (SyntaxError, ValueError, tokenize.TokenError):
                    continue  # not Python 3.11 (test data for lib2to3 and the like)
                seen.add(rel)
                docs.append(Document(id=f"python3.11/{rel}",
                                     text=normalise(text, prose=False),
                                     package=pkg, path=f"{BASE}/{rel}"))
    return docs


def strip_prose(source):
    """The source without its comments and docstrings, as valid Python.

    Removed: every comment (shebang and coding lines included) and every statement that is a
    string literal alone (docstrings of modules, classes and functions, and the strings some
    modules use to document attributes). A docstring that is a body's only statement becomes
    `pass`, so the code still parses. A line left holding nothing is dropped; blank lines of the
    source stay, at most one in a row (inside string literals, every line stays as it is).
    Raises SyntaxError on a file that is not Python 3.11.
    """
    source = source.replace("\r\n", "\n").replace("\r", "\n")
    tree = ast.parse(source)
    lines = source.split("\n")  # as the parser counts lines (str.splitlines also splits at form feeds)
    if lines[-1] == "":
        lines.pop()
    cut = {}  # line index -> list of (start column, end column, replacement)

    def column(i, byte_offset):
        """The parser's column (UTF-8 bytes) on line i as a character index."""
        return len(lines[i].encode("utf-8")[:byte_offset].decode("utf-8"))

    def cut_span(node, replacement):
        first, last = node.lineno - 1, node.end_lineno - 1
        col, end_col = column(first, node.col_offset), column(last, node.end_col_offset)
        if lines[first][:col].strip():
            return  # shares its line with an earlier statement
        tail = lines[last][end_col:].strip()
        if tail and not tail.startswith("#"):
            return  # shares its line with a later statement
        for i in range(first, last + 1):
            start = col if i == first else 0
            end = end_col if i == last else len(lines[i])
            cut.setdefault(i, []).append((start, end, replacement if i == first else ""))

    for parent in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(parent, field, None)
            if not isinstance(body, list):
                continue
            for stmt in body:
                if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                        and isinstance(stmt.value.value, str)):
                    alone = len(body) == 1 and not isinstance(parent, ast.Module)
                    cut_span(stmt, "pass" if alone else "")

    in_string = set()  # lines inside a string literal that spans lines: kept as they are
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            cut.setdefault(row - 1, []).append((col, len(lines[row - 1]), ""))
        elif tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
            in_string.update(range(tok.start[0], tok.end[0]))  # rows after the first, 0-based

    out = []
    for i, line in enumerate(lines):
        if i in in_string and i not in cut:
            out.append(line)
            continue
        if i in cut:
            for start, end, replacement in sorted(cut[i], reverse=True):
                line = line[:start] + replacement + line[end:]
            line = line.rstrip()
            if not line.strip():
                continue  # only a comment or a docstring was there
        elif not line.strip():
            line = ""
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    text = "\n".join(out) + "\n"
    ast.parse(text)  # still Python
    return text
