"""One extractor per corpus domain. Each module exposes PACKAGES (the Debian packages it reads),
PATHS ({package: [paths or globs inside it]}), DESCRIPTION, LICENCE and
extract(roots) -> list[Document], where roots maps a package name to the directory its .deb
was unpacked into. Extractors return every usable document in a deterministic order;
build_corpora.py filters, caps and splits them."""

from dataclasses import dataclass


@dataclass
class Document:
    id: str          # from paths and section numbers: stable for a given package version
    text: str        # normalised plain text
    package: str     # the Debian package it came from
    path: str        # the file inside that package, e.g. usr/share/pari/doc/tutorial.tex
