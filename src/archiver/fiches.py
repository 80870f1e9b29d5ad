"""Read fiches: Markdown files with a YAML front matter describing one video each.

A fiche is validated as it is read and becomes an :class:`~archiver.entry.Entry`. Every problem
is a :class:`~archiver.errors.FicheError` naming the file, the field and the reason, so that a
user can fix a collection without reading a traceback.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import frontmatter
import yaml
from frontmatter.default_handlers import YAMLHandler

from .entry import Asset, Credit, Entry, JSONValue, Licence, PeerTubeRef, Source, Video
from .errors import FicheError
from .links import video_id
from .names import slugify
from .urls import url_problem

__all__ = [
    "FICHE_SUFFIX",
    "KNOWN_FIELDS",
    "MAX_FICHE_BYTES",
    "FicheFile",
    "find_fiches",
    "parse_fiche",
    "parse_fiche_text",
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
_HEADING = re.compile(r"^##[ \t]+(.+?)[ \t#]*$", re.M)
# `- **Scénario** : A, B` and `- **Scénario :** A, B`, as both typographies occur.
_CREDIT_LINE = re.compile(r"^\s*[-*+]\s+\*\*(?P<role>[^*]+?)\*\*\s*(?P<rest>.*)$")
_LINK = re.compile(r"^\[(?P<name>[^\]]+)\]\((?P<url>[^)\s]+)\)")
_NAME_SEPARATORS = re.compile(r"\s*[,;]\s*|\s+(?:et|and|&)\s+")


def _pick_safe_loader() -> type[yaml.SafeLoader]:
    # libyaml's C loader is ~10x faster than the pure-Python one python-frontmatter uses by
    # default, and just as safe: CSafeLoader constructs only plain YAML types.
    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return loader


class _NotAMapping(Exception):
    def __init__(self, found: object) -> None:
        super().__init__(type(found).__name__)
        self.found = found


class _SafeYAMLHandler(YAMLHandler):
    """python-frontmatter's YAML handler, with libyaml's safe loader and a mapping check."""

    loader = _pick_safe_loader()

    def load(self, fm: str, **kwargs: object) -> Any:
        data = yaml.load(fm, Loader=self.loader)  # noqa: S506 - a SafeLoader subclass
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise _NotAMapping(data)
        return data


_HANDLER = _SafeYAMLHandler()


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
        elif path.is_file():
            found.append(FicheFile(path, path.name))
        else:
            raise FicheError(path, None, "no such file or folder")
    return found


def _walk(root: Path) -> Iterator[FicheFile]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(FICHE_SUFFIX) and not name.startswith("."):
                path = Path(folder, name)
                yield FicheFile(path, path.relative_to(root).as_posix())


def parse_fiche(fiche: FicheFile | Path) -> Entry:
    """Read and validate one fiche file; raise :class:`FicheError` on any problem."""
    if isinstance(fiche, Path):
        fiche = FicheFile(fiche, fiche.name)
    path = fiche.path
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FICHE_BYTES + 1)
    except OSError as exc:
        raise FicheError(path, None, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_FICHE_BYTES:
        raise FicheError(path, None, f"larger than {MAX_FICHE_BYTES // 1024} KiB; not a fiche")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FicheError(
            path, None, f"not UTF-8 text (invalid byte at offset {exc.start})"
        ) from exc
    return parse_fiche_text(
        text, path=path, relpath=fiche.relpath, sha256=hashlib.sha256(data).hexdigest()
    )


def parse_fiche_text(text: str, *, path: Path, relpath: str, sha256: str) -> Entry:
    """Validate a fiche's text and build its entry; ``path`` is only used in messages."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    meta, body = _split(text, path)

    title = _text_field(meta, "title", path)
    if title is None or not title.strip():
        raise FicheError(path, "title", "missing required field")
    urls = {name: _url_field(meta, name, path) for name in URL_FIELDS}
    embed_url, video_url = urls["videoEmbedSrc"], urls["videoDLHref"]
    if embed_url is None and video_url is None:
        raise FicheError(
            path,
            "videoDLHref",
            "no video URL: the fiche needs videoDLHref or videoEmbedSrc",
        )
    peertube = _peertube_ref(embed_url, video_url, path)
    unknown = sorted(str(k) for k in meta if k not in KNOWN_FIELDS)
    if unknown:
        log.warning("%s: unknown front-matter field(s) kept as extra: %s", path, ", ".join(unknown))

    sections = _sections(body)
    transcript = sections.get("script", "")
    credits, notes, licence = _credits(sections.get("credits", ""), path)
    return Entry(
        id=peertube.uuid if peertube else slugify(Path(relpath).stem),
        title=title.strip(),
        area=_stripped(_text_field(meta, "area", path)),
        description=_stripped(_text_field(meta, "description", path)),
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
        extra={str(k): _jsonable(v) for k, v in meta.items() if k not in KNOWN_FIELDS},
    )


