"""Text helpers shared by the corpus extractors: normalisation, paragraph reflow, and the
cheap script / language tests used to keep French and Chinese paragraphs.

Not a general language identifier: the French test counts function words against English
ones, which is all that is needed to drop the untranslated English paragraphs of Debian's
French documentation; the Chinese test is a share of CJK characters.
"""

import re
import unicodedata

# Spaces that Debian's doc renderers and the kernel's translations emit; all become U+0020.
_SPACE_LIKE = {"\u00a0": " ", "\u202f": " ", "\u2007": " "}
# C0/C1 controls other than tab and newline (form feeds in Python sources, stray escapes).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Invisible format characters in prose: soft hyphen, zero-width space, bidi marks and
# embeddings, word joiner. ZWNJ/ZWJ (U+200C/D) stay: they change how some scripts render.
_FORMAT_CHARS = re.compile("[\u00ad\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069]")


def normalise(text, prose=True):
    """Unix newlines (U+2028/U+2029 included), U+00A0 and the narrow/figure no-break spaces
    to U+0020, no BOM, no control characters except tab and newline, no trailing spaces, no
    leading or trailing blank lines. Prose is also NFC-normalised, loses invisible format
    characters and keeps at most one blank line in a row; source code (prose=False) keeps
    its code points and vertical spacing."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "")
    # Unicode line/paragraph separators would split a JSONL line for readers that honour them.
    text = text.replace("\u2028", "\n").replace("\u2029", "\n\n")
    if prose:
        text = unicodedata.normalize("NFC", text)
        text = _FORMAT_CHARS.sub("", text)
    for src, dst in _SPACE_LIKE.items():
        text = text.replace(src, dst)
    text = _CONTROLS.sub("", text)
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    if prose:
        text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def paragraphs(text):
    """Blank-line separated blocks of lines, each a list of lines (indentation kept)."""
    blocks, current = [], []
    for line in text.split("\n"):
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def is_cjk(ch):
    """CJK ideographs, kana, CJK punctuation and full-width forms."""
    o = ord(ch)
    return (0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x3000 <= o <= 0x303F
            or 0x3040 <= o <= 0x30FF or 0xFF00 <= o <= 0xFFEF or 0x20000 <= o <= 0x2A6DF)


def join_lines(lines):
    """Reflow hard-wrapped lines into one line. A break between two CJK characters, after a
    '/', or after a word-internal hyphen was not a space in the source; elsewhere it was."""
    out = ""
    for line in (ln.strip() for ln in lines):
        if not line:
            continue
        if not out:
            out = line
        elif (is_cjk(out[-1]) and is_cjk(line[0])) or out.endswith("/") \
                or (out.endswith("-") and len(out) > 1 and out[-2].isalpha()) \
                or re.match(r"\(\d\w*\)", line):
            out += line
        else:
            out += " " + line
    # Runs of spaces inside prose (two after a full stop in Gutenberg texts, alignment
    # padding in rendered docs) carry nothing once lines are joined.
    return re.sub(r" {2,}", " ", out)


def cjk_share(text):
    """CJK characters over CJK characters plus ASCII letters and digits."""
    cjk = sum(1 for ch in text if is_cjk(ch))
    latin = sum(1 for ch in text if ch.isascii() and ch.isalnum())
    return cjk / (cjk + latin) if cjk + latin else 0.0


_FR_WORDS = frozenset("""le la les un une des du de et est sont en dans pour que qui sur pas
ne par avec ce cette ces vous nous il elle ils on se sa son ses leur leurs au aux plus ou où
mais si être été fait peut doit comme tout tous très aussi donc lorsque quand votre vos
notre à ça afin sans chaque ainsi""".split())
# Elided articles and pronouns (l'option, d'un, qu'il) count as French function words.
_ELISION = re.compile(r"\b(?:[cdjlmnst]|qu)['’](?=\w)")
_EN_WORDS = frozenset("""the and of to is are be in for that this with it on as by from can
you your not or an which if will have has use used when there their these those was were
should would could into only also such all any""".split())
_WORD = re.compile(r"[a-zàâäçéèêëîïôöùûüÿœæ]+")


def french_score(text):
    """(French function words, English function words) among the words of `text`."""
    lower = text.lower()
    words = _WORD.findall(lower)
    fr = sum(1 for w in words if w in _FR_WORDS) + len(_ELISION.findall(lower))
    return fr, sum(1 for w in words if w in _EN_WORDS)


_FRENCH_MARKS = re.compile(r"[àâçéèêëîïôûùœ«»]")


def is_french(text, min_words=2):
    """True for prose that is French rather than English or code: enough French function
    words and at most half as many English ones, or (for short items) no English function
    word, one French cue (function word, accent or guillemet) and at least two words."""
    fr, en = french_score(text)
    if fr >= min_words and fr >= 2 * en:
        return True
    cues = fr + (1 if _FRENCH_MARKS.search(text.lower()) else 0)
    return en == 0 and cues >= 1 and len(_WORD.findall(text.lower())) >= 2
