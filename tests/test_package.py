"""Offline kits: built from real MP4s, checked by bagit, opened from file:// in Chromium."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bagit
import pytest
from click.testing import CliRunner
from playwright.sync_api import Browser, Page

import archiver.kit.write as kit_writer
from archiver import media
from archiver.archive import Archive, FetchedFile
from archiver.cli import cli
from archiver.cli.output import kit_summary
from archiver.entry import Credit, Entry, Licence, Video
from archiver.errors import ArchiveError
from archiver.fetch import DownloadSettings, download
from archiver.kit import KitError, KitSettings, package
from archiver.kit.bag import JOURNAL, MANIFEST, NOT_REGULAR, verify_bag
from archiver.kit.ownership import STAGING
from archiver.manifest import Manifest, write_manifest
from archiver.zim import package_zim

from .conftest import chromium, content_of, make_entry, offline_page
from .fuzz_support import run_bounded
from .media import make_mp4
from .server import FileServer

FAST = DownloadSettings(retries=1, backoff_base=0.01, backoff_max=0.01)
HOSTILE = (
    "<script>window.__pwned=1</script>",
    '"><img src=x onerror="window.__pwned=1">',
    "'><svg onload=window.__pwned=1>",
    "</title><script>window.__pwned=1</script>",
    "{{ 7*7 }}{% raw %}",
    "\u202e<b>rtl</b>",
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """Small fragmented MP4s made by ffmpeg: 2, 3 and 4 seconds, and 3 seconds re-encoded."""
    folder = tmp_path_factory.mktemp("clips")
    made = [make_mp4(folder / f"{s}.mp4", seconds=s).read_bytes() for s in (2, 3, 4)]
    made.append(make_mp4(folder / "3b.mp4", seconds=3, width=256, height=192).read_bytes())
    return made


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def entries(server: FileServer, clips: list[bytes]) -> list[Entry]:
    specs = [
        (
            "differencier",
            "Différencier ses pratiques",
            "Domaine 4",
            "La différenciation pédagogique.",
        ),
        ("evaluer", "Évaluer avec le numérique", "Domaine 2", "Une évaluation formative."),
        ("collaborer", "Collaborer en classe", "Domaine 2", "Le travail en îlots."),
    ]
    made = []
    for (item, title, area, transcript), clip in zip(specs, clips[:3], strict=True):
        server.add(f"/{item}-480.mp4", clip)
        made.append(
            make_entry(
                item,
                server.url(f"/{item}-480.mp4"),
                title=title,
                area=area,
                transcript=transcript,
                credits=(Credit("Production", ("Réseau Canopé",)),),
                licence=Licence(
                    "CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"
                ),
            )
        )
    return made


def build(
    tmp_path: Path, server: FileServer, items: list[Entry], **settings: object
) -> tuple[Manifest, Path, Path]:
    manifest = Manifest(entries=tuple(items))
    archive, kit = tmp_path / "archive", tmp_path / "kit"
    download(manifest, archive, settings=FAST)
    package(manifest, archive, kit, settings=KitSettings(**settings))  # type: ignore[arg-type]
    return manifest, archive, kit


def package_cli(
    tmp_path: Path, items: list[Entry], *, held: int | None = None
) -> tuple[int, str, str]:
    """Download ``items`` (the first ``held`` only), then ``archiver package -q`` all of them."""
    archive = tmp_path / "archive"
    download(Manifest(entries=tuple(items[:held])), archive, settings=FAST)
    manifest_path = tmp_path / "m.json"
    write_manifest(Manifest(entries=tuple(items)), manifest_path)
    return run("package", manifest_path, "--archive", archive, "-o", tmp_path / "kit", "-q")


def run(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def open_page(browser: Browser, url: str, *, javascript: bool = True) -> tuple[Page, list[str]]:
    """A page that records every problem: errors, dialogs, any request leaving file://."""
    context = browser.new_context(java_script_enabled=javascript)
    return offline_page(context.new_page(), url, dialogs=True)


# -- structure and integrity -------------------------------------------------------------------


