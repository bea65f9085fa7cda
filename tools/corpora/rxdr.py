"""Reader for R's XDR serialization format and lazy-load databases (.rdx/.rdb).

Just enough of R's `serialize()` format (versions 2 and 3, big-endian XDR) to read the
character vectors a data package stores: R itself is not needed. It decodes vectors, lists,
pairlists, symbols and attributes; closures, environments and byte code are out of scope and
raise RFormatError. Format reference: R Internals, "Serialization Formats", and
src/main/serialize.c (flag layout: type in bits 0-7, object bit 8, attribute bit 9, tag bit 10,
gp levels in bits 12-27).
"""

import bz2
import gzip
import lzma
import struct
import zlib

# SEXP types and the special pseudo-types serialize.c writes.
NILSXP, SYMSXP, LISTSXP, CHARSXP, LGLSXP = 0, 1, 2, 9, 10
INTSXP, REALSXP, CPLXSXP, STRSXP, VECSXP, RAWSXP = 13, 14, 15, 16, 19, 24
ALTREP_SXP, EMPTYENV_SXP, BASEENV_SXP, GLOBALENV_SXP = 238, 242, 241, 253
UNBOUNDVALUE_SXP, MISSINGARG_SXP, BASENAMESPACE_SXP = 252, 251, 247
NILVALUE_SXP, REFSXP = 254, 255

NA_INTEGER = -(2 ** 31)
# CHARSXP encoding bits (in the gp levels): LATIN1 and UTF8; ASCII and BYTES need no decoding.
LATIN1_MASK, UTF8_MASK = 1 << 2, 1 << 3


class RFormatError(ValueError):
    """The bytes are not an R serialization this reader understands."""

    def __init__(self, what, offset):
        super().__init__(f"{what} at byte offset {offset}")
        self.offset = offset


class RObject:
    """An R value: `value` is a Python list (vectors), str (symbol) or None, plus attributes."""

    def __init__(self, sexp_type, value, attributes=None):
        self.sexp_type = sexp_type
        self.value = value
        self.attributes = attributes or {}

    def names(self):
        names = self.attributes.get("names")
        return names.value if names is not None else None

    def as_dict(self):
        """A named list or vector as {name: element}."""
        names = self.names()
        if names is None or len(names) != len(self.value):
            raise ValueError("R object has no names attribute matching its length")
        return dict(zip(names, self.value))


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.refs = []  # the reference table, for REFSXP back-references

    def take(self, n):
        if self.pos + n > len(self.data):
            raise RFormatError(f"truncated stream (wanted {n} bytes)", self.pos)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def length(self):
        n = self.int()
        if n == -1:  # long vector: two 32-bit halves follow
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        if n < 0:
            raise RFormatError(f"negative length {n}", self.pos - 4)
        return n

    def header(self):
        fmt = self.take(2)
        if fmt != b"X\n":
            raise RFormatError(f"expected XDR format 'X\\n', found {fmt!r}", 0)
        version = self.int()
        self.int()  # R version that wrote it
        self.int()  # minimal R version to read it
        if version == 3:
            self.take(self.int())  # native encoding name
        elif version != 2:
            raise RFormatError(f"unsupported serialization version {version}", 2)

    def item(self):
        start = self.pos
        flags = self.int()
        sexp_type = flags & 0xFF
        levels = flags >> 12
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))

        if sexp_type == NILVALUE_SXP:
            return None
        if sexp_type in (EMPTYENV_SXP, BASEENV_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP,
                         MISSINGARG_SXP, BASENAMESPACE_SXP):
            return RObject(sexp_type, None)
        if sexp_type == REFSXP:
            index = (flags >> 8) or self.int()
            if not 1 <= index <= len(self.refs):
                raise RFormatError(f"reference {index} outside table of {len(self.refs)}", start)
            return self.refs[index - 1]
        if sexp_type == SYMSXP:
            name = self.item()  # a CHARSXP
            sym = RObject(SYMSXP, name)
            self.refs.append(sym)
            return sym
        if sexp_type == LISTSXP:
            return self.pairlist(has_attr, has_tag)
        if sexp_type == CHARSXP:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            raw = self.take(n)
            if levels & LATIN1_MASK:
                return raw.decode("latin-1")
            return raw.decode("utf-8", errors="strict")
        if sexp_type == ALTREP_SXP:
            return self.altrep()

        if sexp_type in (LGLSXP, INTSXP):
            n = self.length()
            value = [None if v == NA_INTEGER else v
                     for v in struct.unpack(f">{n}i", self.take(4 * n))]
        elif sexp_type == REALSXP:
            n = self.length()
            value = list(struct.unpack(f">{n}d", self.take(8 * n)))
        elif sexp_type == CPLXSXP:
            n = self.length()
            flat = struct.unpack(f">{2 * n}d", self.take(16 * n))
            value = [complex(flat[2 * i], flat[2 * i + 1]) for i in range(n)]
        elif sexp_type == RAWSXP:
            value = self.take(self.length())
        elif sexp_type in (STRSXP, VECSXP):
            n = self.length()
            value = [self.item() for _ in range(n)]
        else:
            raise RFormatError(f"unsupported SEXP type {sexp_type}", start)
        attributes = self.attributes() if has_attr else None
        return RObject(sexp_type, value, attributes)

    def pairlist(self, has_attr, has_tag):
        """A pairlist: read iteratively along the CDR chain to avoid deep recursion.
        Attributes on pairlist cells are read and dropped: data vectors carry none."""
        entries = []
        while True:
            if has_attr:
                self.item()
            tag = self.item() if has_tag else None
            entries.append((tag.value if isinstance(tag, RObject) else None, self.item()))
            flags = self.int()
            if flags & 0xFF == NILVALUE_SXP:
                break
            if flags & 0xFF != LISTSXP:
                raise RFormatError(f"pairlist tail of type {flags & 0xFF}", self.pos - 4)
            has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        return RObject(LISTSXP, entries)

    def attributes(self):
        pl = self.item()
        if pl is None:
            return {}
        return {tag: value for tag, value in pl.value}

    def altrep(self):
        """ALTREP objects: compact integer/real sequences are expanded and wrappers unwrapped;
        other classes (deferred strings, memory-mapped vectors) are refused."""
        start = self.pos
        info = self.item()
        state = self.item()
        attributes = self.item()
        class_name = info.value[0][1].value if info is not None else None
        if class_name in ("compact_intseq", "compact_realseq"):
            n, first, step = state.value
            value = [first + i * step for i in range(int(n))]
            if class_name == "compact_intseq":
                value = [int(v) for v in value]
            obj = RObject(INTSXP if class_name == "compact_intseq" else REALSXP, value)
        elif class_name and class_name.startswith("wrap_"):
            obj = state.value[0][1] if state.sexp_type == LISTSXP else state.value[0]
        else:
            raise RFormatError(f"unsupported ALTREP class {class_name}", start)
        if attributes is not None:
            obj.attributes = {tag: value for tag, value in attributes.value}
        return obj


