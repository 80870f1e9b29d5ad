"""Read fiches: Markdown files with a YAML front matter describing one video each.

A fiche is validated as it is read and becomes an :class:`~archiver.entry.Entry`. Every problem
is a :class:`~archiver.errors.FicheError` naming the file, the field and the reason, so that a
user can fix a collection without reading a traceback. What a valid fiche seems to hold by
mistake (a field name with a typo) or lacks (a licence) is a warning, one logged line naming
the file, never an error: a teacher's fiche still makes its page. Here is what the fields and
sections mean; loading the YAML itself safely is :mod:`archiver.front_matter`'s concern.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import logging
import os
import re
import stat
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .entry import (
    MAX_AREA_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    Asset,
    Credit,
    Entry,
    Licence,
    PeerTubeRef,
    Source,
    Video,
)
from .errors import FicheError
from .front_matter import as_json, load_front_matter, value_kind
from .links import video_id
from .names import shown_name, shown_path, slugify
from .urls import url_problem

__all__ = [
    "FICHE_SUFFIX",
    "KNOWN_FIELDS",
    "MAX_FICHE_BYTES",
    "FicheFile",
    "find_fiches",
    "parse_fiche",
    "parse_fiche_text",
    "read_fiche",
    "suggest_field",
    "warn_fiche",
]

log = logging.getLogger(__name__)

FICHE_SUFFIX = ".md"
MAX_FICHE_BYTES = 1024 * 1024

# Front-matter field → asset kind, for the companion files a fiche links.
ASSET_FIELDS = {"fichePdfHref": "fiche_pdf", "transcriptPdfHref": "transcript_pdf"}
URL_FIELDS = ("videoEmbedSrc", "videoDLHref", *ASSET_FIELDS)
TEXT_FIELDS = ("title", "area", "description")
# Pinned fixity of the video, for collections whose producer publishes it.
PIN_FIELDS = ("videoSha256", "videoSize")
KNOWN_FIELDS = frozenset((*TEXT_FIELDS, *URL_FIELDS, *PIN_FIELDS))

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# A level-2 heading, to the end of its line; whether it starts a line, and the trailing `#`s
# and blanks, are checked in Python. A pattern that trims them (`(.+?)[ \t#]*$`) backtracks
# quadratically on a long run of blanks, and one anchored with `^` is tried at every character,
# where a literal `##` lets the engine skip ahead (4 times faster on a real fiche).
_HEADING = re.compile(r"##[ \t]+([^\n]+)")
# `- **Scénario** : A, B` and `- **Scénario :** A, B`, as both typographies occur.
_CREDIT_LINE = re.compile(r"^\s*[-*+]\s+\*\*(?P<role>[^*]+?)\*\*\s*(?P<rest>.*)$")
_LINK = re.compile(r"^\[(?P<name>[^\]]+)\]\((?P<url>[^)\s]+)\)")
# Commas, semicolons and "et"/"and"/"&" between names, the blanks around them stripped from the
# names after: a pattern that takes the blanks (`\s*[,;]\s*`) is tried at every blank of a
# run and made splitting a long line of blanks quadratic.
_NAME_SEPARATORS = re.compile(r"[,;]|\s(?:et|and|&)\s")

# How many unknown field names a warning lists.
_SHOWN_FIELDS = 10
# An unknown field is taken for a typo of a known one when difflib's ratio of the two, case
# folded, is at least this: `tilte`, `titre`, `aera`, `descripton`, `videoEmbed` are (0.75 to
# 0.95), `video`, `sha256`, `desc`, `duree`, `tags` are not (0.71 and less).
_TYPO_RATIO = 0.75
# A name longer than this cannot reach that ratio with a known one (17 characters at most), and
# a fiche's unknown names past this many are not compared: a fiche of 1 MiB may hold 200,000.
_TYPO_MAX_CHARS = 30
_TYPO_MAX_NAMES = 100
# What a kit's page says of a video whose fiche names no licence (kit/templates/video.html).
_NO_LICENCE_IN_KIT = "Aucune licence n’est indiquée"


@dataclass(frozen=True)
class FicheFile:
    """A fiche found on disk, with the path the manifest records for it."""

    path: Path
    relpath: str


def find_fiches(paths: Iterable[Path]) -> list[FicheFile]:
    """Every ``*.md`` file named or found below the folders named, in a stable order.

    A file given by name is recorded by its name; a file found in a folder by its path inside
    that folder, so that a manifest does not depend on where the collection is checked out.
    Hidden files and folders are skipped; symbolic links to folders are not followed.
    """
    found: list[FicheFile] = []
    for path in paths:
        if path.is_dir():
            found.extend(_walk(path))
        elif path.exists():  # a pipe or a device too: parse_fiche says why it is refused
            found.append(FicheFile(path, path.name))
        else:
            raise FicheError(shown_path(path), None, "no such file or folder")
    return found


def _walk(root: Path) -> Iterator[FicheFile]:
    """What ``os.walk`` would give, top-down in name order, without its recursion: before
    Python 3.12 it recursed once a folder level, and a tree a thousand folders deep raised
    RecursionError."""
    # Each folder with its path inside ``root`` as the manifest writes it ("" or "a/b/"):
    # joined as text, as pathlib's relative_to took a third of the walk's time.
    pending = [(root, "")]
    while pending:
        folder, inside = pending.pop()
        try:
            with os.scandir(folder) as scan:
                found = sorted((entry.name, entry) for entry in scan)
        except OSError:
            continue  # as os.walk: a folder that cannot be listed is skipped
        subfolders = []
        for name, entry in found:
            if name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if not entry.is_symlink():  # links to folders are not followed
                    subfolders.append((folder / name, f"{inside}{name}/"))
            elif name.endswith(FICHE_SUFFIX):
                yield FicheFile(folder / name, f"{inside}{name}")
        pending.extend(reversed(subfolders))


def parse_fiche(fiche: FicheFile | Path) -> Entry:
    """Read and validate one fiche file; raise :class:`FicheError` on any problem."""
    if isinstance(fiche, Path):
        fiche = FicheFile(fiche, fiche.name)
    data = read_fiche(fiche)
    path = _shown(fiche.path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FicheError(
            path, None, f"not UTF-8 text (invalid byte at offset {exc.start})"
        ) from exc
    return parse_fiche_text(
        text, path=path, relpath=fiche.relpath, sha256=hashlib.sha256(data).hexdigest()
    )


def read_fiche(fiche: FicheFile) -> bytes:
    """A fiche's bytes, at most :data:`MAX_FICHE_BYTES`; raise :class:`FicheError` for a file
    that cannot be read, is not a regular file, or is larger."""
    try:
        # Opened without blocking: a pipe named *.md would otherwise hang the whole build
        # (and a cron job) until something writes to it.
        fd = os.open(fiche.path, os.O_RDONLY | os.O_NONBLOCK)
        with open(fd, "rb") as stream:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FicheError(
                    _shown(fiche.path), None, "not a regular file (a pipe or a device?)"
                )
            # As much as the file holds and a byte more: asking for 1 MiB allocates 1 MiB,
            # 20 µs of a fiche's 300. A file that grew meanwhile is read on, to the bound.
            data = stream.read(min(info.st_size, MAX_FICHE_BYTES) + 1)
            if len(data) > info.st_size:
                data += stream.read(MAX_FICHE_BYTES + 1 - len(data))
    except OSError as exc:
        raise FicheError(_shown(fiche.path), None, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_FICHE_BYTES:
        reason = f"larger than {MAX_FICHE_BYTES // 1024} KiB; not a fiche"
        raise FicheError(_shown(fiche.path), None, reason)
    return data


def parse_fiche_text(text: str, *, path: Path, relpath: str, sha256: str) -> Entry:
    """Validate a fiche's text and build its entry; ``path`` is only used in messages."""
    path = _shown(path)
    _check_unicode(text, path, relpath)
    text = text.removeprefix("\ufeff")
    if "\r" in text:  # one scan, where two replacements scanned every fiche twice (6 µs of 5 KB)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    meta, body = load_front_matter(text, path)

    title = _text_field(meta, "title", path, limit=MAX_TITLE_CHARS)
    if title is None or not title.strip():
        _refuse_typo(meta, ("title",), "title is required", path)
        raise FicheError(path, "title", "missing required field")
    urls = {name: _url_field(meta, name, path) for name in URL_FIELDS}
    embed_url, video_url = urls["videoEmbedSrc"], urls["videoDLHref"]
    if embed_url is None and video_url is None:
        needs = "the fiche needs videoDLHref or videoEmbedSrc"
        _refuse_typo(meta, ("videoDLHref", "videoEmbedSrc"), needs, path)
        raise FicheError(path, "videoDLHref", f"no video URL: {needs}")
    peertube = _peertube_ref(embed_url, video_url, path)

    sections = _sections(body)
    transcript = sections.get("script", "")
    credits, notes, licence = _credits(sections.get("credits", ""), path)
    entry = Entry(
        id=peertube.uuid if peertube else slugify(Path(relpath).stem),
        title=title.strip(),
        area=_stripped(_text_field(meta, "area", path, limit=MAX_AREA_CHARS)),
        description=_stripped(_text_field(meta, "description", path, limit=MAX_DESCRIPTION_CHARS)),
        source=Source(path=relpath, sha256=sha256),
        video=Video(
            url=video_url,
            embed_url=embed_url,
            sha256=_sha256_field(meta, path),
            size=_size_field(meta, path),
        ),
        peertube=peertube,
        assets=tuple(
            Asset(kind=kind, url=url)
            for name, kind in ASSET_FIELDS.items()
            if (url := urls[name]) is not None
        ),
        transcript=transcript,
        credits=credits,
        credit_notes=notes,
        licence=licence,
        extra={str(k): as_json(v) for k, v in meta.items() if k not in KNOWN_FIELDS},
    )
    _warn(path, entry)
    return entry


