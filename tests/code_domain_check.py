#!/usr/bin/python3
"""Checks for the code domain (run by test_datasets): strip_prose on hand-written cases, then
every committed code document parses as Python and holds no comment and no statement that is
a string literal alone. Exit status 0 when all hold; each failure is printed."""

import ast
import io
import json
import os
import sys
import tokenize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools", "corpora"))
from sources.code import strip_prose  # noqa: E402

CASES = [
    # (source, expected)
    ('#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n"""Module doc."""\n\nimport os  # why\n',
     "import os\n"),
    ('class A:\n    """Doc\n    on two lines."""\n\n    x = 1\n    "attribute doc"\n',
     "class A:\n\n    x = 1\n"),
    ('def f():\n    """Only a docstring."""\n\n\ndef g(): "same line"\n',
     "def f():\n    pass\n\ndef g(): \"same line\"\n"),
    ('SQL = """\nselect 1\n\n\n# not a comment\n"""\nx = 1; "kept: shares its line"\n',
     'SQL = """\nselect 1\n\n\n# not a comment\n"""\nx = 1; "kept: shares its line"\n'),
    ('if x:\n    pass\nelse:\n    # only a comment\n    "a string"\n',
     "if x:\n    pass\nelse:\n    pass\n"),
]


def prose_left(text):
    """What a document still holds of comments and lone string statements."""
    found = [f"comment at line {t.start[0]}" for t in tokenize.generate_tokens(io.StringIO(text).readline)
             if t.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(text)):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            for stmt in body if isinstance(body, list) else []:
                if (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
                        and isinstance(stmt.value.value, str)):
                    line = text.splitlines()[stmt.lineno - 1]
                    if not line[:stmt.col_offset].strip():  # a statement of its own line
                        found.append(f"string statement at line {stmt.lineno}")
    return found


def main():
    failures = 0
    for source, expected in CASES:
        got = strip_prose(source)
        if got != expected:
            failures += 1
            print(f"strip_prose({source!r}) = {got!r}, expected {expected!r}")
    documents = 0
    for split in ("train", "validation", "test"):
        with open(os.path.join(REPO, "datasets", "code", f"{split}.jsonl"), encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                documents += 1
                try:
                    left = prose_left(doc["text"])
                except SyntaxError as e:
                    left = [f"not Python: {e}"]
                if left:
                    failures += 1
                    print(f"datasets/code/{split}.jsonl, {doc['id']}: " + "; ".join(left[:3]))
    print(f"{len(CASES)} cases, {documents} documents, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
