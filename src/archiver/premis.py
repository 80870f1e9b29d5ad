"""The archive's provenance as PREMIS 3 XML: objects with fixity, events, agents, linked.

PREMIS (Preservation Metadata: Implementation Strategies) is the data dictionary libraries and
archives use to say what they hold and what happened to it; its XML schema is the Library of
Congress's (namespace ``http://www.loc.gov/premis/v3``, ``version="3.0"``). One document
describes the whole archive, in the order the schema requires (every ``object``, then every
``event``, then every ``agent``; each element's children in the schema's order):

- an ``intellectualEntity`` for the archive (what audits and upgrades concern), one for each
  item (its retirements, quarantines, prune), and a ``file`` for each stored version, with
  its SHA-256 fixity, size, format, original name, place in the store and the events that
  concern it. A version pruned from the catalog, still named by its events, keeps an object
  made from what the events say (its sha256), so that every link resolves;
- an ``event`` for each event of the catalog, its type a term of the Library of Congress's
  event type vocabulary (:data:`EVENT_TYPES`), linked to its object and to its agents;
- an ``agent`` for archiver (software) and for each web server files came from.

Written as it is made (:func:`write_premis`): an archive of 100,000 events is read in pages
and never held in memory; only the ids of its items and the names of its hosts are. The
standard library writes it (no XML package is needed to export), escaping every text; a
character XML cannot hold (a control character in a server's answer) is written ``\\xNN``.
"""

from __future__ import annotations

import functools
import json
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

from ._version import __version__
from .archive import Archive
from .catalog import Event, FileRecord
from .history import event_sentence, events_of, version_lookup
from .urls import redact

__all__ = ["EVENT_TYPES", "PREMIS_NS", "write_premis"]

PREMIS_NS = "http://www.loc.gov/premis/v3"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_LOCATION = "https://www.loc.gov/standards/premis/premis.xsd"
_VOCABULARY = "http://id.loc.gov/vocabulary/preservation"

# archiver's kind of event -> the Library of Congress's event type (term, code): see
# docs/history.md for why each.
EVENT_TYPES: dict[str, tuple[str, str]] = {
    "fetch": ("capture", "cap"),
    "change": ("capture", "cap"),
    "refresh": ("metadata modification", "mem"),
    "quarantine": ("quarantine", "qua"),
    "audit": ("fixity check", "fix"),
    "restore": ("metadata modification", "mem"),
    "retire": ("deaccession", "dea"),
    "prune": ("deletion", "del"),
    "upgrade": ("filename change", "fil"),
}
_OTHER_TYPE = ("modification", "mod")  # a kind a later archiver records, read by this one
_OUTCOMES = {"success": ("success", "suc"), "failure": ("fail", "fai")}
# The events whose bytes came from a web server: the server is one of their agents.
_FROM_THE_WEB = ("fetch", "change", "refresh")
_CAPTURES = ("fetch", "change")

Lookup = Callable[[str | None, str | None, int | None], FileRecord | None]

ARCHIVE_ID = "archive"
ARCHIVER_AGENT = "archiver"

# Characters XML 1.0 cannot hold at all, even as a reference; and those it can but that would
# drive a terminal showing the export (C1 controls, DEL, direction marks): written as refs.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_AS_REFERENCE = re.compile("[\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")


# What sends a text the slow way: XML's own marks, and every character above.
_SPECIAL = re.compile(
    '[&<>"\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]'
)


def _text(value: object) -> str:
    """``value`` as XML text: escaped, every character XML cannot hold written ``\\xNN``."""
    text = str(value)
    if not _SPECIAL.search(text):
        return text  # most texts: ids, dates, digests, plain URLs
    text = _NOT_XML.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)
    return _AS_REFERENCE.sub(lambda m: f"&#x{ord(m.group(0)):x};", escape(text))


@functools.lru_cache(maxsize=256)
def _attributes(attributes: tuple[tuple[str, str], ...]) -> str:
    """`` name="value"`` for each attribute (``xsi__type`` is ``xsi:type``); the same few
    come back for every event, made once."""
    found = []
    for name, value in attributes:
        text = _NOT_XML.sub(lambda m: f"\\x{ord(m.group(0)):02x}", value)
        text = _AS_REFERENCE.sub(lambda m: f"&#x{ord(m.group(0)):x};", quoteattr(text))
        found.append(f" {name.replace('__', ':')}={text}")
    return "".join(found)