def warn_fiche(fiche: FicheFile, entry: Entry) -> None:
    """Say again what the parse of ``fiche`` warned of, for its ``entry`` taken from the cache.

    The warnings are made from the entry alone, when it is parsed as when it is cached, so
    a cached fiche gives exactly the warnings its parse gave, with no second copy to keep.
    """
    if entry.extra or entry.licence is None:  # else nothing to say: spare the path's text
        _warn(_shown(fiche.path), entry)


def suggest_field(name: str, absent: Collection[str]) -> str | None:
    """The field of ``absent`` (known fields a fiche lacks) that ``name`` is a typo of, if any.

    Only absent fields are offered: a fiche with a ``title`` and a ``titre`` means both.

    >>> suggest_field("tilte", KNOWN_FIELDS), suggest_field("videodlhref", KNOWN_FIELDS)
    ('title', 'videoDLHref')
    >>> suggest_field("duree", KNOWN_FIELDS), suggest_field("tilte", {"area"})
    (None, None)
    """
    if len(name) > _TYPO_MAX_CHARS:
        return None
    folded = {known.casefold(): known for known in absent}
    found = difflib.get_close_matches(name.casefold(), folded, n=1, cutoff=_TYPO_RATIO)
    return folded[found[0]] if found else None


def _refuse_typo(meta: Mapping[str, Any], wanted: Iterable[str], needs: str, path: Path) -> None:
    """Raise the error of a required field that is missing as the typo that left it so
    (``tilte:`` for ``title``), when an unknown field is one."""
    absent = [name for name in wanted if not str(meta.get(name) or "").strip()]
    unknown = [key for key in meta if key not in KNOWN_FIELDS][:_TYPO_MAX_NAMES]
    for key in unknown:
        known = suggest_field(key, absent)
        if known is not None:
            raise FicheError(
                path, shown_name(key), f"unknown field — did you mean {known}? ({needs})"
            )


