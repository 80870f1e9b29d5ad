"""Symbolic links inside the archive are never followed: nothing outside it is written,
replaced, removed or read through one.

A link among the archive's own folders (``media/``, ``partial/``…) or at its catalog refuses
the archive (exit 2, naming it, nothing touched); one deeper down, at an item's folder or a
file, fails that item (exit 1, naming it) and ``verify --archive`` names it as a problem.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.archive import LINK_HINT, LINK_REFUSED, Archive, Derived, FetchedFile
from archiver.catalog import store_path
from archiver.cli import cli
from archiver.entry import Asset
from archiver.errors import ArchiveError, StorageError
from archiver.manifest import Manifest, write_manifest

from .conftest import content_of, make_entry, sha256, snapshot
from .server import FileServer

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
ITEM = "item-a"


def run(*args: str | Path) -> tuple[int, str]:
    """``archiver ARGS``: its exit code and its stderr (stdout stays empty for these)."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.stdout == ""
    return result.exit_code, result.stderr


def collection(server: FileServer, tmp_path: Path) -> Path:
    """A manifest of one served video and its fiche's PDF."""
    server.add(f"/{ITEM}.mp4", content_of(50_000, 1))
    server.add("/fiche.pdf", PDF, content_type="application/pdf")
    asset = Asset("fiche_pdf", server.url("/fiche.pdf"))
    entry = make_entry(ITEM, server.url(f"/{ITEM}.mp4"), assets=(asset,))
    path = tmp_path / "m.json"
    write_manifest(Manifest(entries=(entry,)), path)
    return path


def victim(tmp_path: Path, **files: bytes) -> Path:
    """A folder outside the archive, holding a user's own files."""
    folder = tmp_path / "victim"
    folder.mkdir()
    for name, data in files.items():
        (folder / name.replace("_", ".")).write_bytes(data)
    return folder


def failure(server: FileServer, role: str, link: Path) -> str:
    url = server.url(f"/{ITEM}.mp4" if role == "video" else "/fiche.pdf")
    return f"Error: Vidéo {ITEM} ({ITEM}, {role}): {url}: {link}: {LINK_REFUSED}\n"


# -- an item's folder, a partial's folder: that item fails, named ------------------------------


def test_a_linked_item_folder_is_never_written_through(server: FileServer, tmp_path: Path) -> None:
    manifest, archive = collection(server, tmp_path), tmp_path / "archive"
    outside = victim(tmp_path, fiche_pdf=b"the user's own notes", video_mp4=b"the user's film")
    (archive / "media").mkdir(parents=True)
    link = archive / "media" / ITEM
    link.symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    code, stderr = run("download", manifest, "--archive", archive, "-q")
    assert (code, stderr) == (
        1,
        failure(server, "fiche_pdf", link) + failure(server, "video", link),
    )
    assert snapshot(outside) == before  # no file replaced, no entry.json written there
    assert server.requests() == []  # refused before a byte was asked for
    assert link.is_symlink()


def test_a_linked_partial_folder_is_neither_resumed_nor_removed(
    server: FileServer, tmp_path: Path
) -> None:
    manifest, archive = collection(server, tmp_path), tmp_path / "archive"
    sidecar = f'{{"url": "{server.url(f"/{ITEM}.mp4")}", "etag": "\\"x\\"", "length": null}}'
    outside = victim(tmp_path, video_part=b"a user's own file", video_json=sidecar.encode())
    (archive / "partial").mkdir(parents=True)
    link = archive / "partial" / ITEM
    link.symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    code, stderr = run("download", manifest, "--archive", archive, "-q")
    assert (code, stderr) == (
        1,
        failure(server, "fiche_pdf", link) + failure(server, "video", link),
    )
    assert snapshot(outside) == before
    assert not (archive / "media" / ITEM / "video.mp4").exists()


def behind_a_link(folder: Path, moved: Path) -> tuple[Path, Path]:
    """Move ``folder`` to ``moved`` and leave a link to it in its place."""
    folder.rename(moved)
    folder.symlink_to(moved, target_is_directory=True)
    return folder, moved


