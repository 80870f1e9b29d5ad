"""The catalog: migrations by ``PRAGMA user_version``, rows by name, times that sort."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import archiver.catalog as catalog_module
import archiver.catalog.at_once as at_once_module
import archiver.catalog.schema as schema_module
from archiver.archive import CATALOG_LOST_HINT, Archive, FetchedFile
from archiver.catalog import SCHEMA_VERSION, Catalog, parse_time, utc_now
from archiver.cli import cli
from archiver.entry import Asset
from archiver.errors import ArchiveError
from archiver.manifest import Manifest, write_manifest

from .conftest import content_of, make_entry
from .server import FileServer

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def old_archive(root: Path, *, without_resolution: bool = False) -> Path:
    """An archive whose catalog the release before catalog versions made (tests/fixtures)."""
    root.mkdir(parents=True)
    script = (FIXTURES / "catalog-0.1.0.sql").read_text(encoding="utf-8")
    db = sqlite3.connect(root / "catalog.sqlite")
    db.executescript(script)
    if without_resolution:  # the first releases, before resolutions were chosen
        db.execute("ALTER TABLE files DROP COLUMN resolution")  # SQLite >= 3.35
    db.close()
    for version, data in ((1, b"first version"), (2, b"second version!")):
        folder = root / "media" / "differencier"
        path = folder / ("versions/1/u-720.mp4" if version == 1 else "u-720.mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_an_archive_of_the_previous_release_opens_and_is_migrated(tmp_path: Path) -> None:
    root = old_archive(tmp_path / "archive")
    assert user_version(root / "catalog.sqlite") == 0
    with Archive(root) as archive:
        versions = archive.versions("differencier", "video")
        assert [(r.version, r.current, r.size, r.resolution) for r in versions] == [
            (1, False, 13, 720),
            (2, True, 15, 720),
        ]
        assert versions[1].etag == '"abc2"'
        assert versions[0].path == "media/differencier/versions/1/u-720.mp4"
        # Times to the microsecond now, the old ones padded so that all sort together.
        assert versions[1].fetched_at.endswith(".000000Z")
        assert utc_now() > versions[1].fetched_at
        facts = archive.media_facts(versions[1].sha256)
        assert facts is not None
        assert (facts.duration, facts.height) == (12.5, 720)
        held = archive.held("differencier", "video")
        assert held is not None
        assert held.version == 2
    assert user_version(root / "catalog.sqlite") == SCHEMA_VERSION
    # The CLI reads the migrated archive: its run, its failure, nothing audited yet.
    result = CliRunner().invoke(cli, ["status", "--archive", str(root)])
    assert result.exit_code == 0, result.output
    assert "Last sync: sync started 2026-11-26T12:55:22.000000Z, failed (1 fetched, 1 failed)" in (
        result.output
    )
    assert "differencier, fiche_pdf): HTTP 404 Not Found" in result.output
    audit = CliRunner().invoke(cli, ["verify", "--archive", str(root)])
    assert audit.exit_code == 0, audit.output
    assert "Verify: 2 files" in audit.output


def test_the_first_releases_catalog_gains_its_resolution_column(tmp_path: Path) -> None:
    root = old_archive(tmp_path / "archive", without_resolution=True)
    with Archive(root) as archive:
        record = archive.current("differencier", "video")
        assert record is not None
        assert record.resolution is None
        assert record.version == 2


def test_opening_twice_migrates_once(tmp_path: Path) -> None:
    root = old_archive(tmp_path / "archive")
    Archive(root).close()
    db = sqlite3.connect(root / "catalog.sqlite")
    first = db.execute("SELECT fetched_at FROM files ORDER BY version").fetchall()
    db.close()
    Archive(root).close()
    db = sqlite3.connect(root / "catalog.sqlite")
    assert db.execute("SELECT fetched_at FROM files ORDER BY version").fetchall() == first
    db.close()
    assert first[0][0] == "2026-11-26T12:55:22.000000Z"


def test_a_failing_migration_leaves_the_catalog_at_the_version_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = old_archive(tmp_path / "archive")

    def broken(db: sqlite3.Connection) -> None:
        db.execute("UPDATE files SET size = 0")  # done, then the migration fails
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(schema_module, "MIGRATIONS", (*schema_module.MIGRATIONS[:1], broken))
    with pytest.raises(ArchiveError, match="cannot open the catalog: disk I/O error"):
        Archive(root)
    assert user_version(root / "catalog.sqlite") == 1  # the first migration held
    db = sqlite3.connect(root / "catalog.sqlite")
    assert db.execute("SELECT size FROM files ORDER BY version").fetchall() == [(13,), (15,)]
    db.close()


def test_a_catalog_from_a_newer_archiver_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    Archive(root).close()
    db = sqlite3.connect(root / "catalog.sqlite")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    result = CliRunner().invoke(cli, ["status", "--archive", str(root)])
    assert result.exit_code == 2
    assert result.output == (
        f"Error: {root / 'catalog.sqlite'}: cannot open the catalog: made by a newer archiver"
        f" (catalog version {SCHEMA_VERSION + 1}, this one knows {SCHEMA_VERSION});"
        " upgrade archiver\n"
    )


def test_a_new_catalog_is_at_the_latest_version(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        assert catalog.version == SCHEMA_VERSION
        assert catalog.integrity_problems() == []
    finally:
        catalog.close()


def test_times_sort_as_they_happen_within_a_second() -> None:
    stamps = [utc_now() for _ in range(200)]
    assert stamps == sorted(stamps)
    assert len(set(stamps)) > 1  # microseconds: two events of one second are told apart
    parsed = parse_time(stamps[0])
    assert parsed is not None
    assert parsed.tzinfo is dt.UTC
    assert catalog_module.format_time(parsed) == stamps[0]  # exact to the microsecond
    assert parse_time("yesterday") is None


def test_verify_names_a_catalog_that_fails_sqlites_integrity_check(tmp_path: Path) -> None:
    root = old_archive(tmp_path / "archive")
    Archive(root).close()
    # An index that no longer matches its table: the catalog opens, but is damaged.
    db = sqlite3.connect(root / "catalog.sqlite")
    db.execute("PRAGMA writable_schema=ON")
    db.execute(
        "UPDATE sqlite_master SET sql=replace(sql, 'current = 1', 'current = 0')"
        " WHERE name='files_current'"
    )
    db.commit()
    db.close()
    result = CliRunner().invoke(cli, ["verify", "--archive", str(root)])
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: {root / 'catalog.sqlite'}: the catalog is damaged:"
        " row 1 missing from index files_current\n"
    )
    assert "all intact" not in result.output


def damage(catalog: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with noise, as a failing disk or a bad copy would:
    a real damaged page, found by SQLite when it reads it."""
    db = sqlite3.connect(catalog)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,)).fetchone()
    db.close()
    with catalog.open("r+b") as stream:
        stream.seek((root - 1) * page_size)
        stream.write(bytes(range(256)) * (page_size // 256))


DAMAGED_LINE = "the catalog is damaged: database disk image is malformed"
DAMAGED_HINT_LINE = f"Hint: {catalog_module.DAMAGED_HINT}\n"


def test_a_damaged_catalog_page_is_one_clear_error_exit_2(tmp_path: Path) -> None:
    root = old_archive(tmp_path / "archive")
    Archive(root).close()
    catalog = root / "catalog.sqlite"
    damage(catalog, "files")
    for command in (["status"], ["verify"]):
        result = CliRunner().invoke(cli, [*command, "--archive", str(root)])
        assert (result.exit_code, result.stdout) == (2, ""), result.output
        lines = result.stderr.splitlines(keepends=True)
        assert lines[-2:] == [f"Error: {catalog}: {DAMAGED_LINE}\n", DAMAGED_HINT_LINE]
        assert "all intact" not in result.stderr
    entry = make_entry("differencier", "https://tube.example.org/download/videos/u-720.mp4")
    manifest = tmp_path / "m.json"
    write_manifest(Manifest(entries=(entry,)), manifest)
    result = CliRunner().invoke(cli, ["download", str(manifest), "--archive", str(root), "-q"])
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: {catalog}: {DAMAGED_LINE}\n{DAMAGED_HINT_LINE}",
    )


def test_verify_names_a_damaged_page_and_audits_the_files_it_can_still_list(
    tmp_path: Path,
) -> None:
    root = old_archive(tmp_path / "archive")
    Archive(root).close()
    damage(root / "catalog.sqlite", "runs")  # the files' pages are whole
    result = CliRunner().invoke(cli, ["verify", "--archive", str(root)])
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert errors[0] == f"Error: {root / 'catalog.sqlite'}: {DAMAGED_LINE}"
    assert errors[-1].startswith("Verify: 2 files (")
    assert errors[-1].endswith(": 1 problem(s)")


def test_the_catalogs_write_ahead_log_stays_small(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite")
    wal = tmp_path / "catalog.sqlite-wal"
    largest = 0
    try:
        catalog.record_items([("item", "Titre")])
        for _ in range(1500):  # 3000 transactions: SQLite's defaults would keep 4 MiB of log
            run = catalog.start_run("download")
            catalog.record_failures(run, [("item", "video", "https://x/" + "u" * 200, "r" * 200)])
            largest = max(largest, wal.stat().st_size)
    finally:
        catalog.close()
    page = 4096 + 24  # a frame: a page and its header
    assert largest <= catalog_module.WAL_SIZE_LIMIT + 16 * page, largest


# -- what the catalog says is checked before it is used ----------------------------------------

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def invoke(*args: str | Path) -> tuple[int, str]:
    """``archiver ARGS``: its exit code and its stderr."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stderr


def held_fiche(server: FileServer, tmp_path: Path) -> tuple[Path, Path]:
    """An archive holding one served video and its fiche's PDF; and its manifest."""
    server.add("/item-a.mp4", content_of(50_000, 1))
    server.add("/fiche.pdf", PDF, content_type="application/pdf")
    asset = Asset("fiche_pdf", server.url("/fiche.pdf"))
    manifest = tmp_path / "m.json"
    entry = make_entry("item-a", server.url("/item-a.mp4"), assets=(asset,))
    write_manifest(Manifest(entries=(entry,)), manifest)
    root = tmp_path / "archive"
    assert invoke("download", manifest, "--archive", root, "-q") == (0, "")
    return root, manifest


def set_rows(catalog: Path, sql: str, *params: object) -> None:
    db = sqlite3.connect(catalog)
    db.execute(sql, params)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    "path",
    [
        "../victim/fiche.pdf",
        "@VICTIM@/fiche.pdf",  # absolute
        "media/item-a/../../victim/fiche.pdf",
        "media/item-a/fiche.pdf\x00",
        "media/other-item/fiche.pdf",
        "catalog.sqlite",
    ],
)
def test_a_catalog_path_out_of_its_items_folder_is_a_damaged_catalog_never_used(
    server: FileServer, tmp_path: Path, path: str
) -> None:
    root, manifest = held_fiche(server, tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "fiche.pdf").write_bytes(b"a user's own file, not archiver's")
    path = path.replace("@VICTIM@", str(victim))
    catalog = root / "catalog.sqlite"
    set_rows(catalog, "UPDATE files SET path=? WHERE role='fiche_pdf'", path)
    damaged = (
        f"Error: {catalog}: the catalog is damaged: files ('item-a', 'fiche_pdf', version 1):"
        f" path {path!r} is not a file of media/item-a/\n"
        f"Hint: {catalog_module.ROW_HINT}\n"
    )
    kit = tmp_path / "kit"
    for command in (
        ["download", manifest, "--archive", root, "-q"],
        ["verify", "--archive", root, "-q"],
        ["package", manifest, "--archive", root, "-o", kit, "-q"],
        ["prune", "--archive", root, "--retired-before", "2999-01-01"],
    ):
        if command[0] == "prune":
            with Archive(root) as archive:
                archive.retire_missing(set())  # the download noted it in the collection again
        assert invoke(*command) == (2, damaged), command[0]
    assert (victim / "fiche.pdf").read_bytes() == b"a user's own file, not archiver's"
    assert (root / "media" / "item-a" / "video.mp4").exists()  # prune deleted nothing
    assert not kit.exists() or not list(kit.rglob("*.pdf"))


@pytest.mark.parametrize(
    ("sha", "path", "fault"),
    [
        ("ab" + "0" * 62, "../victim/poster.jpg", "path '../victim/poster.jpg' is not a file"),
        ("ab" + "0" * 62, "derived/../../victim/poster.jpg", "is not a file of derived/"),
        ("../../victim", None, "sha256 '../../victim' is not a sha256"),
    ],
)
def test_prune_never_deletes_by_a_derived_rows_path_out_of_the_archive(
    tmp_path: Path, sha: str, path: str | None, fault: str
) -> None:
    root = old_archive(tmp_path / "archive")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "poster.jpg").write_bytes(b"a user's own picture")
    Archive(root).close()
    set_rows(
        root / "catalog.sqlite",
        "INSERT INTO derived (sha256, kind, version, path, made_at) VALUES (?, 'poster', 1, ?, ?)",
        sha,
        path,
        utc_now(),
    )
    code, stderr = invoke("prune", "--archive", root, "--retired-before", "2999-01-01")
    assert code == 2
    assert stderr.startswith(f"Error: {root / 'catalog.sqlite'}: the catalog is damaged: derived (")
    assert fault in stderr
    assert (victim / "poster.jpg").read_bytes() == b"a user's own picture"