def _present(entry: Entry) -> set[str]:
    """The known fields the fiche of ``entry`` gave a value (the others may be suggested)."""
    values = {
        "area": entry.area,
        "description": entry.description,
        "videoEmbedSrc": entry.video.embed_url,
        "videoDLHref": entry.video.url,
        "videoSha256": entry.video.sha256,
        "videoSize": entry.video.size,
    }
    kinds = {asset.kind for asset in entry.assets}
    assets = {name for name, kind in ASSET_FIELDS.items() if kind in kinds}
    return {"title", *assets, *(name for name, value in values.items() if value is not None)}


def _warn(path: Path, entry: Entry) -> None:
    """Log what a valid fiche lacks or holds by mistake, one line each: a field that looks
    like a typo of a known one, the other unknown fields (kept as ``extra``), no credits or
    no licence (the kit then tells teachers to ask the producer before reusing the video)."""
    unknown = sorted(entry.extra)
    if unknown:
        absent = set(KNOWN_FIELDS - _present(entry))  # each offered once: at most 9 lines
        rest = []
        for index, name in enumerate(unknown):
            known = suggest_field(name, absent) if index < _TYPO_MAX_NAMES else None
            if known is None:
                rest.append(name)
            else:
                absent.discard(known)
                log.warning(
                    "%s: %s: unknown field — did you mean %s? (kept as extra)",
                    path, shown_name(name), known,
                )  # fmt: skip
        if rest:
            shown = ", ".join(shown_name(name) for name in rest[:_SHOWN_FIELDS])
            more = f" and {len(rest) - _SHOWN_FIELDS} more" if len(rest) > _SHOWN_FIELDS else ""
            log.warning("%s: unknown front-matter field(s) kept as extra: %s%s", path, shown, more)
    if entry.licence is not None:
        return
    if entry.credits or entry.credit_notes:
        log.warning(
            '%s: ## Crédits: no licence line ("- **Licence** : [name](url)"); the kit will'
            ' say "%s"',
            path, _NO_LICENCE_IN_KIT,
        )  # fmt: skip
    else:
        log.warning(
            '%s: no credits and no licence (## Crédits is missing or empty); the kit will say "%s"',
            path, _NO_LICENCE_IN_KIT,
        )  # fmt: skip