def _term_attributes(vocabulary: str, code: str | None) -> tuple[tuple[str, str], ...]:
    """The attributes of a term of one of the Library of Congress's vocabularies."""
    attributes = [("authority", vocabulary), ("authorityURI", f"{_VOCABULARY}/{vocabulary}")]
    if code is not None:
        attributes.append(("valueURI", f"{_VOCABULARY}/{vocabulary}/{code}"))
    return tuple(attributes)


class _Writer:
    """PREMIS elements, indented, to a text stream: each top-level element (an object, an
    event, an agent) made in memory, then written whole, so that the stream sees a few
    large writes rather than many small ones."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.depth = 0
        self.parts: list[str] = []

    def open(self, name: str, **attributes: str) -> None:
        found = _attributes(tuple(attributes.items())) if attributes else ""
        self.parts.append(f"{'  ' * self.depth}<premis:{name}{found}>\n")
        self.depth += 1

    def close(self, name: str) -> None:
        self.depth -= 1
        self.parts.append(f"{'  ' * self.depth}</premis:{name}>\n")
        if self.depth <= 1 or len(self.parts) > 4096:
            self.out.write("".join(self.parts))
            self.parts.clear()

    def leaf(self, name: str, text: object, attributes: tuple[tuple[str, str], ...] = ()) -> None:
        found = _attributes(attributes) if attributes else ""
        self.parts.append(
            f"{'  ' * self.depth}<premis:{name}{found}>{_text(text)}</premis:{name}>\n"
        )

    def term(self, name: str, text: str, vocabulary: str, code: str | None) -> None:
        """A value of one of the Library of Congress's preservation vocabularies."""
        self.leaf(name, text, _term_attributes(vocabulary, code))

    def identifier(
        self,
        name: str,
        kind: str,
        value: str,
        role: tuple[str, str] | None = None,
        *,
        role_vocabulary: str = "",
    ) -> None:
        """``<nameIdentifier>``: its ``nameIdentifierType`` and ``…Value`` (``name`` is
        ``object``, ``linkingEvent``…), and, for the links that take one, a role: a term of
        ``role_vocabulary`` (and its code), or plain words when no vocabulary has one."""
        self.open(f"{name}Identifier")
        self.leaf(f"{name}IdentifierType", kind)
        self.leaf(f"{name}IdentifierValue", value)
        if role is not None:
            term, code = role
            if role_vocabulary:
                self.term(f"{name}Role", term, role_vocabulary, code or None)
            else:
                self.leaf(f"{name}Role", term)
        self.close(f"{name}Identifier")


# -- identifiers -------------------------------------------------------------------------------


def _item_id(item: str) -> str:
    return f"item/{item}"


def _file_id(item: str, role: str, version: int) -> str:
    return f"file/{item}/{role}/{version}"


def _event_id(event: Event) -> str:
    return f"event/{event.id}"


def _object_of(event: Event) -> str:
    """The object an event concerns: a version, an item, or the archive."""
    if event.item_id is None:
        return ARCHIVE_ID
    if event.role is not None and event.version is not None:
        return _file_id(event.item_id, event.role, event.version)
    return _item_id(event.item_id)


