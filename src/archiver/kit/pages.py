"""How the kit's French pages write things: sizes (``14,2 Mo``), lengths (``1 min 16 s``),
counts (``0 vidéo``, ``2 vidéos``), the catalogue's order (French collation, no ICU), the
search's folding (``l'ENT`` finds ``l’ENT``) and file names made from titles
(``Differencier-ses-pratiques-720p.mp4``).

Kept apart from :mod:`.site` (which renders the pages and keys them) because each of these is
a rule of French writing or of USB keys, tested on its own, and :mod:`.plan` needs the names
before a page exists.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ..entry import Entry, Licence

__all__ = [
    "STEM_LENGTH",
    "collation_key",
    "collation_primary",
    "duree",
    "file_stem",
    "fold",
    "folder_names",
    "french_sorted",
    "licence_summary",
    "pluriel",
    "taille",
]

# Letters NFKD leaves whole, spelt out as French dictionaries sort them ("œuvre" among the
# "oe…"), and the apostrophes and quotes a French keyboard or a word processor types, made one.
_SPELT = str.maketrans(
    {
        "œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ẞ": "SS", "ø": "o", "Ø": "O",
        "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ı": "i",
        "’": "'", "‘": "'", "ʼ": "'", "′": "'", "`": "'", "´": "'",
        "\u00a0": " ", "\u202f": " ",
    }
)  # fmt: skip
_WORD = re.compile(r"[^\W_]+")  # letters and digits: everything else separates words
_DIGITS = re.compile(r"\d+")
_DIGIT = re.compile(r"\d")
# The combining marks of Latin, Greek and Cyrillic letters (and their extensions): accents.
_MARK_RANGES = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_MARKS = re.compile(f"[{_MARK_RANGES}]")
_FIRST_LETTER, _LAST_LETTER = 0xD7FF, 0xCFFF  # letters counted down, below the surrogates
_SPELT_MAP = {chr(code): spelt for code, spelt in _SPELT.items()}
_SPECIAL = re.compile("[" + "".join(_SPELT_MAP) + "]")
T = TypeVar("T")
_NUMBER_WIDTH = 12  # "2" before "10": numbers compared as numbers, up to 12 digits

# Windows refuses these as a file's base name, whatever the extension and case.
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)
STEM_LENGTH = 60  # a folder and its video's name stay short of Windows' 260-character paths
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")
FALLBACK_STEM = "video"


def _marks_dropped(text: str) -> str:
    if text.isascii():
        return text.replace("`", "'")
    decomposed = unicodedata.normalize("NFKD", _spelt(text))
    if decomposed.isascii():
        return decomposed
    # The marks the text holds, dropped in one pass (a test of each character in Python
    # took 2 s for 10,000 transcripts).
    marks = {ord(c): None for c in set(decomposed) if unicodedata.combining(c)}
    return decomposed.translate(marks)


def fold(text: str) -> str:
    """What the search compares: lowercase, no accents, one apostrophe, as ``app.js`` folds
    what is typed (``'`` on a keyboard finds ``’`` in a title).

    >>> fold("Éducation à l’école, Œuvre")
    "education a l'ecole, oeuvre"
    """
    return _marks_dropped(text).lower()


def collation_key(text: str) -> tuple[str, str, str, str]:
    """A key that sorts titles as a French reader expects (the Unicode Collation Algorithm's
    three levels, as CLDR's French tailoring for France sets them, without ICU):

    1. letters, accents and case ignored, ligatures spelt out (``Œ`` is ``oe``), words
       compared word by word (a space or a punctuation mark sorts before any letter) and
       numbers by their value (``2`` before ``10``): :func:`collation_primary`;
    2. then accents, the first accented letter deciding (``cote``, ``coté``, ``côte``,
       ``côté``), acute before grave before circumflex before diaeresis before cedilla;
    3. then case, lowercase first; last, the text itself, so no two titles tie.

    >>> sorted(["Évaluer", "Créer", "différencier", "Zoé", "école"], key=collation_key)
    ['Créer', 'différencier', 'école', 'Évaluer', 'Zoé']
    >>> sorted(["côte", "Cote", "côté", "coté", "cote"], key=collation_key)
    ['cote', 'Cote', 'coté', 'côte', 'côté']
    """
    if text.isascii():
        decomposed, accents = text, ""  # no accent sorts before any accent
    else:
        decomposed = unicodedata.normalize("NFKD", _spelt(text))
        # Each accent as the letter it sits on, then its weight; the letter counted down,
        # so that an accent on an earlier letter weighs more than one on a later letter.
        accents = "".join(
            chr(_FIRST_LETTER - min(mark.start() - number, _LAST_LETTER))
            + _ACCENT_WEIGHTS.get(mark.group(), mark.group())
            for number, mark in enumerate(_MARKS.finditer(decomposed))
        )
        if accents:
            decomposed = _MARKS.sub("", decomposed)
    words = " ".join(_WORD.findall(decomposed))
    # Lowercase first: swapped, a lowercase letter is the smaller code point.
    return _primary(words), accents, words.swapcase(), text


@functools.lru_cache(maxsize=1 << 16)  # a sync sorts the same titles for its kit and its ZIM
def collation_primary(text: str) -> str:
    """The first level of :func:`collation_key` alone: what decides between two titles but
    for accents and case (7 µs a title, where the whole key takes 15). Sort by it, then by
    the whole key only the titles it finds equal (:func:`french_sorted`).

    >>> collation_primary("L’Œuvre d’Épisode 2") == collation_primary("l'oeuvre d'episode 02")
    True
    """
    if not text.isascii():
        text = _MARKS.sub("", unicodedata.normalize("NFKD", _spelt(text)))
    return _primary(" ".join(_WORD.findall(text)))


def _primary(words: str) -> str:
    primary = words.lower()
    return _DIGITS.sub(_padded, primary) if _DIGIT.search(primary) else primary


def french_sorted(
    items: Iterable[T], text: Callable[[T], str], group: Callable[[T], Any]
) -> list[T]:
    """``items`` in French order of ``text(item)`` (:func:`collation_key`) within each
    ``group(item)`` (groups in their own order): sorted by the first level, and by the whole
    key only where the first level ties, which titles rarely do.

    >>> french_sorted(["côte", "Zoé", "coté", "Cote"], str, lambda _: 0)
    ['Cote', 'coté', 'côte', 'Zoé']
    """
    ordered = sorted(items, key=lambda item: (group(item), collation_primary(text(item))))
    result: list[T] = []
    for _key, tied in itertools.groupby(
        ordered, key=lambda item: (group(item), collation_primary(text(item)))
    ):
        run = list(tied)
        result.extend(
            sorted(run, key=lambda item: collation_key(text(item))) if len(run) > 1 else run
        )
    return result


def _spelt(text: str) -> str:
    """``text`` with ligatures spelt out and apostrophes made one (:data:`_SPELT`); a regular
    expression finds the few to change faster than ``str.translate`` looks at every one."""
    return _SPECIAL.sub(lambda match: _SPELT_MAP[match.group()], text)


# The secondary weights of the accents French writes, in CLDR's root order: acute, grave,
# breve, circumflex, caron, ring, diaeresis, double acute, tilde, dot, cedilla, ogonek, macron.
_ACCENT_WEIGHTS = {
    mark: chr(1 + rank) for rank, mark in enumerate("\u0301\u0300\u0306\u0302\u030c\u030a"
                                                          "\u0308\u030b\u0303\u0307\u0327\u0328\u0304")
}  # fmt: skip


def _padded(match: re.Match[str]) -> str:
    return match.group().zfill(_NUMBER_WIDTH)


def pluriel(count: int, singulier: str, pluriel_: str | None = None) -> str:
    """A count and its noun as French writes it: the singular for 0 and 1.

    >>> pluriel(0, "vidéo"), pluriel(1, "vidéo"), pluriel(2, "vidéo")
    ('0 vidéo', '1 vidéo', '2 vidéos')
    """
    noun = singulier if count < 2 else (pluriel_ or f"{singulier}s")
    return f"{count} {noun}"


def taille(size: float) -> str:
    """A file's size as a French reader writes it: octets, Ko, Mo, Go (of 1,024), one
    decimal after a comma.

    >>> taille(512), taille(1536), taille(14.2 * 1024**2), taille(3 * 1024**3)
    ('512 octets', '1,5 Ko', '14,2 Mo', '3 Go')
    """
    if size < 1024:
        return pluriel(round(size), "octet")
    value = float(size)
    for unit in ("Ko", "Mo", "Go", "To"):
        value /= 1024
        if value < 1024 or unit == "To":
            break
    text = f"{value:.1f}".removesuffix(".0").replace(".", ",")
    return f"{text} {unit}"


def duree(seconds: float) -> str:
    """A video's length as a French page writes it.

    >>> duree(42.4), duree(75.6)
    ('42 s', '1 min 16 s')
    """
    total = round(seconds)
    minutes, secs = divmod(total, 60)
    if minutes == 0:
        return f"{secs} s"
    return f"{minutes} min {secs:02d} s"


def file_stem(title: str) -> str:
    """A file or folder name from a title, safe on any USB key (FAT32, exFAT, NTFS) and in
    any program: ASCII letters and digits joined by dashes, case kept, at most
    :data:`STEM_LENGTH` characters cut between words, never a name Windows reserves.

    >>> file_stem("Différencier ses pratiques : l’école !")
    'Differencier-ses-pratiques-l-ecole'
    """
    # Accents are marks of their own once decomposed: not ASCII, dropped with the rest.
    if not title.isascii():
        title = unicodedata.normalize("NFKD", _spelt(title)).encode("ascii", "ignore").decode()
    ascii_only = title
    stem = _NOT_NAME.sub("-", ascii_only).strip("-")
    if len(stem) > STEM_LENGTH:
        cut = stem[: STEM_LENGTH + 1]
        stem = cut.rsplit("-", 1)[0] if "-" in cut else stem[:STEM_LENGTH]
    if not stem:
        return FALLBACK_STEM
    if stem.lower() in _RESERVED:
        return f"{stem}-{FALLBACK_STEM}"
    return stem


def _tag(item_id: str, *, whole: bool = False) -> str:
    kept = _NOT_NAME.sub("", item_id)
    return ((kept if whole else kept[:8]) or "x").lower()


def folder_names(entries: Iterable[Entry]) -> dict[str, str]:
    """Each video's folder name in a kit, from its title (:func:`file_stem`), by entry id.

    Titles that fold to the same name (``Évaluer`` and ``evaluer``: one name on a key, which
    ignores case) are told apart, each of them, by the start of its id after two dashes
    (``Evaluer--9c9de5e8``). :func:`file_stem` never writes two dashes in a row, so a name
    told apart can never be another title's plain name: adding a fiche may move a video to
    its told-apart name, but never hands a name a kit already shows to another video (a
    teacher's bookmark opens that video or nothing). A name depends on its video's title and
    id, and on which titles fold alike; never on the order of the fiches or on which videos
    are held.

    >>> names = folder_names([_entry("b", "Évaluer"), _entry("a", "evaluer"), _entry("c", "Lire")])
    >>> names["a"], names["b"], names["c"]
    ('evaluer--a', 'Evaluer--b', 'Lire')
    """
    wanted: dict[str, list[tuple[str, str]]] = {}
    for entry in entries:
        stem = file_stem(entry.title)
        wanted.setdefault(stem.lower(), []).append((entry.id, stem))
    names: dict[str, str] = {}
    for group in wanted.values():
        if len(group) == 1:
            item_id, stem = group[0]
            names[item_id] = stem
            continue
        tags = {item_id: _tag(item_id) for item_id, _ in group}
        if len(set(tags.values())) < len(tags):  # ids alike at their start: whole ids
            tags = {item_id: _tag(item_id, whole=True) for item_id, _ in group}
        if len(set(tags.values())) < len(tags):  # alike but for punctuation: their digests
            tags = {i: hashlib.sha256(i.encode()).hexdigest()[:12] for i, _ in group}
        for item_id, stem in group:
            names[item_id] = f"{stem}--{tags[item_id]}"
    return names


_LICENCES = (
    ("by-nc-nd", "Vous pouvez la partager telle quelle, sans usage commercial, en citant ses "
                 "auteurs ; sa modification n’est pas permise."),
    ("by-nc-sa", "Vous pouvez la partager et l’adapter, sans usage commercial, en citant ses "
                 "auteurs et en diffusant vos adaptations sous la même licence."),
    ("by-nc", "Vous pouvez la partager et l’adapter, sans usage commercial, en citant ses "
              "auteurs."),
    ("by-nd", "Vous pouvez la partager telle quelle, même à des fins commerciales, en citant "
              "ses auteurs ; sa modification n’est pas permise."),
    ("by-sa", "Vous pouvez la partager et l’adapter, même à des fins commerciales, en citant "
              "ses auteurs et en diffusant vos adaptations sous la même licence."),
    ("by", "Vous pouvez la partager et l’adapter, même à des fins commerciales, en citant ses "
           "auteurs."),
    ("cc0", "Elle est dans le domaine public : vous pouvez la réutiliser librement."),
    ("zero", "Elle est dans le domaine public : vous pouvez la réutiliser librement."),
)  # fmt: skip


def licence_summary(licence: Licence | None) -> str:
    """One French sentence saying what the licence allows."""
    if licence is None:
        return ""
    text = f"{licence.name} {licence.url or ''}".lower()
    text = re.sub(r"[\s_]+", "-", text)
    if "creativecommons" in text or re.search(r"\bcc-", text) or "cc0" in text:
        for key, sentence in _LICENCES:
            if re.search(rf"(^|[-/]){key}([-/]|$)", text):
                return sentence
    return "Consultez la licence pour savoir ce qu’elle permet."


def _entry(item_id: str, title: str) -> Entry:
    """An entry with only an id and a title, for the examples above."""
    from ..entry import Source, Video

    return Entry(item_id, title, None, None, Source("", ""), Video(None, None))