def test_prune_counts_the_files_it_deleted_not_those_the_catalog_lists(tmp_path: Path) -> None:
    root = old_archive(tmp_path / "archive")  # two versions: 13 and 15 bytes
    with Archive(root) as archive:
        archive.retire_missing(set())
    (root / "media" / "differencier" / "versions" / "1" / "u-720.mp4").unlink()  # lost
    result = CliRunner().invoke(
        cli, ["prune", "--archive", str(root), "--retired-before", "2999-01-01", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "would delete 1 file(s), 15 B" in result.stdout
    result = CliRunner().invoke(
        cli, ["prune", "--archive", str(root), "--retired-before", "2999-01-01"]
    )
    assert result.exit_code == 0, result.output
    assert "deleted 1 file(s), 15 B" in result.stdout
    assert "Prune: 1 item(s), 15 B deleted" in result.stderr
    assert not (root / "media" / "differencier").exists()
    with Archive(root) as archive:
        assert archive.versions("differencier", "video") == []


# -- a lost catalog is not a new archive -------------------------------------------------------


def lost_line(catalog: Path, how: str) -> str:
    return (
        f"Error: {catalog}: {how}, but media/ holds the files of an archive: a new catalog"
        " would forget every version and where it came from\n"
        f"Hint: {CATALOG_LOST_HINT}\n"
    )


@pytest.mark.parametrize("how", ["empty (0 bytes)", "missing"])
def test_a_lost_catalog_beside_held_media_is_refused_not_started_again(
    tmp_path: Path, how: str
) -> None:
    root = old_archive(tmp_path / "archive")
    Archive(root).close()
    catalog = root / "catalog.sqlite"
    for suffix in ("-wal", "-shm"):
        (root / f"catalog.sqlite{suffix}").unlink(missing_ok=True)
    if how == "missing":
        catalog.unlink()
    else:
        catalog.write_bytes(b"")
    manifest = tmp_path / "m.json"
    entry = make_entry("differencier", "https://tube.example.org/download/videos/u-720.mp4")
    write_manifest(Manifest(entries=(entry,)), manifest)
    for command in (
        ["status", "--archive", root],
        ["verify", "--archive", root],
        ["download", manifest, "--archive", root, "-q"],
        ["package", manifest, "--archive", root, "-o", tmp_path / "kit"],
        ["prune", "--archive", root, "--retired-before", "2999-01-01"],
    ):
        assert invoke(*command) == (2, lost_line(catalog, how)), command[0]
    assert catalog.exists() == (how != "missing")
    assert not catalog.exists() or catalog.stat().st_size == 0  # left for a backup to replace
    assert (root / "media" / "differencier" / "u-720.mp4").read_bytes() == b"second version!"


def test_a_new_archive_starts_in_a_missing_or_empty_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    begun = tmp_path / "begun"  # a run that died before its catalog had a byte
    (begun / "media" / "item-a").mkdir(parents=True)
    (begun / "catalog.sqlite").write_bytes(b"")
    for root in (tmp_path / "missing", empty, begun):
        with Archive(root) as archive:
            assert archive.catalog.version == SCHEMA_VERSION


# -- a run's many questions, one read ------------------------------------------------------------


def hold(archive: Archive, item_id: str, data: bytes) -> None:
    """``data`` committed as the current version of ``item_id``'s video."""
    part = archive.root / "partial" / f"{item_id}.part"
    part.write_bytes(data)
    url = f"https://x.org/{item_id}.mp4"
    digest = hashlib.sha256(data).hexdigest()
    fetched = FetchedFile(url, url, digest, len(data), None, None, None)
    archive.commit(item_id, "video", "video.mp4", part, fetched)


def statements(catalog: Catalog) -> list[str]:
    """Every SQL statement the catalog runs from now on, as it runs them."""
    ran: list[str] = []
    catalog._db.set_trace_callback(ran.append)
    return ran


@pytest.fixture
def three_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    """A locked archive holding three items' videos, whose catalog reads every file at
    once after two questions (instead of 64)."""
    monkeypatch.setattr(at_once_module, "READ_AT_ONCE_AFTER", 2)
    with Archive(tmp_path / "archive") as archive, archive.locked():
        for name in ("a", "b", "c"):
            archive.record_item(make_entry(name, f"https://x.org/{name}.mp4"))
            hold(archive, name, f"bytes of {name}".encode())
        yield archive


def test_many_questions_are_answered_from_one_read_while_nothing_changes(
    three_items: Archive,
) -> None:
    archive = three_items
    ran = statements(archive.catalog)
    for _ in range(3):
        for name in ("a", "b", "c"):
            held = archive.held(name, "video", f"https://x.org/{name}.mp4")
            assert held is not None
            assert held.size == len(f"bytes of {name}")
            assert archive.catalog.restored(name, "video") is None
    assert archive.held("missing", "video") is None
    # The first question asked of SQLite; at the second, one read of the files and one of
    # the restores, which answer every question after.
    assert len(ran) == 3, ran
    assert "FROM files ORDER BY item_id, role, version" in ran[1]


def test_a_replaced_file_a_restore_and_a_new_poster_are_seen_at_once(three_items: Archive) -> None:
    archive = three_items
    for _ in range(3):
        assert archive.held("a", "video") is not None  # read at once by now
    first = archive.held("a", "video")
    assert first is not None
    hold(archive, "a", b"bytes of a, new version")
    now = archive.held("a", "video")
    assert now is not None
    assert (now.version, now.size) == (2, len(b"bytes of a, new version"))
    assert [r.version for r in archive.versions("a", "video")] == [1, 2]
    for _ in range(3):
        archive.held("b", "video")
    archive.restore("a", version=1)
    restored = archive.for_kit("a")
    assert restored is not None
    assert restored.version == 1
    assert archive.catalog.restored_items() == {"a"}
    archive.restore_latest("a")
    latest = archive.for_kit("a")
    assert latest is not None
    assert latest.version == 2
    for _ in range(3):
        assert archive.media_facts(now.sha256) is None
    archive.record_media_facts(now.sha256, 12.5, 640, 360)
    facts = archive.media_facts(now.sha256)
    assert facts is not None
    assert facts.height == 360


def test_a_file_removed_from_the_disk_is_not_held_though_its_row_was_read_at_once(
    three_items: Archive,
) -> None:
    archive = three_items
    for _ in range(3):
        record = archive.held("b", "video")
    assert record is not None
    (archive.root / record.path).unlink()
    assert archive.held("b", "video") is None


def test_a_damaged_row_of_one_item_leaves_the_others_answered(three_items: Archive) -> None:
    archive = three_items
    with archive.catalog._write() as db:
        db.execute("UPDATE files SET path='../../victim' WHERE item_id='c'")
    for _ in range(3):
        assert archive.held("a", "video") is not None
    with pytest.raises(ArchiveError, match="the catalog is damaged"):
        archive.held("c", "video")


def test_without_the_lock_every_question_is_asked_of_the_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(at_once_module, "READ_AT_ONCE_AFTER", 2)
    with Archive(tmp_path / "archive") as archive:
        with archive.locked():
            archive.record_item(make_entry("a", "https://x.org/a.mp4"))
            hold(archive, "a", b"bytes of a")
        ran = statements(archive.catalog)
        for _ in range(5):
            assert archive.held("a", "video") is not None
        # Another process may write it: no answer is kept.
        assert len(ran) == 5


# -- entry.json, written when its entry changed ------------------------------------------------


def test_an_unchanged_entry_json_is_neither_encoded_nor_read_again(tmp_path: Path) -> None:
    entry = make_entry("a", "https://x.org/a.mp4")
    with Archive(tmp_path / "archive") as archive:
        archive.record_items([entry])
        path = archive.item_dir("a") / "entry.json"
        written = path.read_bytes()
        before = path.stat().st_mtime_ns
        archive.record_items([entry])
        assert path.stat().st_mtime_ns == before  # not written again
        # An edited fiche: its entry changes, and so does the file.
        archive.record_items([dataclasses.replace(entry, title="Un autre titre")])
        assert b"Un autre titre" in path.read_bytes()
        # A person's edit of the same size, or a file removed: written again.
        path.write_bytes(path.read_bytes().replace(b"Un autre titre", b"Un autre titrE"))
        archive.record_items([dataclasses.replace(entry, title="Un autre titre")])
        assert b"Un autre titre" in path.read_bytes()
        path.unlink()
        archive.record_items([entry])
        assert path.read_bytes() == written


def test_a_version_4_catalog_gains_its_entry_notes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "archive"
    entry = make_entry("a", "https://x.org/a.mp4")
    with monkeypatch.context() as patched:
        patched.setattr(schema_module, "MIGRATIONS", schema_module.MIGRATIONS[:4])
        patched.setattr(schema_module, "SCHEMA_VERSION", 4)
        with Archive(root) as archive:
            archive.catalog.record_items([("a", entry.title)])
    assert user_version(root / "catalog.sqlite") == 4
    with Archive(root) as archive:
        assert archive.catalog.version == SCHEMA_VERSION == 6
        assert archive.catalog.entry_notes() == {}  # none yet: the next run writes them
        archive.record_items([entry])
        (note,) = archive.catalog.entry_notes().values()
        found = (archive.item_dir("a") / "entry.json").stat()
        assert note.split(" ")[1:] == [
            str(found.st_size),
            str(found.st_mtime_ns),
            str(found.st_ctime_ns),
            str(found.st_ino),
        ]


def test_a_version_5_catalog_gains_its_count_of_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every writer of a version 6 catalog moves the count (triggers, not archiver's code):
    an older archiver refuses it, so none writes it without moving the count."""
    root = tmp_path / "archive"
    with monkeypatch.context() as patched:
        patched.setattr(schema_module, "MIGRATIONS", schema_module.MIGRATIONS[:5])
        patched.setattr(schema_module, "SCHEMA_VERSION", 5)
        with Archive(root) as archive:
            archive.catalog.record_items([("a", "A")])
    with Archive(root) as archive:
        first = archive.catalog.changes()
    db = sqlite3.connect(root / "catalog.sqlite")
    with db:
        db.execute("UPDATE items SET title = 'B' WHERE id = 'a'")  # any writer: a person too
    db.close()
    with Archive(root) as archive:
        moved = archive.catalog.changes()
        assert moved[0] == first[0] + 1 and moved[1] != first[1]
        archive.catalog.record_items([("a", "B")])  # the same title: only last_seen moves
        assert archive.catalog.changes() == moved


def test_parse_time_reads_only_the_two_forms_the_catalog_writes() -> None:
    moment = dt.datetime(2026, 11, 26, 3, 0, 0, 123456, tzinfo=dt.UTC)
    assert parse_time("2026-11-26T03:00:00.123456Z") == moment
    assert parse_time("2026-11-26T03:00:00Z") == moment.replace(microsecond=0)
    for text in ("2026-11-26", "2026-11-26T03:00:00+00:00", "2026-11-26T03:00:00.123Z",
                 "2026-13-26T03:00:00Z", "20261126T030000Z", " 2026-11-26T03:00:00Z", ""):  # fmt: skip
        assert parse_time(text) is None, text