@functools.lru_cache(maxsize=1024)
def _origin(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, without credentials; ``None`` for no http(s) URL."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


# -- the document ------------------------------------------------------------------------------


@dataclass
class _Survey:
    """What a first read of the events finds: their items, their hosts, the last id."""

    items: set[str]
    hosts: set[str]
    last: int


def write_premis(archive: Archive, out: IO[str]) -> int:
    """Write the archive's PREMIS 3 document to ``out``, as it is made; the number of events.

    The events are read twice, in pages: first for the items and hosts they name (agents and
    objects come before events in PREMIS, and must exist for the links to resolve), then to
    write them. Events recorded after the first read began (a run working meanwhile) are
    left out, so the document describes one moment of the archive.
    """
    xml = _Writer(out)
    out.write("<?xml version='1.0' encoding='UTF-8'?>\n")
    out.write(
        f'<premis:premis xmlns:premis="{PREMIS_NS}" xmlns:xsi="{XSI_NS}"'
        f' xsi:schemaLocation="{PREMIS_NS} {SCHEMA_LOCATION}" version="3.0">\n'
    )
    xml.depth = 1
    lookup = version_lookup(archive)
    # The archive's own object first: its links to the archive's events are written during
    # the first read, which also gathers what the rest needs.
    xml.open("object", xsi__type="premis:intellectualEntity")
    xml.identifier("object", "local", ARCHIVE_ID)
    xml.leaf("originalName", archive.root.name or str(archive.root))
    survey = _Survey(items=set(), hosts=set(), last=0)
    for event in archive.catalog.events():
        survey.last = event.id
        if event.item_id is None:
            xml.identifier("linkingEvent", "local", _event_id(event))
        else:
            survey.items.add(event.item_id)
        for url in _sources(event, lookup):
            if (origin := _origin(url)) is not None:
                survey.hosts.add(origin)
    xml.close("object")
    files = archive.catalog.every_file()
    survey.items.update(record.item_id for record in files)
    files_by_item: dict[str, list[FileRecord]] = {}
    for record in files:
        files_by_item.setdefault(record.item_id, []).append(record)
    for item in sorted(survey.items):
        _write_item(xml, archive, item, files_by_item.get(item, []), survey.last)
    count = 0
    for event in events_of(archive, upto=survey.last):
        _write_event(xml, event, lookup)
        count += 1
    _write_agents(xml, survey.hosts)
    out.write("</premis:premis>\n")
    return count


def _sources(event: Event, lookup: Lookup) -> Iterator[str]:
    """The URLs an event's bytes came from (its URL, its final URL after redirects); for an
    event rebuilt when the catalog was upgraded, which has none, its version's."""
    if event.kind not in _FROM_THE_WEB:
        return
    found = [event.detail.get(key) for key in ("url", "final_url")]
    urls = [url for url in found if isinstance(url, str)]
    if not urls:
        record = lookup(event.item_id, event.role, event.version)
        urls = [record.url, record.final_url] if record is not None else []
    yield from dict.fromkeys(urls)


def _write_item(
    xml: _Writer, archive: Archive, item: str, records: list[FileRecord], last: int
) -> None:
    """The item's object, then one for each of its versions (recorded, or named by events).

    The item's events are read once, as they come: those of the item itself are linked at
    once, and of those of each version only the ids are kept (an item refreshed every night
    for years has thousands), for the version's object to link to.
    """
    xml.open("object", xsi__type="premis:intellectualEntity")
    xml.identifier("object", "local", _item_id(item))
    xml.leaf("originalName", item)
    by_version: dict[tuple[str, int], array[int]] = {}
    named: dict[tuple[str, int], str] = {}  # a version's sha256, as its events name it
    for event in archive.catalog.events(item_id=item):
        if event.id > last:
            break
        if event.role is None or event.version is None:
            xml.identifier("linkingEvent", "local", _event_id(event))
            continue
        key = (event.role, event.version)
        by_version.setdefault(key, array("q")).append(event.id)
        if event.sha256 is not None:
            named.setdefault(key, event.sha256)
    xml.close("object")
    recorded = {(r.role, r.version): r for r in records}
    for key in sorted(set(recorded) | set(by_version)):
        record = recorded.get(key)
        sha256 = record.sha256 if record is not None else named.get(key)
        _write_file(xml, item, key, record, sha256, by_version.get(key, array("q")))


def _write_file(
    xml: _Writer,
    item: str,
    key: tuple[str, int],
    record: FileRecord | None,
    sha256: str | None,
    events: array[int],
) -> None:
    """A version's object, in the schema's order: identifier, characteristics (fixity,
    size, format), original name, storage, relationship, links to its events."""
    role, version = key
    xml.open("object", xsi__type="premis:file")
    xml.identifier("object", "local", _file_id(item, role, version))
    xml.open("objectCharacteristics")
    xml.leaf("compositionLevel", 0)
    if sha256 is not None:
        xml.open("fixity")
        xml.term("messageDigestAlgorithm", "SHA-256", "cryptographicHashFunctions", "sha256")
        xml.leaf("messageDigest", sha256)
        xml.close("fixity")
    if record is not None:
        xml.leaf("size", record.size)
    xml.open("format")
    xml.open("formatDesignation")
    xml.leaf("formatName", format_name(role, record.content_type if record else None))
    xml.close("formatDesignation")
    if record is None:
        xml.leaf("formatNote", "no longer in the archive (pruned); known from its events")
    elif record.resolution:
        xml.leaf("formatNote", f"{record.resolution}p")
    xml.close("format")
    xml.close("objectCharacteristics")
    if record is not None:
        xml.leaf("originalName", original_name(record))
        xml.open("storage")
        xml.open("contentLocation")
        xml.leaf("contentLocationType", "archive path")
        xml.leaf("contentLocationValue", record.path)
        xml.close("contentLocation")
        xml.close("storage")
    xml.open("relationship")
    xml.term("relationshipType", "structural", "relationshipType", "str")
    xml.term("relationshipSubType", "is included in", "relationshipSubType", None)
    xml.open("relatedObjectIdentifier")
    xml.leaf("relatedObjectIdentifierType", "local")
    xml.leaf("relatedObjectIdentifierValue", _item_id(item))
    xml.close("relatedObjectIdentifier")
    xml.close("relationship")
    for number in events:
        xml.identifier("linkingEvent", "local", f"event/{number}")
    xml.close("object")


def _write_event(xml: _Writer, event: Event, lookup: Lookup) -> None:
    """One event, in the schema's order: identifier, type, date, detail, outcome, agents,
    object."""
    term, code = EVENT_TYPES.get(event.kind, _OTHER_TYPE)
    xml.open("event")
    xml.identifier("event", "local", _event_id(event))
    xml.term("eventType", term, "eventType", code)
    xml.leaf("eventDateTime", event.at)
    xml.open("eventDetailInformation")
    xml.leaf("eventDetail", f"archiver {event_sentence(event)}")
    xml.close("eventDetailInformation")
    detail = {"kind": event.kind, "run": event.run_id, **event.detail}
    for key in ("url", "final_url"):
        if isinstance(detail.get(key), str):
            detail[key] = redact(detail[key])
    xml.open("eventDetailInformation")
    xml.leaf("eventDetail", json.dumps(detail, sort_keys=True, ensure_ascii=False))
    xml.close("eventDetailInformation")
    outcome, outcome_code = _OUTCOMES.get(event.outcome, (event.outcome, ""))
    xml.open("eventOutcomeInformation")
    xml.term("eventOutcome", outcome, "eventOutcome", outcome_code or None)
    note = event.detail.get("problem") or event.detail.get("reason")
    if event.outcome == "failure" and isinstance(note, str):
        xml.open("eventOutcomeDetail")
        xml.leaf("eventOutcomeDetailNote", note)
        xml.close("eventOutcomeDetail")
    xml.close("eventOutcomeInformation")
    xml.identifier(
        "linkingAgent",
        "local",
        ARCHIVER_AGENT,
        ("executing program", "exe"),
        role_vocabulary="eventRelatedAgentRole",
    )
    for url in _sources(event, lookup):
        if (origin := _origin(url)) is not None:
            xml.identifier("linkingAgent", "URI", origin, ("source", ""))
    role = ("outcome", "out") if event.kind in _CAPTURES else ("source", "sou")
    xml.identifier(
        "linkingObject", "local", _object_of(event), role, role_vocabulary="eventRelatedObjectRole"
    )
    xml.close("event")


def _write_agents(xml: _Writer, hosts: set[str]) -> None:
    xml.open("agent")
    xml.identifier("agent", "local", ARCHIVER_AGENT)
    xml.leaf("agentName", "archiver")
    xml.term("agentType", "software", "agentType", "sof")
    xml.leaf("agentVersion", __version__)
    xml.leaf(
        "agentNote",
        "the release that wrote this document; the events are this release's or an earlier's",
    )
    xml.close("agent")
    for origin in sorted(hosts):
        xml.open("agent")
        xml.identifier("agent", "URI", origin)
        xml.leaf("agentName", urlsplit(origin).netloc)
        xml.term("agentType", "organization", "agentType", "org")
        xml.leaf("agentNote", "the web server the archive fetched files from")
        xml.close("agent")


# -- words for a version and an event ----------------------------------------------------------

# What each role's file is, as archiver checks it before keeping it.
_ROLE_FORMATS = {"video": "video/mp4", "audio": "audio/mp4", "preview": "image"}
_FAMILIES = {"video": "video/", "audio": "audio/", "preview": "image/"}


def format_name(role: str, content_type: str | None) -> str:
    """A version's format: the media type its server gave, when it is one of the kind the
    role's check accepts; else the role's own (what archiver checked the bytes to be).

    >>> format_name("video", "video/mp4; codecs=avc1"), format_name("video", "text/html")
    ('video/mp4', 'video/mp4')
    >>> format_name("fiche_pdf", None), format_name("caption_fr", "text/vtt")
    ('application/pdf', 'text/vtt')
    """
    if role.startswith("caption_"):
        expected, family = "text/vtt", "text/vtt"
    else:
        expected = _ROLE_FORMATS.get(role, "application/pdf")
        family = _FAMILIES.get(role, "application/pdf")
    given = (content_type or "").split(";")[0].strip().lower()
    return given if given.startswith(family) and "/" in given else expected


def original_name(record: FileRecord) -> str:
    """The name a version shows under in its item's folder, or the last part of its URL."""
    if record.view is not None:
        return record.view.rsplit("/", 1)[-1]
    with_path = urlsplit(redact(record.url)).path
    return unquote(with_path.rsplit("/", 1)[-1]) or redact(record.url)