def test_verify_and_download_name_an_item_folder_moved_behind_a_link(
    server: FileServer, tmp_path: Path
) -> None:
    """media/<id> only shows the store's files: verify reads the store, and a download that
    would show them again names the link rather than writing through it."""
    manifest, archive = collection(server, tmp_path), tmp_path / "archive"
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    folder, moved = behind_a_link(archive / "media" / ITEM, tmp_path / "elsewhere")
    for view in moved.iterdir():
        view.unlink()  # gone from the view: the download would show them again
    before = snapshot(moved)
    code, stderr = run("verify", "--archive", archive)
    assert code == 0
    assert stderr.endswith(f"Verify: 2 files (48.9 KiB) in {archive}: all intact\n")
    asked = len(server.requests())
    code, stderr = run("download", manifest, "--archive", archive, "-q")
    assert (code, stderr) == (
        1,
        failure(server, "fiche_pdf", folder) + failure(server, "video", folder),
    )
    assert len(server.requests()) == asked
    assert snapshot(moved) == before


def test_package_takes_the_stored_bytes_never_what_a_linked_item_folder_holds(
    server: FileServer, tmp_path: Path
) -> None:
    manifest, archive = collection(server, tmp_path), tmp_path / "archive"
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    _, moved = behind_a_link(archive / "media" / ITEM, tmp_path / "elsewhere")
    for view in moved.iterdir():
        if view.suffix in (".mp4", ".pdf"):
            view.unlink()
            view.write_bytes(b"not the archive's bytes")
    before = snapshot(moved)
    code, _ = run("package", manifest, "--archive", archive, "-o", tmp_path / "kit")
    assert code == 0
    kit_files = {
        p.suffix: p.read_bytes()
        for p in (tmp_path / "kit").rglob("*")
        if p.suffix in (".mp4", ".pdf")
    }
    with Archive(archive) as store:
        assert kit_files[".mp4"] == (archive / store.held(ITEM, "video").path).read_bytes()
        assert kit_files[".pdf"] == (archive / store.held(ITEM, "fiche_pdf").path).read_bytes()
    assert snapshot(moved) == before


def test_prune_never_deletes_through_a_link(server: FileServer, tmp_path: Path) -> None:
    manifest, archive = collection(server, tmp_path), tmp_path / "archive"
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    folder, moved = behind_a_link(archive / "media" / ITEM, tmp_path / "elsewhere")
    with Archive(archive) as store:
        store.retire_missing(set())
    before = snapshot(moved)
    code, stderr = run("prune", "--archive", archive, "--retired-before", "2999-01-01")
    assert (code, stderr) == (1, f"Error: {folder}: {LINK_REFUSED}\n")
    assert snapshot(moved) == before
    with Archive(archive) as store:
        assert store.versions(ITEM, "video") != []  # still recorded: its files stay


# -- the archive's own folders and its catalog: the archive is refused -------------------------


@pytest.mark.parametrize("name", ["media", "store", "partial", "quarantine", "derived", "peertube"])
def test_a_linked_archive_folder_refuses_the_archive(
    server: FileServer, tmp_path: Path, name: str
) -> None:
    manifest, archive = collection(server, tmp_path), tmp_path / "archive"
    outside = victim(tmp_path)
    archive.mkdir()
    (archive / name).symlink_to(outside, target_is_directory=True)
    code, stderr = run("download", manifest, "--archive", archive, "-q")
    assert (code, stderr) == (2, f"Error: {archive / name}: {LINK_REFUSED}\nHint: {LINK_HINT}\n")
    assert snapshot(outside) == {}
    assert server.requests() == []


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
def test_a_linked_catalog_is_refused_and_its_target_untouched(tmp_path: Path, suffix: str) -> None:
    archive = tmp_path / "archive"
    Archive(archive).close()
    outside = victim(tmp_path, settings_db=b"a user's own file")
    catalog = archive / f"catalog.sqlite{suffix}"
    catalog.unlink(missing_ok=True)
    catalog.symlink_to(outside / "settings.db")
    code, stderr = run("status", "--archive", archive)
    assert code == 2
    assert stderr.startswith(
        f"Error: {catalog}: not usable as the archive's catalog: a symbolic link"
    )
    assert (outside / "settings.db").read_bytes() == b"a user's own file"


