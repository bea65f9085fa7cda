#!/usr/bin/python3
"""Rebuild the committed text corpora (datasets/) from Debian 12 packages.

Downloads the source packages with `apt-get download` and unpacks them with `dpkg -x` into a
temporary directory (no root needed), extracts plain text per domain (sources/<domain>.py),
drops near-empty and duplicate documents, caps each domain to CAP_BYTES of text chosen by a
hash of the document id, splits it into train / validation / test by document, and writes
datasets/<domain>/{train,validation,test}.jsonl, datasets/<domain>/COPYRIGHT and
datasets/manifest.json. Every choice is a function of the package contents, so the same
package versions give byte-identical output. Standard library only; Debian's /usr/bin/python3.

    /usr/bin/python3 tools/corpora/build_corpora.py            # rebuild datasets/
    /usr/bin/python3 tools/corpora/build_corpora.py --pin      # the versions in the manifest
    /usr/bin/python3 tools/corpora/build_corpora.py --debs DIR # .deb files already at hand
"""

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import sources.chinese  # noqa: E402
import sources.code  # noqa: E402
import sources.english  # noqa: E402
import sources.french  # noqa: E402
import sources.math  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOMAINS = {"english": sources.english, "chinese": sources.chinese, "french": sources.french,
           "math": sources.math, "code": sources.code}
SPLITS = ("train", "validation", "test")
CAP_BYTES = 1_200_000     # UTF-8 bytes of document text kept per domain
MIN_DOC_BYTES = 200       # shorter documents are headings or stubs, not text
HELDOUT_SHARE = 0.05      # of each domain's documents, for validation and for test each
EXTERNAL = [{
    "name": "gsm8k",
    "path": "../shared/datasets/gsm8k",
    "origin": "https://github.com/openai/grade-school-math",
    "description": "Grade-school math word problems, one document per problem: the question, then the worked "
                   "solution and its final answer.",
    "licence": "MIT",
    "note": "not committed; loaded from the path when present",
}]