def unserialize(data):
    """Decode one serialized R object (uncompressed bytes starting with 'X\\n')."""
    reader = _Reader(data)
    reader.header()
    return reader.item()


def read_rds(path):
    """An .rds file: gzip, bzip2, xz or uncompressed serialization."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:3] == b"BZh":
        raw = bz2.decompress(raw)
    elif raw[:6] == b"\xfd7zXZ\x00":
        raw = lzma.decompress(raw)
    return unserialize(raw)


def _decompress_rdb_blob(blob, compression):
    """One .rdb entry: 4-byte big-endian uncompressed length, then the compressed stream.
    Compression 1 is zlib; 2 and 3 add a type byte ('Z' zlib, '2' bzip2, 'X' xz, '0' none)."""
    expected = struct.unpack(">I", blob[:4])[0]
    body = blob[4:]
    kind = b"Z"
    if compression in (2, 3):
        kind, body = body[:1], body[1:]
    if kind == b"Z":
        out = zlib.decompress(body)
    elif kind == b"2":
        out = bz2.decompress(body)
    elif kind == b"X":
        # R_compress3 writes a raw LZMA2 stream (no .xz container) at preset 9e.
        out = lzma.decompress(body, format=lzma.FORMAT_RAW, filters=[
            {"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}])
    elif kind == b"0":
        out = body
    else:
        raise RFormatError(f"unknown .rdb compression type {kind!r}", 4)
    if len(out) != expected:
        raise RFormatError(f"decompressed {len(out)} bytes, index says {expected}", 0)
    return out


def read_lazyload(rdx_path):
    """All variables of a lazy-load database (`foo.rdx` + `foo.rdb`) as {name: RObject}."""
    index = read_rds(rdx_path)
    fields = index.as_dict()
    variables = fields["variables"].as_dict()
    compressed = fields.get("compressed")
    compression = 1
    if compressed is not None and compressed.value:
        flag = compressed.value[0]
        compression = int(flag) if not isinstance(flag, bool) else 1
    rdb_path = str(rdx_path)[:-len(".rdx")] + ".rdb"
    with open(rdb_path, "rb") as f:
        rdb = f.read()
    out = {}
    for name, pos in variables.items():
        offset, length = (int(v) for v in pos.value)
        blob = rdb[offset:offset + length]
        if len(blob) != length:
            raise RFormatError(f"variable '{name}' runs past the end of {rdb_path}", offset)
        out[name] = unserialize(_decompress_rdb_blob(blob, compression))
    return out
