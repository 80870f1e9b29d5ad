"""Names that are safe as file and folder names on every filesystem a USB key may carry.

Ids become folder names in the archive and in kits, which end up on FAT32, exFAT or NTFS keys
opened by Windows, macOS and Linux. So an id is plain lowercase ASCII, has no separator or
leading dot, is at most ``MAX_NAME_LENGTH`` characters and is never a name Windows reserves.
Names taken from an input (a fiche's field names) are also shown in messages: :func:`shown_name`
makes them fit for one line.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

__all__ = [
    "MAX_NAME_LENGTH",
    "is_safe_id",
    "safe_filename",
    "shown_name",
    "shown_path",
    "slugify",
]

MAX_NAME_LENGTH = 100
FALLBACK_SLUG = "fiche"

# Windows refuses these as a file's base name, whatever the extension and case.
_WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_SAFE_ID = re.compile(rf"^[a-z0-9][a-z0-9-]{{0,{MAX_NAME_LENGTH - 1}}}$")


def slugify(text: str) -> str:
    """Turn any text into a safe id: ``"Différencier l'école"`` → ``"differencier-l-ecole"``.

    Accents are folded to ASCII (NFKD, then marks dropped); anything else becomes a dash.
    """
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NOT_SLUG.sub("-", folded.lower()).strip("-")
    slug = slug[:MAX_NAME_LENGTH].rstrip("-") or FALLBACK_SLUG
    if slug in _WINDOWS_RESERVED:
        slug = f"{slug}-{FALLBACK_SLUG}"
    return slug


def is_safe_id(text: str) -> bool:
    """Whether ``text`` may name a folder in the archive and in a kit as it is."""
    return bool(_SAFE_ID.match(text)) and text not in _WINDOWS_RESERVED


_EXTENSION = re.compile(r"^\.[a-z0-9]{1,8}$")


def safe_filename(name: str, *, default_stem: str, default_suffix: str = "") -> str:
    """A file name from untrusted text (a URL's last segment), safe on any USB key.

    The stem is slugified; the extension kept only when it is short and alphanumeric:
    ``"Vidéo 1080p.MP4"`` → ``"video-1080p.mp4"``, ``"../..%2f"`` → ``default_stem``.
    """
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    extension = f".{suffix.lower()}"
    if not _EXTENSION.match(extension):
        extension = default_suffix
    base = slugify(stem) if stem.strip() else default_stem
    if base == FALLBACK_SLUG and not any(c.isalnum() for c in stem):
        base = default_stem
    return base[: MAX_NAME_LENGTH - len(extension)].rstrip("-") + extension


def shown_name(text: str, *, limit: int = 40) -> str:
    r"""A name from an input, fit for one line of a message: what is not printable escaped, and
    cut after ``limit`` characters, so a hostile name can neither break the line nor flood it.

    >>> shown_name("a\nb\x1b[31m")
    'a\\nb\\x1b[31m'
    >>> shown_name("x" * 50, limit=5)
    'xxxxx…'
    """
    if len(text) > limit:
        text = f"{text[:limit]}…"
    return _escaped(text)


def shown_path(path: Path | str) -> str:
    r"""A path fit for one line of a message, whole: bytes that are not UTF-8 written ``\xe9``
    (not as the lone surrogates Python reads them as), what is not printable escaped.

    >>> shown_path(Path(os.fsdecode(b"fiches/caf\xe9\n.md")))
    'fiches/caf\\xe9\\n.md'
    """
    text = str(path)
    if not text.isprintable():
        text = os.fsencode(text).decode("utf-8", "backslashreplace")
    return _escaped(text)


def _escaped(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