class BuildError(RuntimeError):
    """A package could not be fetched or unpacked, or its content is not what we expect."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def digest(*parts):
    return hashlib.sha256(":".join(parts).encode("utf-8")).hexdigest()


# --- packages -----------------------------------------------------------------------------

def deb_field(deb, field):
    return subprocess.run(["dpkg-deb", "--field", deb, field], check=True,
                          capture_output=True, text=True).stdout.strip()


def fetch_debs(packages, work, debs_dir=None, pins=None):
    """{package: .deb path}: from debs_dir when given, else `apt-get download` into work.
    pins maps package -> version to request instead of the candidate version."""
    found = {}
    if debs_dir:
        for deb in sorted(glob.glob(os.path.join(debs_dir, "*.deb"))):
            name = deb_field(deb, "Package")
            if name in packages and (not pins or deb_field(deb, "Version") == pins.get(name)):
                found[name] = deb
        missing = [p for p in packages if p not in found]
        if missing:
            raise BuildError(f"{debs_dir}: no .deb for {', '.join(missing)}"
                             + (" at the pinned versions" if pins else ""))
        return found
    target = os.path.join(work, "debs")
    os.makedirs(target, exist_ok=True)
    wanted = [f"{p}={pins[p]}" if pins and p in pins else p for p in packages]
    log("apt-get download " + " ".join(wanted))
    proc = subprocess.run(["apt-get", "download", *wanted], cwd=target,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError("apt-get download failed (run `apt-get update` first if a package "
                         "or version is not found; with --pin, a superseded version may only "
                         "be on snapshot.debian.org, see --debs):\n" + proc.stderr.strip())
    for deb in glob.glob(os.path.join(target, "*.deb")):
        found[deb_field(deb, "Package")] = deb
    return found


def unpack(debs, work):
    """{package: directory}: each .deb unpacked with dpkg -x into its own root."""
    roots = {}
    for pkg, deb in sorted(debs.items()):
        root = os.path.join(work, "root", pkg)
        os.makedirs(root, exist_ok=True)
        subprocess.run(["dpkg", "-x", deb, root], check=True)
        roots[pkg] = root
    return roots


# --- selection ------------------------------------------------------------------------------

def clean(domain, docs):
    """Drop near-empty documents and exact duplicates (the first in extraction order stays);
    ids must be unique."""
    kept, ids, texts = [], set(), set()
    for doc in docs:
        if doc.id in ids:
            raise BuildError(f"{domain}: duplicate document id '{doc.id}' ({doc.path})")
        ids.add(doc.id)
        text_hash = hashlib.sha256(doc.text.encode("utf-8")).digest()
        if len(doc.text.encode("utf-8")) < MIN_DOC_BYTES or text_hash in texts:
            continue
        texts.add(text_hash)
        kept.append(doc)
    return kept


def cap(domain, docs, cap_bytes):
    """Documents in a pseudo-random order fixed by their ids are taken while they fit in
    cap_bytes; the result keeps extraction order."""
    chosen, total = set(), 0
    for doc in sorted(docs, key=lambda d: digest("cap", domain, d.id)):
        size = len(doc.text.encode("utf-8"))
        if total + size <= cap_bytes:
            chosen.add(doc.id)
            total += size
    return [d for d in docs if d.id in chosen]


def split(domain, docs):
    """{split: docs}. Documents are ranked by a hash of their id; the first 5% (at least one)
    are test, the next 5% validation, the rest train. Ranking rather than thresholding the
    hash gives exact proportions on domains of a hundred-odd documents."""
    ranked = sorted(docs, key=lambda d: digest("split", domain, d.id))
    n_held = max(1, round(len(docs) * HELDOUT_SHARE))
    test = {d.id for d in ranked[:n_held]}
    validation = {d.id for d in ranked[n_held:2 * n_held]}
    out = {s: [] for s in SPLITS}
    for doc in docs:
        out["test" if doc.id in test else "validation" if doc.id in validation
            else "train"].append(doc)
    return out


# --- output ---------------------------------------------------------------------------------

def write_jsonl(path, docs):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for doc in docs:
            f.write(json.dumps({"id": doc.id, "text": doc.text}, ensure_ascii=False) + "\n")
    with open(path, "rb") as f:
        data = f.read()
    return {"bytes": len(data), "documents": len(docs),
            "sha256": hashlib.sha256(data).hexdigest()}


def copyright_file(pkg, roots):
    """usr/share/doc/<pkg>/copyright. A package whose doc directory is a symlink to the one
    of a package it depends on at the same version (libpython3.11-stdlib ->
    libpython3.11-minimal) is resolved among the other unpacked packages."""
    doc_dir = os.path.join(roots[pkg], "usr/share/doc", pkg)
    if os.path.islink(doc_dir):
        target = os.path.basename(os.readlink(doc_dir))
        for root in roots.values():
            candidate = os.path.join(root, "usr/share/doc", target, "copyright")
            if os.path.isfile(candidate) and not os.path.islink(candidate):
                return candidate
        raise BuildError(f"{pkg}: usr/share/doc/{pkg} links to '{target}', which is not "
                         "among the unpacked packages")
    path = os.path.join(doc_dir, "copyright")
    if not os.path.isfile(path):
        raise BuildError(f"{pkg}: no usr/share/doc/{pkg}/copyright")
    return path


def write_copyright(path, module, roots, versions):
    """The source packages' copyright files; one verbatim, several concatenated under a
    header naming their packages (identical files appear once)."""
    texts = {}
    for pkg in module.PACKAGES:
        with open(copyright_file(pkg, roots), "rb") as f:
            texts.setdefault(f.read(), []).append(pkg)
    with open(path, "wb") as out:
        if len(module.PACKAGES) == 1:
            out.write(next(iter(texts)))
            return
        for i, (body, pkgs) in enumerate(texts.items()):
            names = ", ".join(f"{p} {versions[p]}" for p in pkgs)
            sep = "\n" if i else ""
            out.write(f"{sep}==> copyright file of {names} <==\n\n".encode("utf-8"))
            out.write(body)


def build_domain(name, module, roots, versions, out_dir, cap_bytes):
    """Extract, clean, cap, split and write one domain; its manifest entry. File paths in the
    manifest are relative to the repository root (datasets/<domain>/...) wherever --out
    points, so a rebuild elsewhere can be compared byte for byte with the committed tree."""
    try:
        docs = module.extract(roots)
    except (ValueError, KeyError, OSError) as e:  # RFormatError and UnicodeError included
        raise BuildError(f"{name}: extracting from {', '.join(module.PACKAGES)}: {e}") from e
    docs = clean(name, docs)
    available = {"documents": len(docs),
                 "text_bytes": sum(len(d.text.encode("utf-8")) for d in docs)}
    docs = cap(name, docs, cap_bytes)
    parts = split(name, docs)
    domain_dir = os.path.join(out_dir, name)
    os.makedirs(domain_dir, exist_ok=True)
    rel_dir = f"datasets/{name}"
    splits = {}
    for s in SPLITS:
        entry = write_jsonl(os.path.join(domain_dir, f"{s}.jsonl"), parts[s])
        entry["text_bytes"] = sum(len(d.text.encode("utf-8")) for d in parts[s])
        splits[s] = {"file": f"{rel_dir}/{s}.jsonl", **entry}
    write_copyright(os.path.join(domain_dir, "COPYRIGHT"), module, roots, versions)
    origins = [{"package": p, "version": versions[p], "paths": module.PATHS[p]}
               for p in module.PACKAGES]
    entry = {"name": name, "description": module.DESCRIPTION, "source": origins[0]}
    if len(origins) > 1:
        entry["additional_sources"] = origins[1:]
    entry.update({
        "licence": module.LICENCE,
        "copyright_file": f"{rel_dir}/COPYRIGHT",
        "available": available,  # before the cap
        "splits": splits,
    })
    return entry


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "datasets"),
                    help="output directory (default: datasets/ of this checkout)")
    ap.add_argument("--debs", help="use the .deb files in this directory instead of apt")
    ap.add_argument("--pin", action="store_true",
                    help="request the package versions recorded in the existing manifest")
    ap.add_argument("--work", help="unpack here and keep it (default: a temporary directory)")
    ap.add_argument("--cap-bytes", type=int, default=CAP_BYTES,
                    help=f"text bytes kept per domain (default {CAP_BYTES})")
    args = ap.parse_args(argv)

    out_dir = os.path.abspath(args.out)
    os.makedirs(out_dir, exist_ok=True)
    pins = None
    if args.pin:
        with open(os.path.join(out_dir, "manifest.json"), encoding="utf-8") as f:
            old = json.load(f)
        pins = {s["package"]: s["version"] for d in old["domains"]
                for s in [d["source"], *d.get("additional_sources", [])]}

    packages = sorted({p for m in DOMAINS.values() for p in m.PACKAGES})
    work = args.work or tempfile.mkdtemp(prefix="moe-corpora-")
    try:
        debs = fetch_debs(packages, work, args.debs, pins)
        versions = {p: deb_field(debs[p], "Version") for p in packages}
        roots = unpack(debs, work)
        domains = []
        for name, module in DOMAINS.items():
            log(f"{name}: extracting")
            entry = build_domain(name, module, roots, versions, out_dir, args.cap_bytes)
            domains.append(entry)
            counts = ", ".join(f"{s} {entry['splits'][s]['documents']} docs / "
                               f"{entry['splits'][s]['bytes']} B" for s in SPLITS)
            log(f"{name}: {counts}")
    except (BuildError, subprocess.CalledProcessError, OSError) as e:
        log(f"build_corpora: {e}")
        return 1
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)

    manifest = {
        "format": "one JSON object per line: {\"id\": str, \"text\": str}, UTF-8",
        "build": {
            "command": "/usr/bin/python3 tools/corpora/build_corpora.py",
            "cap_text_bytes": args.cap_bytes,
            "min_document_bytes": MIN_DOC_BYTES,
            "split": "documents ranked by sha256('split:<domain>:<id>'); first 5% test, "
                     "next 5% validation, rest train",
        },
        "domains": domains,
        "external": EXTERNAL,
    }
    with open(os.path.join(out_dir, "manifest.json"), "w", encoding="utf-8",
              newline="\n") as f:
        json.dump(manifest, f, ensure_ascii=False, indent=2)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
