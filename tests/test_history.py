"""History, restore and provenance: ``archiver history``, ``restore``, ``export`` and the
audits ``status`` shows, on an archive made by real downloads from the loopback server.

The archive lives through what a librarian's does: two items fetched with a companion PDF,
one video changed upstream (a new version), the same bytes served again from a new URL (a
refresh), a pinned checksum that the server's bytes do not match (quarantined), an audit that
finds all intact, a stored file damaged on disk, an audit that finds it, and an older version
restored for kits. The PREMIS export is validated with lxml against the Library of Congress's
PREMIS 3.0 schema, vendored in ``tests/fixtures/premis/`` (see its README).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree

from archiver.archive import Archive
from archiver.catalog import Event, FileRecord, store_path
from archiver.cli import cli
from archiver.entry import Asset, Video
from archiver.fetch import DownloadSettings, Status, download
from archiver.manifest import Manifest
from archiver.premis import EVENT_TYPES

from .conftest import content_of, make_entry, sha256
from .peertube import FakeInstance
from .server import FileServer

FAST = DownloadSettings(retries=2, backoff_base=0.01, backoff_max=0.05, timeout=5.0)
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "premis"
SCHEMA = FIXTURES / "premis-v3-0.xsd"
SCHEMA_SHA256 = "03b8a77a20b32b882ad799e12262671d07ad18210c60233f4e613a1289491cba"
P = "{http://www.loc.gov/premis/v3}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"

OLD, NEW, OTHER = content_of(300_000, 1), content_of(300_000, 2), content_of(200_000, 3)
PDF = b"%PDF-1.7\n" + bytes(5_000)


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@dataclass(frozen=True)
class Built:
    """The archive of the story above, and what the test needs to know of it."""

    root: Path
    server: str  # the loopback server's origin, http://127.0.0.1:PORT
    first_audit: str  # item-b's audited_at after the audit that found it intact
    bad_pin: str


def _manifest(server: FileServer, video: str = "/v/a.mp4", pin: str | None = None) -> Manifest:
    return Manifest(
        entries=(
            make_entry(
                "item-a",
                server.url(video),
                video=Video(url=server.url(video), embed_url=None, sha256=pin),
                assets=(Asset("fiche_pdf", server.url("/d/a.pdf")),),
            ),
            make_entry("item-b", server.url("/v/b.mp4")),
        )
    )


def _files(root: Path) -> dict[tuple[str, str, int], FileRecord]:
    with Archive.existing(root) as archive:
        return {(r.item_id, r.role, r.version): r for r in archive.catalog.every_file()}


def _events(root: Path, item: str | None = None) -> list[Event]:
    with Archive.existing(root) as archive:
        return list(archive.catalog.events(item_id=item))


@pytest.fixture(scope="module")
def built(_file_server: FileServer, tmp_path_factory: pytest.TempPathFactory) -> Built:
    server = _file_server
    server.reset()
    root = tmp_path_factory.mktemp("history") / "archive"
    server.add("/v/a.mp4", OLD, change_to=NEW, change_after=1)
    server.add("/v/a2.mp4", NEW)
    server.add("/v/b.mp4", OTHER)
    server.add("/d/a.pdf", PDF, content_type="application/pdf")

    statuses = [o.status for o in download(_manifest(server), root, settings=FAST).outcomes]
    assert statuses == [Status.FETCHED] * 3
    changed = download(_manifest(server), root, settings=FAST, refresh_after=0)
    assert Status.CHANGED in [o.status for o in changed.outcomes]
    moved = download(_manifest(server, "/v/a2.mp4"), root, settings=FAST)
    assert [o.status for o in moved.outcomes if o.job.role == "video"] == [
        Status.FETCHED,
        Status.HELD,
    ]
    bad_pin = sha256(b"not these bytes")
    pinned = download(_manifest(server, "/v/a2.mp4", bad_pin), root, settings=FAST)
    assert Status.FAILED in [o.status for o in pinned.outcomes]

    assert run("verify", "--archive", root)[0] == 0
    first_audit = _files(root)[("item-b", "video", 1)].audited_at
    assert first_audit is not None
    damaged = root / store_path(sha256(OTHER))
    damaged.write_bytes(bytes(len(OTHER)))  # the same size: only the sha256 tells
    code, _, stderr = run("verify", "--archive", root)
    assert code == 1
    assert "corrupt" in stderr
    code, _, stderr = run("restore", "item-a", "--archive", root, "--version", "1")
    assert (code, stderr.count("\n")) == (0, 1), stderr
    assert server.errors == []
    return Built(root, server.url("").rstrip("/"), first_audit, bad_pin)


@pytest.fixture
def copy(built: Built, tmp_path: Path) -> Path:
    """A copy of the built archive, for a test that changes it."""
    target = tmp_path / "archive"
    shutil.copytree(built.root, target)
    return target


# -- archiver history --------------------------------------------------------------------------


def test_history_names_every_version_what_replaced_it_and_why(built: Built) -> None:
    code, stdout, stderr = run("history", "item-a", "--archive", built.root)
    assert (code, stderr) == (0, "")
    lines = stdout.splitlines()
    assert lines[0] == "item-a: Vidéo item-a"
    assert "video: 2 versions; kits get version 1, restored" in lines
    assert "fiche_pdf: 1 version; kits get version 1" in lines
    video = stdout[stdout.index("video: 2 versions") : stdout.index("Events (")]
    first, second = video.split("  version 2: ")
    assert "  version 1: " in first and "[restored, kits get it]" in first
    assert f"sha256     {sha256(OLD)}" in first
    assert f"source     {built.server}/v/a.mp4" in first
    assert "replaced   by version 2 " in first and ": upstream change" in first
    assert "[current]" in second.splitlines()[0]
    assert f"sha256     {sha256(NEW)}" in second
    assert f"the same bytes again from {built.server}/v/a2.mp4" in second
    assert "quarantined" in second and f"sha256 mismatch: expected {built.bad_pin}" in second
    events = _events(built.root, "item-a")
    assert f"Events ({len(events)}):" in lines
    timeline = lines[lines.index(f"Events ({len(events)}):") + 1 :]
    assert [line.split()[3].rstrip(":") for line in timeline] == [e.kind for e in events]
    assert "success  restore: kits get video version 1 (run " in timeline[-1]


def test_history_json_is_a_stable_document(built: Built) -> None:
    code, stdout, _ = run("history", "item-a", "--archive", built.root, "--json")
    assert code == 0
    document = json.loads(stdout)
    assert set(document) == {"format", "archive", "item", "title", "roles", "events"}
    assert (document["format"], document["item"], document["title"]) == (
        1,
        "item-a",
        "Vidéo item-a",
    )
    roles = {role["role"]: role for role in document["roles"]}
    assert set(roles) == {"fiche_pdf", "video"}
    video = roles["video"]
    assert (video["restored"], video["kits_get"]) == (1, 1)
    one, two = video["versions"]
    assert set(one) == {
        "version", "rendition", "resolution", "fetched_at", "checked_at", "sha256", "size",
        "url", "final_url", "content_type", "etag", "last_modified", "segments", "path",
        "view", "current", "restored", "kits_get", "held", "last_seen_intact",
        "last_audit_failed", "audit_failures", "refreshed", "replaced_by", "events",
    }  # fmt: skip
    assert (one["version"], one["sha256"], one["size"]) == (1, sha256(OLD), len(OLD))
    assert (one["current"], one["restored"], one["kits_get"], one["held"]) == (
        False,
        True,
        True,
        True,
    )
    assert one["url"] == f"{built.server}/v/a.mp4"
    assert one["path"] == store_path(sha256(OLD))
    assert one["replaced_by"]["version"] == 2
    assert one["replaced_by"]["reason"] == "upstream change"
    assert (two["version"], two["sha256"], two["current"], two["restored"]) == (
        2,
        sha256(NEW),
        True,
        False,
    )
    assert two["url"] == f"{built.server}/v/a2.mp4"  # its provenance, brought up to date
    assert [r["url"] for r in two["refreshed"]] == [f"{built.server}/v/a2.mp4"]
    assert two["replaced_by"] is None
    (quarantined,) = video["quarantined"]
    assert quarantined["reason"].startswith(f"sha256 mismatch: expected {built.bad_pin}")
    assert (built.root / quarantined["path"]).read_bytes() == NEW
    events = _events(built.root, "item-a")
    assert [e["id"] for e in document["events"]] == [e.id for e in events]
    assert [e["kind"] for e in document["events"]] == [
        "fetch", "fetch", "change", "refresh", "quarantine", "restore",
    ]  # fmt: skip
    by_id = {e["id"]: e for e in document["events"]}
    assert [by_id[i]["kind"] for i in one["events"]] == ["fetch", "restore"]
    assert [by_id[i]["kind"] for i in two["events"]] == ["change", "refresh"]


def test_history_names_a_failed_audit_and_the_last_date_seen_intact(built: Built) -> None:
    code, stdout, _ = run("history", "item-b", "--archive", built.root, "--json")
    assert code == 0
    (version,) = json.loads(stdout)["roles"][0]["versions"]
    assert version["last_audit_failed"] is True
    assert version["last_seen_intact"] == built.first_audit
    (failure,) = version["audit_failures"]
    assert failure["last_intact"] == built.first_audit
    assert failure["problem"].startswith(f"corrupt: sha256 is {sha256(bytes(len(OTHER)))}")
    code, text, _ = run("history", "item-b", "--archive", built.root)
    when = built.first_audit[:19].replace("T", " ") + "Z"
    assert f"last seen intact by an audit {when}" in text
    assert "      audit      FAILED " in text and f"; last seen intact {when}" in text


def test_history_of_one_role(built: Built) -> None:
    code, stdout, _ = run("history", "item-a", "--archive", built.root, "--role", "fiche_pdf")
    assert code == 0
    assert "fiche_pdf: 1 version" in stdout and "video:" not in stdout
    assert "Events (1):" in stdout


def test_history_of_an_unknown_item_is_one_line_naming_it(built: Built) -> None:
    code, stdout, stderr = run("history", "item-z", "--archive", built.root)
    assert (code, stdout) == (2, "")
    assert stderr == (
        f"Error: {built.root}: no item item-z in this archive (no file, no event);"
        f" 'archiver status --archive {built.root}' says what it holds\n"
    )


def test_history_of_no_archive_is_refused(tmp_path: Path) -> None:
    code, _, stderr = run("history", "item-a", "--archive", tmp_path / "none")
    assert code == 2
    assert "no archive here" in stderr
    assert not (tmp_path / "none").exists()


# -- archiver restore --------------------------------------------------------------------------


def _kits_get(root: Path, item: str = "item-a") -> tuple[int | None, int | None]:
    code, stdout, _ = run("history", item, "--archive", root, "--role", "video", "--json")
    assert code == 0
    (video,) = json.loads(stdout)["roles"]
    return video["restored"], video["kits_get"]


def test_restore_latest_and_restore_by_sha256(copy: Path) -> None:
    assert _kits_get(copy) == (1, 1)
    code, stdout, stderr = run("restore", "item-a", "--archive", copy, "--latest")
    assert (code, stdout) == (0, "")
    assert stderr == (
        "Restore: item-a (video): version 1 is restored no more; kits now get version 2, the"
        " current one; the next 'archiver package' or 'archiver sync' puts it in the kit\n"
    )
    assert _kits_get(copy) == (None, 2)
    code, _, stderr = run("restore", "item-a", "--archive", copy, "--sha256", sha256(OLD).upper())
    assert code == 0
    assert stderr.startswith(
        f"Restore: item-a (video): kits now get version 1 (sha256 {sha256(OLD)},"
    )
    assert _kits_get(copy) == (1, 1)
    restores = [e for e in _events(copy, "item-a") if e.kind == "restore"]
    assert [(e.version, e.detail.get("latest", False)) for e in restores] == [
        (1, False),
        (1, True),
        (1, False),
    ]
    with Archive.existing(copy) as archive:
        run_row = archive.catalog.last_run()
    assert run_row is not None
    assert (run_row.command, run_row.outcome, restores[-1].run_id) == ("restore", "ok", run_row.id)
    code, _, stderr = run("restore", "item-a", "--archive", copy, "--latest", "-q")
    assert (code, stderr) == (0, "")
    code, _, stderr = run("restore", "item-a", "--archive", copy, "--latest")
    assert stderr.startswith("Restore: item-a (video): no version was restored; kits get version 2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "9"], "{root}: item-a (video): no version 9; its versions are 1, 2\n"),
        (["--sha256", "0" * 64], "{root}: item-a (video): no sha256 " + "0" * 64 + "; its versions are 1, 2\n"),
        (["--sha256", "abc"], "--sha256 'abc': not a sha256 (64 hexadecimal digits)\n"),
        ([], "give one of --version N, --sha256 HEX or --latest\n"),
        (["--version", "1", "--latest"], "give one of --version N, --sha256 HEX or --latest\n"),
        (
            ["--version", "1", "--role", "audio"],
            "{root}: item-a (audio): no such file in this archive; 'archiver history item-a"
            " --archive {root}' lists what it holds\n",
        ),
    ],
)  # fmt: skip
def test_restore_errors_are_one_line_exit_2(copy: Path, args: list[str], message: str) -> None:
    code, stdout, stderr = run("restore", "item-a", "--archive", copy, *args)
    assert (code, stdout) == (2, "")
    assert stderr == "Error: " + message.format(root=copy)
    assert _kits_get(copy) == (1, 1)  # nothing changed


def test_restore_of_a_version_whose_bytes_are_gone_is_refused(copy: Path) -> None:
    (copy / store_path(sha256(OLD))).unlink()
    code, _, stderr = run("restore", "item-a", "--archive", copy, "--version", "1")
    assert code == 2
    assert stderr.startswith(f"Error: {copy / store_path(sha256(OLD))}: item-a (video): version 1")
    assert "is not held" in stderr


def test_restore_waits_for_no_other_run(copy: Path) -> None:
    with Archive.existing(copy) as holder, holder.locked():
        code, _, stderr = run("restore", "item-a", "--archive", copy, "--latest")
    assert code == 3
    assert stderr.startswith(f"Error: {copy} is locked by process {os.getpid()}\n")
    assert _kits_get(copy) == (1, 1)


# -- archiver export ---------------------------------------------------------------------------


def test_export_jsonl_has_one_object_per_event_with_its_version(built: Built) -> None:
    code, stdout, stderr = run("export", "--archive", built.root, "--format", "jsonl")
    assert (code, stderr) == (0, "")
    assert stdout.isascii()
    lines = [json.loads(line) for line in stdout.splitlines()]
    events = _events(built.root)
    assert len(lines) == len(events)
    assert [line["id"] for line in lines] == [e.id for e in events]
    files = _files(built.root)
    for line, event in zip(lines, events, strict=True):
        assert (line["kind"], line["item"], line["version"], line["outcome"]) == (
            event.kind,
            event.item_id,
            event.version,
            event.outcome,
        )
        record = files.get((str(event.item_id), str(event.role), event.version or 0))
        if record is None:
            assert "object" not in line
        else:
            assert line["object"]["sha256"] == record.sha256 == event.sha256
            assert (line["object"]["size"], line["object"]["path"]) == (record.size, record.path)
    kinds = [line["kind"] for line in lines]
    assert {"fetch", "change", "refresh", "quarantine", "audit", "restore"} <= set(kinds)
    quarantine = lines[kinds.index("quarantine")]
    assert (quarantine["role"], quarantine["outcome"]) == ("video", "failure")


def _premis(built: Built, tmp_path: Path) -> etree._ElementTree:
    out = tmp_path / "premis.xml"
    code, stdout, stderr = run("export", "--archive", built.root, "--format", "premis", "-o", out)
    events = _events(built.root)
    assert (code, stdout) == (0, "")
    assert stderr == f"Export: {len(events)} event(s) of {built.root} written to {out} (premis)\n"
    return etree.parse(str(out))


def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA)))


def test_the_vendored_schema_is_the_one_named_in_its_readme() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    assert SCHEMA_SHA256 in readme
    assert 'targetNamespace="http://www.loc.gov/premis/v3"' in SCHEMA.read_text(encoding="utf-8")


def test_premis_export_is_valid_premis_3(built: Built, tmp_path: Path) -> None:
    document = _premis(built, tmp_path)
    schema = _schema()
    assert schema.validate(document), schema.error_log
    root = document.getroot()
    assert (root.tag, root.get("version")) == (f"{P}premis", "3.0")
    # The order the schema requires: every object, then every event, then every agent.
    order = [child.tag.removeprefix(P) for child in root]
    assert order == sorted(order, key=["object", "event", "agent"].index)
    # The same document on standard output, byte for byte: an export is deterministic.
    result = CliRunner().invoke(
        cli, ["export", "--archive", str(built.root), "--format", "premis"], catch_exceptions=False
    )
    assert result.stdout_bytes == (tmp_path / "premis.xml").read_bytes()


def test_the_schema_check_catches_elements_out_of_order(built: Built, tmp_path: Path) -> None:
    """The validation above would pass on a schema that checks nothing: not so."""
    document = _premis(built, tmp_path)
    event = document.getroot().find(f"{P}event")
    assert event is not None
    kind, when = event.find(f"{P}eventType"), event.find(f"{P}eventDateTime")
    assert kind is not None and when is not None
    event.remove(when)
    event.insert(list(event).index(kind), when)  # the date before the type
    assert not _schema().validate(document)


def test_premis_export_holds_every_event_with_its_object_and_agents(
    built: Built, tmp_path: Path
) -> None:
    root = _premis(built, tmp_path).getroot()
    objects = {
        o.findtext(f"{P}objectIdentifier/{P}objectIdentifierValue"): o
        for o in root.iter(f"{P}object")
    }
    agents = {
        a.findtext(f"{P}agentIdentifier/{P}agentIdentifierValue"): a for a in root.iter(f"{P}agent")
    }
    events = {
        e.findtext(f"{P}eventIdentifier/{P}eventIdentifierValue"): e for e in root.iter(f"{P}event")
    }
    catalog = _events(built.root)
    assert list(events) == [f"event/{e.id}" for e in catalog]
    for event, recorded in zip(events.values(), catalog, strict=True):
        term = EVENT_TYPES[recorded.kind][0]
        assert event.findtext(f"{P}eventType") == term
        assert event.findtext(f"{P}eventDateTime") == recorded.at
        outcome = event.findtext(f"{P}eventOutcomeInformation/{P}eventOutcome")
        assert outcome == {"success": "success", "failure": "fail"}[recorded.outcome]
        links = event.findall(f"{P}linkingObjectIdentifier/{P}linkingObjectIdentifierValue")
        assert len(links) == 1 and links[0].text in objects, links
        linked = objects[links[0].text]
        if recorded.version is not None:
            assert linked.get(XSI_TYPE) == "premis:file"
            digest = linked.findtext(f"{P}objectCharacteristics/{P}fixity/{P}messageDigest")
            assert digest == recorded.sha256
        # ...and the object links back to the event
        back = [v.text for v in linked.iter(f"{P}linkingEventIdentifierValue")]
        assert f"event/{recorded.id}" in back
        agent_links = [v.text for v in event.iter(f"{P}linkingAgentIdentifierValue")]
        assert agent_links[0] == "archiver"
        assert all(link in agents for link in agent_links)
        if recorded.kind in ("fetch", "change", "refresh"):
            assert built.server in agent_links
    assert {e.findtext(f"{P}eventType") for e in events.values()} >= {
        "capture", "metadata modification", "quarantine", "fixity check",
    }  # fmt: skip
    archiver = agents["archiver"]
    assert archiver.findtext(f"{P}agentType") == "software"
    assert archiver.findtext(f"{P}agentVersion")
    assert agents[built.server].findtext(f"{P}agentType") == "organization"
    # One file object per stored version, with its fixity, size and format.
    files = _files(built.root)
    for (item, role, version), record in files.items():
        found = objects[f"file/{item}/{role}/{version}"]
        characteristics = found.find(f"{P}objectCharacteristics")
        assert characteristics is not None
        assert characteristics.findtext(f"{P}fixity/{P}messageDigest") == record.sha256
        assert characteristics.findtext(f"{P}size") == str(record.size)
        expected = "application/pdf" if role == "fiche_pdf" else "video/mp4"
        assert characteristics.findtext(f"{P}format/{P}formatDesignation/{P}formatName") == expected
        assert (
            found.findtext(f"{P}storage/{P}contentLocation/{P}contentLocationValue") == record.path
        )
    assert objects["file/item-a/video/2"].findtext(f"{P}originalName") == "video.mp4"
    assert objects["file/item-a/video/1"].findtext(f"{P}originalName") == "a.mp4"


def test_a_pruned_version_keeps_an_object_named_by_its_events(copy: Path, tmp_path: Path) -> None:
    """A prune deletes the rows of an item's files; its events stay, and so must the
    objects they link to."""
    with Archive.existing(copy) as archive, archive.locked():
        archive.retire_missing({"item-a"})
        assert [p.item_id for p in archive.prune("9999-01-01")] == ["item-b"]
    out = tmp_path / "premis.xml"
    assert run("export", "--archive", copy, "--format", "premis", "-o", out, "-q")[0] == 0
    document = etree.parse(str(out))
    schema = _schema()
    assert schema.validate(document), schema.error_log
    gone = [
        o for o in document.getroot().iter(f"{P}object")
        if o.findtext(f"{P}objectIdentifier/{P}objectIdentifierValue") == "file/item-b/video/1"
    ]  # fmt: skip
    (pruned,) = gone
    assert pruned.findtext(f"{P}objectCharacteristics/{P}fixity/{P}messageDigest") == sha256(OTHER)
    kinds = [e.findtext(f"{P}eventType") for e in document.getroot().iter(f"{P}event")]
    assert kinds[-2:] == ["deaccession", "deletion"]


def test_export_never_writes_through_a_link_nor_into_the_archive(
    built: Built, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    link = tmp_path / "export.xml"
    link.symlink_to(victim)
    code, _, stderr = run("export", "--archive", built.root, "--format", "premis", "-o", link)
    assert code == 2
    assert stderr == (
        f"Error: {link}: not a file archiver will write: a symbolic link; archiver does not"
        " write through links\n"
    )
    assert victim.read_text() == "mine" and link.is_symlink()
    inside = built.root / "catalog.sqlite"
    before = inside.read_bytes()
    code, _, stderr = run("export", "--archive", built.root, "--format", "jsonl", "-o", inside)
    assert code == 2
    assert "inside the archive" in stderr
    assert inside.read_bytes() == before


def test_export_replaces_a_file_whole(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    out.write_text("an older export\n")
    code, _, _ = run("export", "--archive", built.root, "--format", "jsonl", "-o", out, "-q")
    assert code == 0
    assert len(out.read_text().splitlines()) == len(_events(built.root))
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]  # no temporary left


_PEAK = """
import resource, sys
from archiver.cli import main
sys.argv = ["archiver", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _peak_kib(*args: str | Path) -> int:
    """The peak memory (resident, KiB) of ``archiver ARGS`` run in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *map(str, args)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.splitlines()[-1])


def test_export_streams_an_archive_of_100k_events(copy: Path, tmp_path: Path) -> None:
    """100,000 events are written as they are read: never all in memory at once. (Held
    whole, as records, they take some 100 MiB.)"""
    digest = sha256(NEW)
    db = sqlite3.connect(copy / "catalog.sqlite")
    with db:
        db.executemany(
            "INSERT INTO events (at, kind, item_id, role, version, sha256, outcome, detail)"
            " VALUES (?, 'refresh', 'item-a', 'video', 2, ?, 'success', ?)",
            (
                (
                    f"2026-12-01T00:00:00.{n:06d}Z",
                    digest,
                    json.dumps({"url": f"https://tube.example/v/{n}.mp4", "same_bytes": True}),
                )
                for n in range(100_000)
            ),
        )
    db.close()
    count = len(_events(copy))
    resting = _peak_kib("status", "--archive", copy)
    out = tmp_path / "premis.xml"
    exporting = _peak_kib("export", "--archive", copy, "--format", "premis", "-o", out, "-q")
    assert out.stat().st_size > 50 * 1024 * 1024  # what would have sat in memory
    assert exporting - resting < 24 * 1024, f"{exporting - resting} KiB more than status"
    with out.open(encoding="utf-8") as written:
        events = sum(1 for line in written if line == "  <premis:event>\n")
    assert events == count > 100_000


# -- archiver status ---------------------------------------------------------------------------


def test_status_shows_the_last_audits_and_what_failed_its_last(built: Built) -> None:
    code, stdout, _ = run("status", "--archive", built.root)
    assert code == 0
    lines = stdout.splitlines()
    start = lines.index("Last audits (2):")
    newest, oldest = lines[start + 1], lines[start + 2]
    total = len(OLD) + len(NEW) + len(OTHER) + len(PDF)
    assert newest.endswith(f": 4 of 4 files ({total / 1024:.1f} KiB), 1 problem(s)")
    assert oldest.endswith(f": 4 of 4 files ({total / 1024:.1f} KiB), all intact")
    when = built.first_audit[:19].replace("T", " ") + "Z"
    assert lines[start + 3 :] == [
        "Failing their last audit: 1",
        f"  item-b (video, version 1): corrupt: sha256 is {sha256(bytes(len(OTHER)))},"
        f" expected {sha256(OTHER)}; last seen intact {when}",
    ]
    status = json.loads(run("status", "--archive", built.root, "--json")[1])
    recent, failing = status["audit"]["recent"], status["audit"]["failing"]
    assert [
        (r["files"], r["of_files"], r["bytes"], r["problems"], r["outcome"]) for r in recent
    ] == [
        (4, 4, total, 1, "failure"),
        (4, 4, total, 0, "success"),
    ]
    assert [(f["item"], f["role"], f["version"], f["last_intact"]) for f in failing] == [
        ("item-b", "video", 1, built.first_audit)
    ]


def test_status_forgets_a_failure_once_an_audit_finds_it_intact(copy: Path) -> None:
    (copy / store_path(sha256(OTHER))).write_bytes(OTHER)  # mended from a backup
    assert run("verify", "--archive", copy, "--sample", "100")[0] == 0
    stdout = run("status", "--archive", copy)[1]
    assert "Failing their last audit" not in stdout
    assert "Last audits (3):" in stdout
    assert (
        ", a 100% sample), all intact"
        in stdout.splitlines()[stdout.splitlines().index("Last audits (3):") + 1]
    )
    status = json.loads(run("status", "--archive", copy, "--json")[1])
    assert status["audit"]["failing"] == []
    stdout = run("history", "item-b", "--archive", copy, "--json")[1]
    (version,) = json.loads(stdout)["roles"][0]["versions"]
    assert (version["last_audit_failed"], len(version["audit_failures"])) == (False, 1)


# -- renditions --------------------------------------------------------------------------------


def test_history_shows_each_rendition_with_its_own_current_version(
    server: FileServer, tmp_path: Path
) -> None:
    """A USB key's 360p and a LAN kit's 720p of one video: two renditions, each current, and
    neither replaced the other."""
    tube = FakeInstance(server, api_window=2.0)
    video = tube.publish(heights=(720, 360))
    (tmp_path / "fiches").mkdir()
    (tmp_path / "fiches" / f"{video.uuid}.md").write_text(video.fiche(), encoding="utf-8")
    archive = tmp_path / "archive"
    for height, kit in (("400", "usb"), ("800", "lan")):
        code, _, stderr = run(
            "sync", tmp_path / "fiches", "--archive", archive, "--kit", tmp_path / kit,
            "--retries", "0", "-q", "--max-height", height,
        )  # fmt: skip
        assert code == 0, stderr
    code, stdout, _ = run("history", video.uuid, "--archive", archive, "--role", "video", "--json")
    assert code == 0
    (role,) = json.loads(stdout)["roles"]
    versions = [
        (v["version"], v["rendition"], v["current"], v["replaced_by"], v["sha256"])
        for v in role["versions"]
    ]
    assert versions == [
        (1, 360, True, None, sha256(video.data[360])),
        (2, 720, True, None, sha256(video.data[720])),
    ]
    text = run("history", video.uuid, "--archive", archive, "--role", "video")[1]
    assert "video: 2 versions; kits get version 2" in text
    assert ", 360p [current]" in text and ", 720p [current, kits get it]" in text
    assert "replaced" not in text


# -- what a server's answer may hold -----------------------------------------------------------

HOSTILE = "bad\x1b[2J <b>&amp;</b> \u202eexe.pdf\x85 \x00end"


def test_exports_and_history_hold_any_text_safely(copy: Path, tmp_path: Path) -> None:
    """A reason that holds markup, a terminal's escape, a direction mark, a NUL: the PREMIS
    document stays valid and says it, a JSON line stays one line, the terminal sees none."""
    with Archive.existing(copy) as archive:
        archive.catalog.record_event(
            "quarantine",
            item_id="item-a",
            outcome="failure",
            detail={"role": "video", "reason": HOSTILE, "path": "quarantine/item-a/x"},
        )
    out = tmp_path / "premis.xml"
    assert run("export", "--archive", copy, "--format", "premis", "-o", out, "-q")[0] == 0
    document = etree.parse(str(out))
    schema = _schema()
    assert schema.validate(document), schema.error_log
    notes = [n.text for n in document.getroot().iter(f"{P}eventOutcomeDetailNote")]
    assert "bad\\x1b[2J <b>&amp;</b> \u202eexe.pdf\x85 \\x00end" in notes
    assert b"\x1b" not in out.read_bytes() and "\u202e".encode() not in out.read_bytes()
    code, stdout, _ = run("export", "--archive", copy, "--format", "jsonl")
    assert code == 0 and stdout.isascii()
    last = json.loads(stdout.splitlines()[-1])
    assert last["detail"]["reason"] == HOSTILE
    code, stdout, _ = run("history", "item-a", "--archive", copy)
    assert code == 0
    assert "\x1b" not in stdout and "\u202e" not in stdout and "\x85" not in stdout
    assert "bad\\x1b[2J <b>&amp;</b> \\u202eexe.pdf\\x85 \\x00end" in stdout
