"""The archive's store: bytes kept once per sha256, renditions with their own history, an
archive of the previous release moved into the store in place, pins that select a held
version, restores; each against real files, a real catalog and the test server."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from archiver.archive import Archive, FetchedFile
from archiver.catalog import SCHEMA_VERSION, Catalog, store_path
from archiver.choose import kit_overhead
from archiver.cli import cli
from archiver.errors import ArchiveError

from .conftest import kit_folder, make_entry, sha256, tagged
from .media import make_mp4
from .peertube import FakeInstance, PublishedVideo
from .server import FileServer
from .test_catalog import old_archive

FIRST, SECOND = b"first version", b"second version!"


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def stored_files(root: Path) -> list[Path]:
    """Every file of the store (no link followed)."""
    return sorted(p for p in (root / "store").rglob("*") if p.is_file() and not p.is_symlink())


def rows(root: Path) -> list[dict[str, object]]:
    db = sqlite3.connect(root / "catalog.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM files ORDER BY item_id, role, version")]
    finally:
        db.close()


def events(root: Path, kind: str) -> list[dict[str, object]]:
    db = sqlite3.connect(root / "catalog.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return [
            dict(r) for r in db.execute("SELECT * FROM events WHERE kind=? ORDER BY id", (kind,))
        ]
    finally:
        db.close()


# -- an archive of the previous release, moved into the store in place ---------------------------


def previous_release(root: Path) -> Path:
    """The previous release's layout, with the same bytes held twice: version 1 came back as
    version 3 (the upstream file was reverted), kept by that release as a second copy."""
    old_archive(root)
    folder = root / "media" / "differencier"
    (folder / "versions" / "2").mkdir(parents=True)
    (folder / "u-720.mp4").rename(folder / "versions" / "2" / "u-720.mp4")
    (folder / "u-720.mp4").write_bytes(FIRST)
    db = sqlite3.connect(root / "catalog.sqlite")
    db.execute(
        "UPDATE files SET current=0, path='media/differencier/versions/2/u-720.mp4' WHERE version=2"
    )
    db.execute(
        "INSERT INTO files SELECT item_id, role, 3, 1, 'media/differencier/u-720.mp4', url,"
        " final_url, sha256, size, etag, last_modified, content_type, fetched_at, checked_at,"
        " audited_at, resolution FROM files WHERE version=1"
    )
    db.commit()
    db.close()
    return root


def test_an_archive_of_the_previous_release_moves_into_the_store_with_every_version(
    tmp_path: Path,
) -> None:
    root = previous_release(tmp_path / "archive")
    with Archive(root) as archive, archive.locked():
        versions = archive.versions("differencier", "video")
        assert [(r.version, r.current, r.path, r.view) for r in versions] == [
            (1, False, store_path(sha256(FIRST)), None),
            (2, False, store_path(sha256(SECOND)), None),
            (3, True, store_path(sha256(FIRST)), "media/differencier/u-720.mp4"),
        ]
        assert [(root / r.path).read_bytes() for r in versions] == [FIRST, SECOND, FIRST]
        held = archive.held("differencier", "video")
        assert held is not None and held.version == 3
    # Each sha256 once: the second copy of version 1 is gone, nothing else is.
    assert [p.name for p in stored_files(root)] == sorted([sha256(FIRST), sha256(SECOND)])
    view = root / "media" / "differencier" / "u-720.mp4"
    assert os.path.samefile(view, root / store_path(sha256(FIRST)))
    assert not (root / "media" / "differencier" / "versions").exists()
    (upgrade,) = events(root, "upgrade")
    assert '"versions": 3' in str(upgrade["detail"])
    with Archive(root) as archive, archive.locked():  # once: a second open moves nothing
        pass
    assert len(events(root, "upgrade")) == 1


def test_a_move_into_the_store_cut_short_is_finished_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = previous_release(tmp_path / "archive")

    def killed(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt  # the run dies after linking, before the catalog says so

    with monkeypatch.context() as patch:
        patch.setattr(Catalog, "move_to_store", killed)
        with pytest.raises(KeyboardInterrupt), Archive(root) as archive:
            archive.lock()
    # Nothing lost: the old layout still holds every version where its catalog says.
    for row in rows(root):
        assert (root / str(row["path"])).stat().st_size == row["size"]
    with Archive(root) as archive, archive.locked():
        versions = archive.versions("differencier", "video")
        assert [(root / r.path).read_bytes() for r in versions] == [FIRST, SECOND, FIRST]
    assert len(stored_files(root)) == 2


def test_a_copy_whose_bytes_differ_from_the_store_is_left_where_it_is(tmp_path: Path) -> None:
    """Two copies said to have one sha256 but differing: one of them rotted. Neither is
    deleted; the catalog keeps the old path, and verify names the bad one."""
    root = previous_release(tmp_path / "archive")
    (root / "media/differencier/u-720.mp4").write_bytes(b"first versioN")  # rotted, same size
    with Archive(root) as archive, archive.locked():
        version_3 = archive.catalog.file_version("differencier", "video", 3)
    assert version_3 is not None and version_3.path == "media/differencier/u-720.mp4"
    assert (root / store_path(sha256(FIRST))).read_bytes() == FIRST
    code, _, stderr = run("verify", "--archive", root, "-q")
    assert code == 1
    assert "media/differencier/u-720.mp4: corrupt" in stderr


# -- the store: bytes once per sha256 ------------------------------------------------------------


def commit(archive: Archive, item: str, data: bytes, *, url: str, resolution: int | None) -> None:
    part, _ = archive.partial_paths(item, "video")
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data)
    fetched = FetchedFile(
        url=url,
        final_url=url,
        sha256=sha256(data),
        size=len(data),
        etag=None,
        last_modified=None,
        content_type="video/mp4",
        resolution=resolution,
    )
    name = f"video-{resolution}p.mp4" if resolution else "video.mp4"
    archive.commit(item, "video", name, part, fetched)


def test_the_same_bytes_are_stored_once_and_pruning_one_item_keeps_the_other(
    tmp_path: Path,
) -> None:
    root = tmp_path / "archive"
    with Archive(root) as archive, archive.locked():
        for item in ("item-a", "item-b"):
            archive.record_item(make_entry(item, f"https://x.org/{item}.mp4"))
            commit(archive, item, FIRST, url=f"https://x.org/{item}.mp4", resolution=None)
        commit(archive, "item-a", SECOND, url="https://x.org/item-a.mp4", resolution=None)
        commit(archive, "item-a", FIRST, url="https://x.org/item-a.mp4", resolution=None)
        assert [r.version for r in archive.versions("item-a", "video")] == [1, 2, 3]
    assert [p.name for p in stored_files(root)] == sorted([sha256(FIRST), sha256(SECOND)])
    code, stdout, _ = run("status", "--archive", root, "--json")
    assert code == 0
    files = json.loads(stdout)["files"]
    assert (files["versions"], files["all_bytes"]) == (4, 3 * len(FIRST) + len(SECOND))
    assert (files["stored_files"], files["stored_bytes"]) == (2, len(FIRST) + len(SECOND))
    changes = events(root, "change")
    assert [(e["item_id"], e["version"]) for e in changes] == [("item-a", 2), ("item-a", 3)]
    with Archive(root) as archive, archive.locked():
        archive.retire_missing({"item-b"})
        (pruned,) = archive.prune("2999-01-01")
        assert (pruned.item_id, pruned.files) == ("item-a", 1)  # SECOND: FIRST is item-b's too
        held = archive.held("item-b", "video")
        assert held is not None
        assert (root / held.path).read_bytes() == FIRST
    assert [p.name for p in stored_files(root)] == [sha256(FIRST)]
    assert not (root / "media" / "item-a").exists()


def test_each_rendition_has_its_own_current_version(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    small, large = b"240p bytes", b"720p bytes, more of them"
    with Archive(root) as archive, archive.locked():
        archive.record_item(make_entry("item-a", "https://x.org/720.mp4"))
        commit(archive, "item-a", large, url="https://x.org/720.mp4", resolution=720)
        commit(archive, "item-a", small, url="https://x.org/240.mp4", resolution=240)
        currents = archive.catalog.renditions("item-a", "video")
        assert [(r.rendition, r.version, r.current) for r in currents] == [
            (720, 1, True),
            (240, 2, True),
        ]
        # The fiche's link (720p) is what a kit without a choice shows; the 240p stays held.
        shown = archive.for_kit("item-a", url="https://x.org/720.mp4")
        assert shown is not None and shown.rendition == 720
        assert archive.held("item-a", "video", rendition=240) is not None
    folder = root / "media" / "item-a"
    assert sorted(p.name for p in folder.iterdir()) == [
        "entry.json",
        "video-240p.mp4",
        "video-720p.mp4",
    ]


# -- pins and restores, end to end ---------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_mp4(tmp_path_factory.mktemp("clip") / "c.mp4", seconds=2).read_bytes()


UUID = "00000001-1111-4222-8333-444444444444"


def fiche(folder: Path, url: str, pin: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pinned = f"videoSha256: {pin}\n" if pin else ""
    (folder / "fiche-1.md").write_text(
        f"---\ntitle: Vidéo 1\narea: Domaine 1\nvideoDLHref: {url}\n{pinned}---\n\n"
        "## Script\n\nTexte.\n\n## Crédits\n\n"
        "- **Licence** : [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/)\n",
        encoding="utf-8",
    )


def sync_args(tmp_path: Path, *extra: str) -> list[str | Path]:
    return ["sync", tmp_path / "fiches", "--archive", tmp_path / "archive", "--kit",
            tmp_path / "kit", "--retries", "0", "-q", *extra]  # fmt: skip


def kit_video(tmp_path: Path) -> bytes:
    (video,) = kit_folder(tmp_path / "kit", UUID).glob("*.mp4")
    return video.read_bytes()


def video_requests(server: FileServer) -> int:
    return sum(1 for r in server.requests() if r.bare_path.endswith(".mp4"))


def two_versions(server: FileServer, clip: bytes, tmp_path: Path) -> tuple[bytes, bytes]:
    """An archive holding two versions of one video: the producer re-encoded it."""
    old, new = tagged(clip, b"first cut"), tagged(clip, b"second cut")
    path = f"/videos/{UUID}-480.mp4"
    server.add(path, old)
    fiche(tmp_path / "fiches", server.url(path))
    assert run(*sync_args(tmp_path)) == (0, "", "")
    server.add(path, new)
    assert run(*sync_args(tmp_path, "--refresh-after", "0")) == (0, "", "")
    assert kit_video(tmp_path) == new
    return old, new


def test_a_manifest_pin_puts_a_held_older_version_in_the_kit_and_sync_keeps_it(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    old, new = two_versions(server, clip, tmp_path)
    fiche(tmp_path / "fiches", server.url(f"/videos/{UUID}-480.mp4"), pin=sha256(old))
    asked = video_requests(server)
    for extra in ((), ("--refresh-after", "0"), ("--offline",)):
        assert run(*sync_args(tmp_path, *extra)) == (0, "", "")
        assert kit_video(tmp_path) == old
    assert video_requests(server) == asked  # the pinned version is held: nothing is asked
    fiche(tmp_path / "fiches", server.url(f"/videos/{UUID}-480.mp4"))  # the pin removed
    assert run(*sync_args(tmp_path, "--offline")) == (0, "", "")
    assert kit_video(tmp_path) == new


def test_restore_puts_an_older_version_in_the_kit_until_restore_latest(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    old, new = two_versions(server, clip, tmp_path)
    archive_root = tmp_path / "archive"
    with Archive(archive_root) as archive, archive.locked():
        archive.restore(UUID, version=1)
    asked = video_requests(server)
    assert run(*sync_args(tmp_path, "--refresh-after", "0")) == (0, "", "")
    assert kit_video(tmp_path) == old  # upstream has not changed: the restore holds
    manifest = archive_root / "manifest.json"
    code, _, _ = run("package", manifest, "--archive", archive_root, "-o", tmp_path / "kit")
    assert code == 0 and kit_video(tmp_path) == old
    assert video_requests(server) == asked + 1  # one conditional request, answered 304
    with Archive(archive_root) as archive, archive.locked():
        lifted = archive.restore_latest(UUID)
        assert lifted is not None and lifted.version == 1
    assert run(*sync_args(tmp_path, "--offline")) == (0, "", "")
    assert kit_video(tmp_path) == new
    assert [e["version"] for e in events(archive_root, "restore")] == [1, 1]


def test_an_upstream_change_lifts_a_restore(
    server: FileServer, clip: bytes, tmp_path: Path
) -> None:
    two_versions(server, clip, tmp_path)
    with Archive(tmp_path / "archive") as archive, archive.locked():
        archive.restore(UUID, version=1)
    newest = tagged(clip, b"third cut")
    server.add(f"/videos/{UUID}-480.mp4", newest)
    assert run(*sync_args(tmp_path, "--refresh-after", "0")) == (0, "", "")
    assert kit_video(tmp_path) == newest
    with Archive(tmp_path / "archive") as archive:
        assert archive.restored(UUID) is None
    (change,) = [e for e in events(tmp_path / "archive", "change") if e["version"] == 3]
    assert '"restore_lifted": true' in str(change["detail"])


# -- renditions for two kits from one archive ----------------------------------------------------


def test_alternating_a_fitted_and_a_full_sync_fetches_each_rendition_once(
    server: FileServer, tmp_path: Path
) -> None:
    tube = FakeInstance(server, api_window=2.0)
    videos: list[PublishedVideo] = [tube.publish() for _ in range(3)]
    folder = tmp_path / "fiches"
    folder.mkdir()
    for video in videos:
        (folder / f"{video.uuid}.md").write_text(video.fiche(), encoding="utf-8")
    budget = str(sum(len(v.data[360]) for v in videos) + kit_overhead(3) + 56_000)
    usb, lan = ["--kit", str(tmp_path / "usb"), "--fit", budget], ["--kit", str(tmp_path / "lan")]

    def sync(kit: list[str]) -> int:
        before = sum(1 for r in server.requests() if r.bare_path.startswith("/download/"))
        args = ["sync", folder, "--archive", tmp_path / "archive", "--retries", "0", "-q", *kit]
        assert run(*args) == (0, "", "")
        return sum(1 for r in server.requests() if r.bare_path.startswith("/download/")) - before

    assert sync(usb) > 0
    assert sync(lan) > 0
    for kit in (usb, lan, usb, lan):
        assert sync(kit) == 0  # each rendition held: nothing fetched again
    root = tmp_path / "archive"
    recorded = [(r["item_id"], r["role"], r["sha256"]) for r in rows(root)]
    assert len(recorded) == len(set(recorded))  # no version of a file recorded twice
    assert len(stored_files(root)) == len({sha for _, _, sha in recorded})  # each sha256 once
    assert len({r["rendition"] for r in rows(root) if r["role"] == "video"}) >= 2
    for video in videos:
        (lan_video,) = kit_folder(tmp_path / "lan", video.uuid).glob("*.mp4")
        assert lan_video.read_bytes() == video.data[1080]  # the fiche's own link
        (usb_video,) = kit_folder(tmp_path / "usb", video.uuid).glob("*.mp4")
        assert len(usb_video.read_bytes()) < len(video.data[1080])


FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA_3_BYTES = {
    "media/item-a/versions/1/video-720p.mp4": b"720p cut",
    "media/item-a/versions/2/video-240p.mp4": b"240p cut",
    "media/item-a/video-720p.mp4": b"720p cut",
    "media/item-a/fiche.pdf": b"%PDF-1.4 fiche",
}


def schema_3_archive(root: Path) -> Path:
    """An archive as the release before the store left it (tests/fixtures/catalog-schema3.sql):
    its 720p held twice, its 240p demoted to versions/."""
    root.mkdir(parents=True)
    db = sqlite3.connect(root / "catalog.sqlite")
    db.executescript((FIXTURES / "catalog-schema3.sql").read_text(encoding="utf-8"))
    db.close()
    for path, data in SCHEMA_3_BYTES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def test_an_archive_of_the_release_before_the_store_keeps_every_version(tmp_path: Path) -> None:
    root = schema_3_archive(tmp_path / "archive")
    with Archive(root) as archive, archive.locked():
        assert archive.catalog.version == SCHEMA_VERSION
        versions = archive.versions("item-a", "video")
        assert [(r.version, r.rendition, r.current) for r in versions] == [
            (1, 720, False),
            (2, 240, True),  # the 240p is its rendition's current version again
            (3, 720, True),
        ]
        assert [(root / r.path).read_bytes() for r in versions] == [
            b"720p cut",
            b"240p cut",
            b"720p cut",
        ]
        fiche_pdf = archive.held("item-a", "fiche_pdf")
        assert fiche_pdf is not None and (root / fiche_pdf.path).read_bytes() == b"%PDF-1.4 fiche"
        shown = archive.for_kit("item-a", url="https://tube.example.org/a-720.mp4")
        assert shown is not None and shown.version == 3
    assert len(stored_files(root)) == 3  # the 720p once
    folder = root / "media" / "item-a"
    assert sorted(p.name for p in folder.iterdir()) == [
        "fiche.pdf",
        "video-240p.mp4",
        "video-720p.mp4",
    ]
    assert (folder / "video-240p.mp4").read_bytes() == b"240p cut"
    kinds = [e["kind"] for e in events(root, "fetch") + events(root, "change")]
    assert sorted(kinds) == ["change", "fetch", "fetch", "fetch"]  # rebuilt from the rows


# -- what an adversarial review found: each a test ------------------------------------------------


def test_a_rotted_second_copy_never_costs_the_good_one(tmp_path: Path) -> None:
    """Version 1's old copy rotted (same size), version 3's copy of the same bytes is good:
    the store takes the good one, the rotted one stays where it was, named by verify, and the
    next upstream change loses neither."""
    root = previous_release(tmp_path / "archive")
    rotted = root / "media/differencier/versions/1/u-720.mp4"
    rotted.write_bytes(b"first versioX")
    with Archive(root) as archive, archive.locked():
        (version_1, _, version_3) = archive.versions("differencier", "video")
        assert version_1.path == "media/differencier/versions/1/u-720.mp4"  # left, unmoved
        assert version_3.path == store_path(sha256(FIRST))
        assert (root / version_3.path).read_bytes() == FIRST
        newer = b"a newer cut, upstream"
        commit(archive, "differencier", newer, url=version_3.url, resolution=720)
        assert (root / version_3.path).read_bytes() == FIRST  # the good copy, still held
    assert rotted.read_bytes() == b"first versioX"  # never deleted: a person judges it
    code, _, stderr = run("verify", "--archive", root, "-q")
    assert code == 1
    assert stderr.count("corrupt") == 1 and "versions/1/u-720.mp4: corrupt" in stderr


def test_bytes_fetched_again_mend_a_store_file_that_rotted(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    with Archive(root) as archive, archive.locked():
        archive.record_item(make_entry("item-a", "https://x.org/a.mp4"))
        commit(archive, "item-a", FIRST, url="https://x.org/a.mp4", resolution=None)
        stored = root / store_path(sha256(FIRST))
        stored.write_bytes(b"first versioX")  # rotted in place, same size
        commit(archive, "item-a", FIRST, url="https://x.org/a.mp4", resolution=None)
        assert stored.read_bytes() == FIRST
        assert [r.version for r in archive.versions("item-a", "video")] == [1]


def test_a_persons_file_in_a_views_place_is_never_written_over(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    with Archive(root) as archive, archive.locked():
        archive.record_item(make_entry("item-a", "https://x.org/a.mp4"))
        commit(archive, "item-a", FIRST, url="https://x.org/a.mp4", resolution=None)
        view = root / "media/item-a/video.mp4"
        view.unlink()
        view.write_bytes(b"a teacher's own edit")
        commit(archive, "item-a", SECOND, url="https://x.org/a.mp4", resolution=None)
        current = archive.current("item-a", "video")
        assert current is not None and current.view == "media/item-a/video-2.mp4"
    assert view.read_bytes() == b"a teacher's own edit"
    assert (root / "media/item-a/video-2.mp4").read_bytes() == SECOND


def test_a_move_killed_after_the_catalog_moved_is_cleaned_up_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = schema_3_archive(tmp_path / "archive")

    def killed(_self: Archive) -> None:
        raise KeyboardInterrupt  # the catalog has moved; its clean-up has not run

    with monkeypatch.context() as patch:
        patch.setattr(Archive, "_finish_move", killed)
        with pytest.raises(KeyboardInterrupt), Archive(root) as archive:
            archive.lock()
    assert (root / "media/item-a/versions").exists()
    with Archive(root) as archive, archive.locked():
        pass
    folder = root / "media" / "item-a"
    assert not (folder / "versions").exists()
    assert (folder / "video-240p.mp4").read_bytes() == b"240p cut"
    with Archive(root) as archive, archive.locked():  # done: nothing left to do
        assert archive.catalog.meta("store_move_pending") is None


def test_a_video_first_fetched_without_its_height_goes_on_in_that_rendition(
    tmp_path: Path,
) -> None:
    """Fetched once while its instance did not answer, then changed when it did: one
    rendition, its change a change (which lifts a restore), not a second rendition."""
    root = tmp_path / "archive"
    url = "https://x.org/a-720.mp4"
    with Archive(root) as archive, archive.locked():
        archive.record_item(make_entry("item-a", url))
        commit(archive, "item-a", FIRST, url=url, resolution=None)
        archive.restore("item-a", version=1)
        commit(archive, "item-a", SECOND, url=url, resolution=720)
        versions = archive.versions("item-a", "video")
        assert [(r.version, r.rendition, r.current) for r in versions] == [
            (1, 0, False),
            (2, 0, True),
        ]
        assert archive.restored("item-a") is None
    assert [e["version"] for e in events(root, "change")] == [2]


def test_restore_refuses_a_version_whose_bytes_rotted(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    with Archive(root) as archive, archive.locked():
        archive.record_item(make_entry("item-a", "https://x.org/a.mp4"))
        commit(archive, "item-a", FIRST, url="https://x.org/a.mp4", resolution=None)
        commit(archive, "item-a", SECOND, url="https://x.org/a.mp4", resolution=None)
        (root / store_path(sha256(FIRST))).write_bytes(b"first versioX")
        with pytest.raises(ArchiveError, match="version 1 is not held"):
            archive.restore("item-a", version=1)
        assert archive.restored("item-a") is None


def test_verify_refuses_a_row_whose_view_leads_out_of_its_item(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    with Archive(root) as archive, archive.locked():
        archive.record_item(make_entry("item-a", "https://x.org/a.mp4"))
        commit(archive, "item-a", FIRST, url="https://x.org/a.mp4", resolution=None)
    db = sqlite3.connect(root / "catalog.sqlite")
    db.execute("UPDATE files SET view='media/item-a/../../victim'")
    db.commit()
    db.close()
    code, _, stderr = run("verify", "--archive", root)
    assert code == 2
    assert "the catalog is damaged" in stderr and "is not a file of media/item-a/" in stderr


def published(server: FileServer, tmp_path: Path, count: int = 3) -> list[PublishedVideo]:
    tube = FakeInstance(server, api_window=2.0)
    videos: list[PublishedVideo] = [tube.publish() for _ in range(count)]
    folder = tmp_path / "fiches"
    folder.mkdir()
    for video in videos:
        (folder / f"{video.uuid}.md").write_text(video.fiche(), encoding="utf-8")
    return videos


def kit_size(kit: Path) -> int:
    return sum(p.stat().st_size for p in kit.rglob("*") if p.is_file())


def synced(tmp_path: Path, kit: str, *extra: str) -> tuple[int, str]:
    args = ["sync", tmp_path / "fiches", "--archive", tmp_path / "archive", "--kit",
            tmp_path / kit, "--retries", "0", "-q", *extra]  # fmt: skip
    code, _, stderr = run(*args)
    return code, stderr


def test_an_offline_sync_keeps_its_kits_height_and_budget(
    server: FileServer, tmp_path: Path
) -> None:
    videos = published(server, tmp_path)
    budget = sum(min(len(d) for d in v.data.values()) for v in videos) + kit_overhead(3)
    budget += 200_000
    assert synced(tmp_path, "usb", "--fit", str(budget)) == (0, "")
    assert synced(tmp_path, "lan") == (0, "")  # the 1080p of each, held beside the small ones
    assert synced(tmp_path, "usb2", "--offline", "--fit", str(budget)) == (0, "")
    assert kit_size(tmp_path / "usb2") <= budget
    assert synced(tmp_path, "small", "--offline", "--max-height", "480") == (0, "")
    for video in videos:
        (shown,) = kit_folder(tmp_path / "small", video.uuid).glob("*.mp4")
        assert shown.read_bytes() in [d for h, d in video.data.items() if h <= 480]


def test_a_restore_counts_in_a_fitted_syncs_budget(server: FileServer, tmp_path: Path) -> None:
    videos = published(server, tmp_path)
    budget = sum(min(len(d) for d in v.data.values()) for v in videos) + kit_overhead(3)
    budget += 1000  # room for the smallest renditions, not for a 1080p
    assert synced(tmp_path, "lan") == (0, "")
    with Archive(tmp_path / "archive") as archive, archive.locked():
        (tallest, *_) = archive.catalog.renditions(videos[0].uuid, "video")
        archive.restore(videos[0].uuid, version=tallest.version)
    code, stderr = synced(tmp_path, "usb", "--fit", str(budget))
    assert code == 2
    assert "Hint: a restored or pinned video counts at the size of its version" in stderr
    with Archive(tmp_path / "archive") as archive, archive.locked():
        archive.restore_latest(videos[0].uuid)
    assert synced(tmp_path, "usb", "--fit", str(budget)) == (0, "")
    assert kit_size(tmp_path / "usb") <= budget