def _shown(path: Path) -> Path:
    """The path as messages show it: a name with a newline or a Latin-1 byte stays one line."""
    shown = shown_path(path)
    return path if shown == str(path) else Path(shown)


def _check_unicode(text: str, path: Path, relpath: str) -> None:
    """Refuse what the manifest could not write as UTF-8: a file name that is not UTF-8 (a
    Latin-1 name, read by Python as lone surrogates), or text holding lone surrogates (only
    possible from a caller that did not decode bytes)."""
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError as exc:
        byte = os.fsencode(relpath[exc.start])[0]
        raise FicheError(
            path,
            "file name",
            f"not UTF-8 (byte 0x{byte:02x}); the manifest records it as text: rename the file",
        ) from exc
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise FicheError(
                path, None, f"not UTF-8 text (a lone surrogate at offset {exc.start})"
            ) from exc


def _text_field(
    meta: Mapping[str, Any], name: str, path: Path, *, limit: int = MAX_URL_CHARS
) -> str | None:
    """A text field, at most ``limit`` characters (by default a URL's bound, for the URL and
    checksum fields: their own checks say what else is wrong)."""
    value = meta.get(name)
    if value is None:
        return value
    if not isinstance(value, str):
        raise FicheError(path, name, f"expected text, got {value_kind(value)}")
    if len(value) > limit:
        raise FicheError(
            path, name, f"{len(value):,} characters long; at most {limit:,} are allowed"
        )
    return value


def _stripped(value: str | None) -> str | None:
    return value.strip() if value is not None else None


def _url_field(meta: Mapping[str, Any], name: str, path: Path) -> str | None:
    value = _stripped(_text_field(meta, name, path))
    if not value:
        return None
    return _check_url(value, path, name)