def test_kit_is_a_valid_bag_with_a_root_index_and_a_readme(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    _, _, kit = build(tmp_path, server, entries(server, clips))
    bag = bagit.Bag(str(kit))
    bag.validate()  # the Library of Congress's validator, not ours
    # 3 videos, 3 posters, 3 pages; the catalog, its search index, style.css, app.js, player.js,
    # provenance.json
    assert bag.info["Payload-Oxum"].endswith(".15")
    assert bag.info["Source-Organization"] == "Réseau Canopé"
    assert "Bagging-Date" in bag.info
    assert 'href="data/index.html"' in (kit / "index.html").read_text()
    assert "VÉRIFIER UNE COPIE" in (kit / "LISEZMOI.txt").read_text()
    assert "verifier-cle.ps1" in (kit / "tagmanifest-sha256.txt").read_text()
    # Folders and videos named from their titles.
    for name in ("Differencier-ses-pratiques", "Evaluer-avec-le-numerique", "Collaborer-en-classe"):
        folder = kit / "data" / "videos" / name
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["index.html", "poster.jpg", f"{name}-240p.mp4"]
        )
    assert verify_bag(kit)[2] == []


def test_every_name_in_the_kit_suits_any_usb_key(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    _, _, kit = build(tmp_path, server, entries(server, clips))
    for path in kit.rglob("*"):
        for part in path.relative_to(kit).parts:
            assert part.isascii(), part
            assert len(part) <= 100, part
            assert not set('<>:"\\|?*') & set(part), part
            assert not part.startswith("."), part


def test_media_are_hard_linked_on_the_same_filesystem_unless_copy(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    items = entries(server, clips)
    _, archive, kit = build(tmp_path, server, items)
    with Archive(archive) as opened:
        record = opened.held("evaluer", "video")
    assert record is not None
    held = archive / record.path
    in_kit = (
        kit / "data" / "videos" / "Evaluer-avec-le-numerique" / "Evaluer-avec-le-numerique-240p.mp4"
    )
    assert os.stat(held).st_ino == os.stat(in_kit).st_ino
    copy_kit = tmp_path / "copy-kit"
    package(Manifest(entries=tuple(items)), archive, copy_kit, settings=KitSettings(copy=True))
    copied = (
        copy_kit
        / "data"
        / "videos"
        / "Evaluer-avec-le-numerique"
        / "Evaluer-avec-le-numerique-240p.mp4"
    )
    assert os.stat(copied).st_ino != os.stat(held).st_ino
    assert copied.read_bytes() == held.read_bytes()


def test_repackaging_an_unchanged_kit_writes_nothing(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    manifest, archive, kit = build(tmp_path, server, entries(server, clips))
    before = {p: p.stat().st_mtime_ns for p in kit.rglob("*") if p.is_file()}
    report = package(manifest, archive, kit)
    assert (report.written, report.removed, report.changed) == (0, 0, ())
    assert {p: p.stat().st_mtime_ns for p in kit.rglob("*") if p.is_file()} == before


def test_a_changed_video_rewrites_only_its_own_files(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    items = entries(server, clips)
    _, archive, kit = build(tmp_path, server, items)
    server.add("/evaluer-720.mp4", clips[3])  # the same 3 s video, encoded anew
    items[1] = dataclasses.replace(items[1], video=Video(server.url("/evaluer-720.mp4"), None))
    manifest = Manifest(entries=tuple(items))
    download(manifest, archive, settings=FAST)
    report = package(manifest, archive, kit)
    assert report.changed
    assert all(
        path.startswith("data/videos/Evaluer-avec-le-numerique/") or path == "data/provenance.json"
        for path in report.changed
    ), report.changed
    assert (
        "data/videos/Evaluer-avec-le-numerique/Evaluer-avec-le-numerique-240p.mp4" in report.changed
    )  # removed
    assert (
        "data/videos/Evaluer-avec-le-numerique/Evaluer-avec-le-numerique-192p.mp4" in report.changed
    )  # its successor
    assert not (
        kit / "data/videos/Evaluer-avec-le-numerique/Evaluer-avec-le-numerique-240p.mp4"
    ).exists()
    bagit.Bag(str(kit)).validate()


def test_a_video_leaving_the_collection_leaves_the_kit(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    items = entries(server, clips)
    _, archive, kit = build(tmp_path, server, items)
    report = package(Manifest(entries=tuple(items[:2])), archive, kit)
    assert report.removed == 3  # page, video, poster
    assert not (kit / "data" / "videos" / "Collaborer-en-classe").exists()
    assert b"Collaborer" not in (kit / "data" / "index.html").read_bytes()
    bagit.Bag(str(kit)).validate()


def test_flipped_byte_and_missing_and_extra_files_are_named_by_verify(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    _, _, kit = build(tmp_path, server, entries(server, clips), copy=True)
    video = kit / "data/videos/Evaluer-avec-le-numerique/Evaluer-avec-le-numerique-240p.mp4"
    data = bytearray(video.read_bytes())
    data[len(data) // 2] ^= 0x01
    video.write_bytes(bytes(data))
    (kit / "data/videos/Collaborer-en-classe/poster.jpg").unlink()
    (kit / "data/videos/notes.txt").write_text("ajouté à la main")
    code, _, stderr = run("verify", kit)
    assert code == 1
    lines = stderr.splitlines()
    assert lines[0] == f"Error: {kit}/data/videos/Collaborer-en-classe/poster.jpg: missing"
    assert lines[1].startswith(f"Error: {video}: corrupt: sha256 is ")
    assert lines[2] == (
        f"Error: {kit}/data/videos/notes.txt: not in the kit's manifest (extra file)"
    )
    assert lines[3].startswith("Verify: 14 files (") and lines[3].endswith(": 3 problem(s)")
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(kit)).validate()


def test_a_pipe_or_a_folder_in_a_kit_is_named_by_verify_without_waiting(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    _, _, kit = build(tmp_path, server, entries(server, clips))
    video = kit / "data/videos/Evaluer-avec-le-numerique/Evaluer-avec-le-numerique-240p.mp4"
    video.unlink()
    os.mkfifo(video)  # opening it to read would wait for ever for a writer
    readme = kit / "LISEZMOI.txt"
    readme.unlink()
    os.mkfifo(readme)
    poster = kit / "data/videos/Collaborer-en-classe/poster.jpg"
    poster.unlink()
    poster.mkdir()
    # In a child process: were it to wait on the pipe, it is killed and the test fails.
    outcome = run_bounded(["verify", kit, "-q"], cwd=tmp_path, timeout=20)
    assert (outcome.code, outcome.stdout) == (1, "")
    assert outcome.stderr.splitlines() == [
        f"Error: {poster}: {NOT_REGULAR}",
        f"Error: {video}: {NOT_REGULAR}",
        f"Error: {readme}: {NOT_REGULAR}",
    ]
    assert NOT_REGULAR == "not a regular file (a pipe, a device or a folder); it was not read"


@pytest.mark.parametrize("folder", ["emptykit", "nokit"])
def test_verify_of_a_folder_that_is_no_kit_names_it_once_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    (tmp_path / "emptykit").mkdir()
    monkeypatch.chdir(tmp_path)
    reason = "no bagit.txt" if folder == "emptykit" else "no such folder"
    assert run("verify", folder) == (
        2,
        "",
        f"Error: {folder}: not a kit: {reason}\n"
        "Hint: give the kit's own folder: the one holding bagit.txt and index.html\n",
    )


def test_no_archive_at_the_archive_path_is_an_archive_error_exit_2(tmp_path: Path) -> None:
    """The library says it, as for any unusable target (exit 2): the command line adds no
    check of its own, for a kit, a ZIM or both."""
    manifest = Manifest(entries=(make_entry("a", "http://127.0.0.1:9/a.mp4"),))
    none = tmp_path / "none"
    with pytest.raises(ArchiveError) as caught:
        package(manifest, none, tmp_path / "kit")
    assert (caught.value.exit_code, caught.value.message) == (2, f"{none}: no archive here")
    with pytest.raises(ArchiveError) as caught:
        package_zim(manifest, none, tmp_path / "v.zim", settings=KitSettings())
    assert (caught.value.exit_code, caught.value.message) == (2, f"{none}: no archive here")
    write_manifest(manifest, tmp_path / "m.json")
    expected = f"Error: {none}: no archive here\nHint: run 'archiver download' first\n"
    for target in (["-o", tmp_path / "kit"], ["--zim", tmp_path / "v.zim"]):
        assert run("package", tmp_path / "m.json", "--archive", none, *target) == (2, "", expected)
    assert not (tmp_path / "kit").exists() and not (tmp_path / "v.zim").exists()


def test_verify_of_a_whole_kit_exits_0(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    _, _, kit = build(tmp_path, server, entries(server, clips))
    code, _, stderr = run("verify", kit)
    assert code == 0
    assert stderr.startswith("Verify: 15 files (") and stderr.endswith(": all intact\n")


def test_an_update_killed_while_writing_leaves_the_previous_kit(
    server: FileServer, clips: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = entries(server, clips)
    _, archive, kit = build(tmp_path, server, items)
    before = (kit / "manifest-sha256.txt").read_bytes()
    server.add("/evaluer-720.mp4", clips[2])
    items[1] = dataclasses.replace(items[1], video=Video(server.url("/evaluer-720.mp4"), None))
    manifest = Manifest(entries=tuple(items))
    download(manifest, archive, settings=FAST)
    real_stage = kit_writer._stage
    staged = []

    def stage_then_die(*args: object, **kwargs: object) -> bool:
        if staged:
            raise KeyboardInterrupt  # the process dies after the first new file is written
        staged.append(args[0])
        return real_stage(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kit_writer, "_stage", stage_then_die)
    with pytest.raises(KeyboardInterrupt):
        package(manifest, archive, kit)
    assert staged, "the update was killed before writing anything"
    assert verify_bag(kit)[2] == []  # the previous kit, whole
    assert (kit / "manifest-sha256.txt").read_bytes() == before
    assert not (kit / STAGING).exists()
    monkeypatch.setattr(kit_writer, "_stage", real_stage)
    package(manifest, archive, kit)
    assert verify_bag(kit)[2] == []
    assert (kit / "manifest-sha256.txt").read_bytes() != before


def files_in(folder: Path) -> set[str]:
    """Every file below ``folder``, hidden ones included, as paths relative to it."""
    return {
        Path(here, name).relative_to(folder).as_posix()
        for here, _, names in os.walk(folder)
        for name in names
    }


def test_an_update_sigkilled_while_staging_leaves_the_previous_kit_valid(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    items = entries(server, clips)
    _, archive, kit = build(tmp_path, server, items, copy=True)
    before = files_in(kit)
    manifest = (kit / MANIFEST).read_bytes()
    # A new video large enough that copying it takes a while after the first page is staged.
    server.add("/grand-480.mp4", content_of(48 * 1024 * 1024, 7))
    items.append(make_entry("grand", server.url("/grand-480.mp4")))
    write_manifest(Manifest(entries=tuple(items)), tmp_path / "m.json")
    download(Manifest(entries=tuple(items)), archive, settings=FAST)
    command = [sys.executable, "-m", "archiver", "-q", "package", str(tmp_path / "m.json"),
               "--archive", str(archive), "-o", str(kit), "--copy"]  # fmt: skip
    with subprocess.Popen(command) as victim:
        # Killed as soon as the update has written its first file, wherever it is.
        deadline = time.monotonic() + 60
        while victim.poll() is None and not files_in(kit) - before:
            assert time.monotonic() < deadline
        os.kill(victim.pid, signal.SIGKILL)
    assert victim.returncode == -signal.SIGKILL, "the update ended before it was killed"
    assert not (kit / JOURNAL).exists(), "killed while renaming: the test proved nothing"
    assert files_in(kit) - before, "killed before writing: the test proved nothing"
    # The previous kit, whole to our verify and to the Library of Congress's validator.
    assert (kit / MANIFEST).read_bytes() == manifest
    assert run("verify", kit, "-q") == (0, "", "")
    bagit.Bag(str(kit)).validate()

    # An earlier release staged files beside their final names: removed as well.
    old = kit / "data" / "videos" / "Evaluer-avec-le-numerique" / ".index.html.archiver-tmp"
    old.write_text("<html")
    assert run("package", tmp_path / "m.json", "--archive", archive, "-o", kit, "--copy", "-q") == (
        0,
        "",
        "",
    )
    assert files_in(kit) == before | {
        "data/videos/Video-grand/index.html",  # "Vidéo grand"
        "data/videos/Video-grand/poster.jpg",
        "data/videos/Video-grand/Video-grand-48p.mp4",
    }
    assert run("verify", kit, "-q") == (0, "", "")
    bagit.Bag(str(kit)).validate()


def test_an_update_killed_while_renaming_is_caught_by_verify(
    server: FileServer, clips: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = entries(server, clips)
    _, archive, kit = build(tmp_path, server, items)
    server.add("/evaluer-720.mp4", clips[2])
    items[1] = dataclasses.replace(items[1], video=Video(server.url("/evaluer-720.mp4"), None))
    manifest = Manifest(entries=tuple(items))
    download(manifest, archive, settings=FAST)
    real_replace = os.replace
    renamed: list[object] = []

    def replace_then_die(source: object, target: object) -> None:
        if STAGING in Path(str(source)).parts:
            if renamed:
                raise KeyboardInterrupt  # dies after the first file got its final name
            renamed.append(target)
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(kit_writer.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        package(manifest, archive, kit)
    monkeypatch.setattr(kit_writer.os, "replace", real_replace)
    assert renamed
    assert verify_bag(kit)[2], "an interrupted update passed as whole"
    package(manifest, archive, kit)
    assert verify_bag(kit)[2] == []
    assert not (kit / STAGING).exists()


def test_items_not_in_the_archive_are_named_and_the_kit_stays_valid(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    code, _, stderr = package_cli(tmp_path, entries(server, clips), held=2)
    assert code == 1
    assert stderr == (
        "Error: Collaborer en classe (collaborer): not in the archive yet (run 'archiver download')\n"
    )
    bagit.Bag(str(tmp_path / "kit")).validate()


def test_kit_summary_line(server: FileServer, clips: list[bytes], tmp_path: Path) -> None:
    items = entries(server, clips)
    archive = tmp_path / "archive"
    download(Manifest(entries=tuple(items)), archive, settings=FAST)
    manifest_path = tmp_path / "m.json"
    write_manifest(Manifest(entries=tuple(items)), manifest_path)
    code, _, stderr = run("package", manifest_path, "--archive", archive, "-o", tmp_path / "kit")
    assert code == 0
    assert stderr.startswith(f"Kit: 3 videos in {tmp_path / 'kit'}; 15 files written (")
    assert ", 6 hard-linked, 0 removed, 0 unchanged; 0 left out, in " in stderr


def test_a_kit_that_does_not_fit_is_refused_before_writing(
    server: FileServer, clips: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = entries(server, clips)
    archive = tmp_path / "archive"
    download(Manifest(entries=tuple(items)), archive, settings=FAST)
    real = kit_writer.shutil.disk_usage
    monkeypatch.setattr(
        kit_writer.shutil, "disk_usage", lambda p: real(p)._replace(free=100 * 1024)
    )
    with pytest.raises(KitError) as caught:
        package(
            Manifest(entries=tuple(items)),
            archive,
            tmp_path / "kit",
            settings=KitSettings(copy=True),
        )
    assert "the kit does not fit: it needs " in caught.value.message
    assert caught.value.message.endswith("100.0 KiB is free")
    assert not (tmp_path / "kit" / "data").exists()


def test_without_ffmpeg_the_kit_has_no_posters_and_says_so(
    server: FileServer,
    clips: list[bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(media, "available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="archiver"):
        _, _, kit = build(tmp_path, server, entries(server, clips))
    assert caplog.messages.count("ffmpeg is not installed: the kit has no poster frames") == 1
    assert not list(kit.rglob("poster.jpg"))
    page = (kit / "data/videos/Evaluer-avec-le-numerique/index.html").read_text()
    assert "poster=" not in page
    assert "3 s" in page  # the duration is read in-process: no ffmpeg program needed
    bagit.Bag(str(kit)).validate()


def test_a_file_over_4_gib_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    archive_root = tmp_path / "archive"
    entry = make_entry("big", "https://x.org/big.mp4")
    with Archive(archive_root) as archive:
        archive.record_item(entry)
        sparse = tmp_path / "archive" / "partial" / "big.part"
        with sparse.open("wb") as stream:
            stream.truncate(4 * 1024**3 + 1)  # sparse: takes no space
        archive.commit(
            "big", "video", "big.mp4", sparse,
            FetchedFile("https://x.org/big.mp4", "https://x.org/big.mp4", "0" * 64,
                        4 * 1024**3 + 1, None, None, None),
        )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="archiver"):
        package(Manifest(entries=(entry,)), archive_root, tmp_path / "kit")
    assert any("over 4 GiB, more than a FAT32 key can hold" in m for m in caplog.messages)


# -- in a real browser, from file:// -----------------------------------------------------------


def test_chromium_opens_the_kit_finds_a_video_and_plays_it(
    server: FileServer, clips: list[bytes], tmp_path: Path, browser: Browser
) -> None:
    _, _, kit = build(tmp_path, server, entries(server, clips))
    page, problems = open_page(browser, (kit / "index.html").as_uri())
    page.click("text=Ouvrir le catalogue")  # the root page is a page, with a button
    page.wait_for_url("**/data/index.html")
    assert page.locator("#catalogue li.card:visible").count() == 3

    page.fill("#recherche", "evaluer")  # no accent typed, the title has one
    assert page.locator("#catalogue li.card:visible").count() == 1
    assert page.inner_text("#etat") == "1 vidéo sur 3"
    page.fill("#recherche", "ilots")  # a word of a transcript only
    assert page.locator("#catalogue li.card:visible .title").all_inner_texts() == [
        "Collaborer en classe"
    ]
    page.fill("#recherche", "")
    page.select_option("#domaine", "Domaine 2")
    assert page.locator("#catalogue li.card:visible").count() == 2

    page.click("text=Collaborer en classe")
    page.wait_for_url("**/videos/Collaborer-en-classe/index.html")
    page.wait_for_function("document.querySelector('video').readyState >= 1")
    assert page.evaluate("document.querySelector('video').duration") == pytest.approx(4.0, abs=0.2)
    assert page.inner_text("h1") == "Collaborer en classe"
    assert "Le travail en îlots." in page.inner_text(".transcript")
    assert "sans usage commercial" in page.inner_text("#credits ~ h3 + p")
    # The pager follows the catalogue: Domaine 2's two videos in French order, then Domaine 4.
    assert page.locator("a[rel=prev]").count() == 0
    page.click("a[rel=next]")
    page.wait_for_url("**/videos/Evaluer-avec-le-numerique/index.html")
    assert problems == []
    page.context.close()


def test_without_javascript_the_catalog_is_a_plain_list(
    server: FileServer, clips: list[bytes], tmp_path: Path, browser: Browser
) -> None:
    _, _, kit = build(tmp_path, server, entries(server, clips))
    page, problems = open_page(browser, (kit / "data" / "index.html").as_uri(), javascript=False)
    assert page.locator("#catalogue li.card:visible").count() == 3
    assert not page.locator("#filtres").is_visible()
    assert problems == []
    page.context.close()


def hostile_entries(server: FileServer, clip: bytes, *, word: str = "") -> list[Entry]:
    """One video a string of :data:`HOSTILE`, in every field a fiche gives (the title starts
    ``T<n> <word><n>``: a word a search may look for), its clip served by ``server``."""
    items = []
    for number, hostile in enumerate(HOSTILE):
        path = f"/h{number}.mp4"
        server.add(path, clip)
        lead = f"T{number} {word}{number} " if word else f"T{number} "
        items.append(
            make_entry(
                f"hostile-{number}",
                server.url(path),
                title=f"{lead}{hostile}",
                area=hostile,
                description=hostile,
                transcript=f"{hostile}\n\n[lien](javascript:window.__pwned=1) <b onmouseover=x>",
                credits=(Credit(hostile, (hostile, hostile)),),
                credit_notes=(hostile,),
                licence=Licence(
                    hostile, 'https://example.org/?q="><script>window.__pwned=1</script>'
                ),
            )
        )
    return items


def test_hostile_strings_in_every_field_run_nothing(
    server: FileServer, clips: list[bytes], tmp_path: Path, browser: Browser
) -> None:
    _, _, kit = build(tmp_path, server, hostile_entries(server, clips[0]))
    pages = [kit / "data" / "index.html", *sorted((kit / "data" / "videos").glob("*/index.html"))]
    assert len(pages) == 1 + len(HOSTILE)
    for html in pages:
        page, problems = open_page(browser, html.as_uri())
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned") is None, html
        assert page.locator("img[onerror], svg[onload], b[onmouseover]").count() == 0, html
        own_scripts = 2 if html.parent.name == "data" else 0
        assert page.locator("script").count() == own_scripts, html
        assert problems == [], (html, problems)
        if html.parent.name != "data":
            number = int(html.parent.name.split("-", 1)[0].removeprefix("T"))
            assert page.inner_text("h1") == f"T{number} {HOSTILE[number]}"
        page.context.close()


def test_a_held_video_ffmpeg_cannot_play_stays_out_of_the_kit(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    from .media import make_audio_only_mp4

    items = entries(server, clips)
    sound = make_audio_only_mp4(tmp_path / "sound.mp4").read_bytes()
    server.add("/collaborer-480.mp4", sound)  # a whole MP4, with no picture
    # Held without the download's check (as from an archive older than it): packaging checks.
    unchecked = dataclasses.replace(FAST, check_media=False)
    download(Manifest(entries=tuple(items)), tmp_path / "archive", settings=unchecked)
    manifest_path = tmp_path / "m.json"
    write_manifest(Manifest(entries=tuple(items)), manifest_path)
    code, _, stderr = run("package", manifest_path, "--archive", tmp_path / "archive",
                          "-o", tmp_path / "kit", "-q")  # fmt: skip
    assert code == 1
    assert (
        stderr == "Error: Collaborer en classe (collaborer): not a playable MP4: no video stream\n"
    )
    assert not (tmp_path / "kit" / "data" / "videos" / "Collaborer-en-classe").exists()
    assert (tmp_path / "kit" / "data" / "videos" / "Evaluer-avec-le-numerique").is_dir()
    bagit.Bag(str(tmp_path / "kit")).validate()


def test_transcode_re_encodes_taller_videos_once_and_again_when_the_preset_changes(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hd = make_mp4(tmp_path / "hd.mp4", seconds=1, width=1280, height=720).read_bytes()
    server.add("/hd-720.mp4", hd)
    entry = make_entry("hd", server.url("/hd-720.mp4"), title="En HD")
    manifest = Manifest(entries=(entry,))
    archive, kit = tmp_path / "archive", tmp_path / "kit"
    download(manifest, archive, settings=FAST)
    preset = media.PRESETS["360p"]
    first = package(manifest, archive, kit, settings=KitSettings(transcode=preset))
    assert first.reencoded == 1
    assert "1 video re-encoded" in kit_summary(first)
    video = kit / "data" / "videos" / "En-HD" / "En-HD-360p.mp4"  # "En HD", re-encoded
    assert media.probe(video).height == 360
    assert "· 360p" in (kit / "data/videos/En-HD/index.html").read_text()
    bagit.Bag(str(kit)).validate()

    again = package(manifest, archive, kit, settings=KitSettings(transcode=preset))
    assert again.written == 0  # made once, kept in the archive

    newer = dataclasses.replace(preset, version=preset.version + 1, crf=35)
    changed = package(manifest, archive, kit, settings=KitSettings(transcode=newer))
    assert "data/videos/En-HD/En-HD-360p.mp4" in changed.changed
    made = list((archive / "derived").rglob("*transcode-360p-v*.mp4"))
    assert sorted(p.name.rsplit("-", 1)[1] for p in made) == ["v1.mp4", "v2.mp4"]