def _split(text: str, path: Path) -> tuple[dict[Any, Any], str]:
    stripped = text.lstrip()
    if not _HANDLER.detect(stripped):
        raise FicheError(path, "front matter", "missing: a fiche starts with a '---' line")
    if len(_HANDLER.FM_BOUNDARY.split(stripped, 2)) < 3:
        raise FicheError(path, "front matter", "not closed by a '---' line")
    # Lines before the front matter's first line, so YAML errors give the file's line number.
    offset = text[: len(text) - len(stripped)].count("\n") + 1
    try:
        meta, body = frontmatter.parse(text, handler=_HANDLER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + offset}" if mark else ""
        reason = exc.problem or exc.context or "invalid YAML"
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in reason:
            reason = f"{reason} (only plain YAML is allowed; tags are not)"
        raise FicheError(path, "front matter", f"malformed YAML{where}: {reason}") from exc
    except yaml.YAMLError as exc:
        raise FicheError(path, "front matter", f"malformed YAML: {exc}") from exc
    except _NotAMapping as exc:
        raise FicheError(
            path, "front matter", f"must be a mapping of fields, got {_kind(exc.found)}"
        ) from exc
    for key in meta:
        if not isinstance(key, str):
            raise FicheError(path, str(key), "field names must be text")
    return meta, body


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, dt.date):
        return "a date"
    return f"a {type(value).__name__}"


def _text_field(meta: Mapping[str, Any], name: str, path: Path) -> str | None:
    value = meta.get(name)
    if value is None or isinstance(value, str):
        return value
    raise FicheError(path, name, f"expected text, got {_kind(value)}")


def _stripped(value: str | None) -> str | None:
    return value.strip() if value is not None else None


def _url_field(meta: Mapping[str, Any], name: str, path: Path) -> str | None:
    value = _stripped(_text_field(meta, name, path))
    if not value:
        return None
    return _check_url(value, path, name)


def _check_url(value: str, path: Path, name: str) -> str:
    problem = url_problem(value)
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
        raise FicheError(path, "videoSize", f"expected a size in bytes, got {_kind(value)}")
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
    folded = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    return folded.strip().casefold()


def _sections(body: str) -> dict[str, str]:
    """Level-2 sections by folded heading (``Crédits`` → ``credits``), text as written."""
    sections: dict[str, str] = {}
    headings = list(_HEADING.finditer(body))
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(body)
        name = _fold(heading.group(1))
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
            names = tuple(n for n in _NAME_SEPARATORS.split(rest) if n)
            credits.append(Credit(role=role, names=names))
    return tuple(credits), tuple(notes), licence


def _licence(text: str, path: Path) -> Licence | None:
    link = _LINK.match(text)
    if link:
        url = _check_url(link.group("url"), path, "Crédits: Licence")
        return Licence(name=link.group("name").strip(), url=url)
    return Licence(name=text, url=None) if text else None


def _jsonable(value: object) -> JSONValue:
    """A YAML value as JSON can hold it (dates as ISO text, binary as base64)."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(str(_jsonable(v)) for v in value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)