# A collection's fiches share their licence's URL, their headings and their credits' roles:
# each is checked or folded once a process, not once a fiche. Only short texts are kept, and
# at most 1,024 of each: fiches are input, and a hostile collection's long ones would
# otherwise hold up to a gigabyte.
_CACHED_CHARS = 300
_url_problem_cached = functools.lru_cache(maxsize=1024)(url_problem)


def _check_url(value: str, path: Path, name: str) -> str:
    problem = _url_problem_cached(value) if len(value) <= _CACHED_CHARS else url_problem(value)
    if problem:
        raise FicheError(path, name, problem)
    return value


def _sha256_field(meta: Mapping[str, Any], path: Path) -> str | None:
    value = _stripped(_text_field(meta, "videoSha256", path))
    if value is None:
        return None
    if not _SHA256.match(value.lower()):
        raise FicheError(path, "videoSha256", "expected 64 hexadecimal digits")
    return value.lower()


def _size_field(meta: Mapping[str, Any], path: Path) -> int | None:
    value = meta.get("videoSize")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FicheError(path, "videoSize", f"expected a size in bytes, got {value_kind(value)}")
    return value


def _peertube_ref(embed_url: str | None, video_url: str | None, path: Path) -> PeerTubeRef | None:
    refs = {}
    for name, url in (("videoEmbedSrc", embed_url), ("videoDLHref", video_url)):
        if url is None:
            continue
        parts = urlsplit(url)
        # Every link form of the instance (embed, watch, /w/, short or long id), else a UUID
        # anywhere in the path (a mirror's or a bucket's address of the file).
        found = video_id(parts.path) or next(
            (m.group(0).lower() for m in [_UUID.search(parts.path)] if m), None
        )
        if found:
            instance = f"{parts.scheme.lower()}://{parts.netloc.lower()}"
            refs[name] = PeerTubeRef(instance=instance, uuid=found)
    embed, download = refs.get("videoEmbedSrc"), refs.get("videoDLHref")
    if embed and download and embed.uuid != download.uuid:
        raise FicheError(
            path,
            "videoDLHref",
            f"names video {download.uuid} but videoEmbedSrc names {embed.uuid}",
        )
    # The embed page is served by the instance itself; downloads may come from object storage.
    return embed or download


def _fold(heading: str) -> str:
    return _fold_cached(heading) if len(heading) <= _CACHED_CHARS else _folded(heading)


def _folded(heading: str) -> str:
    folded = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    return folded.strip().casefold()


_fold_cached = functools.lru_cache(maxsize=1024)(_folded)


def _sections(body: str) -> dict[str, str]:
    """Level-2 sections by folded heading (``Crédits`` → ``credits``), text as written."""
    sections: dict[str, str] = {}
    headings = [h for h in _HEADING.finditer(body) if h.start() == 0 or body[h.start() - 1] == "\n"]
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(body)
        text = heading.group(1)
        name = _fold(text.rstrip(" \t#") or text[:1])
        sections.setdefault(name, body[heading.end() : end].strip("\n").rstrip())
    return sections


def _credits(text: str, path: Path) -> tuple[tuple[Credit, ...], tuple[str, ...], Licence | None]:
    credits: list[Credit] = []
    notes: list[str] = []
    licence: Licence | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _CREDIT_LINE.match(line)
        if not match:
            notes.append(line.strip())
            continue
        role = match.group("role").strip().rstrip(":").strip()
        rest = match.group("rest").strip().lstrip(":").strip()
        if _fold(role) in ("licence", "license"):
            licence = _licence(rest, path)
        else:
            names = tuple(name for part in _NAME_SEPARATORS.split(rest) if (name := part.strip()))
            credits.append(Credit(role=role, names=names))
    return tuple(credits), tuple(notes), licence


def _licence(text: str, path: Path) -> Licence | None:
    link = _LINK.match(text)
    if link:
        url = _check_url(link.group("url"), path, "Crédits: Licence")
        return Licence(name=link.group("name").strip(), url=url)
    return Licence(name=text, url=None) if text else None