# -- every place the archive writes ------------------------------------------------------------


def fetched(data: bytes) -> FetchedFile:
    url = "https://x.org/fiche.pdf"
    return FetchedFile(url, url, hashlib.sha256(data).hexdigest(), len(data), None, None, None)


def test_a_new_version_never_retires_the_old_one_through_a_link(tmp_path: Path) -> None:
    outside = victim(tmp_path)
    with Archive(tmp_path / "archive") as archive:
        archive.record_item(make_entry(ITEM, "https://x.org/v.mp4"))
        part, _ = archive.partial_paths(ITEM, "fiche_pdf")
        part.parent.mkdir(parents=True)
        part.write_bytes(PDF)
        archive.commit(ITEM, "fiche_pdf", "fiche.pdf", part, fetched(PDF))
        newer = PDF + b"%newer\n"
        link = (archive.root / store_path(sha256(newer))).parent
        link.symlink_to(outside, target_is_directory=True)
        part.write_bytes(newer)
        with pytest.raises(StorageError) as refused:
            archive.commit(ITEM, "fiche_pdf", "fiche.pdf", part, fetched(newer))
        assert refused.value.message == f"{link}: {LINK_REFUSED}"
        assert (archive.item_dir(ITEM) / "fiche.pdf").read_bytes() == PDF  # still current
        assert part.read_bytes() == newer  # kept for a run that can store it
    assert snapshot(outside) == {}


def test_bad_bytes_are_never_quarantined_through_a_link(tmp_path: Path) -> None:
    outside = victim(tmp_path)
    with Archive(tmp_path / "archive") as archive:
        part, _ = archive.partial_paths(ITEM, "fiche_pdf")
        part.parent.mkdir(parents=True)
        part.write_bytes(b"<html>a login page</html>")
        link = archive.quarantine_dir / ITEM
        link.symlink_to(outside, target_is_directory=True)
        with pytest.raises(StorageError, match="a symbolic link"):
            archive.quarantine(ITEM, "fiche.pdf", part)
        assert part.exists()
    assert snapshot(outside) == {}


def test_derived_files_are_never_made_or_read_through_a_link(tmp_path: Path) -> None:
    sha = "ab" + "0" * 62
    name = f"{sha}-poster-v1.jpg"
    outside = victim(tmp_path)
    (outside / name).write_bytes(b"not archiver's")
    with Archive(tmp_path / "archive") as archive:
        (archive.root / "derived").mkdir()
        link = archive.root / "derived" / "ab"
        link.symlink_to(outside, target_is_directory=True)
        with pytest.raises(StorageError) as refused:
            archive.derived_path(sha, "poster-v1.jpg")
        assert refused.value.message == f"{link}: {LINK_REFUSED}"
        made = Derived(sha, "poster", 1, f"derived/ab/{name}", sha, 14, None, None, None)
        archive.record_derived(made)
        assert archive.derived(sha, "poster", 1) is None  # not found: made again, or refused
        with pytest.raises(ArchiveError, match="not one safe path segment"):
            archive.derived_path("../../" + "0" * 58, "poster-v1.jpg")
    assert (outside / name).read_bytes() == b"not archiver's"


def test_the_archive_root_itself_may_be_a_link(server: FileServer, tmp_path: Path) -> None:
    """The user named it: a link there is where the user keeps the archive."""
    manifest = collection(server, tmp_path)
    (tmp_path / "disk").mkdir()
    (tmp_path / "archive").symlink_to(tmp_path / "disk", target_is_directory=True)
    assert run("download", manifest, "--archive", tmp_path / "archive", "-q") == (0, "")
    assert run("verify", "--archive", tmp_path / "archive", "-q") == (0, "")
    assert (tmp_path / "disk" / "media" / ITEM / "fiche.pdf").read_bytes() == PDF
