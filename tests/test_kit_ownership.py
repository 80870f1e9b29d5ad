"""A kit folder is archiver's only when it carries its mark and its list: what archiver may
write, delete or replace there, the kit's lock, and the names of the files it writes."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import bagit
import pytest

import archiver.kit.write as kit_writer
from archiver.archive import Archive, FetchedFile
from archiver.entry import Asset, Entry
from archiver.errors import KitError, KitRefused, LockHeld
from archiver.fetch import download
from archiver.kit import SUBFOLDER_HINT, KitSettings, build_kit, package
from archiver.kit.bag import JOURNAL, MANIFEST, MAX_MANIFEST, TAGMANIFEST, verify_bag
from archiver.kit.derive import Source
from archiver.kit.ownership import JOURNAL_HEADER, LINKED_FOLDER, STAGING, Claim, claim
from archiver.manifest import Manifest, write_manifest
from archiver.progress import NullProgress
from archiver.sync import sync
from archiver.units import format_bytes

from . import test_disk_errors, test_package
from .conftest import fresh_python, make_entry, snapshot
from .fuzz_support import run_bounded
from .server import FileServer
from .test_disk_errors import fill, grow
from .test_package import FAST, entries, run

# The fixtures of those modules, shared: MP4 clips made by ffmpeg, a tmpfs mounted as root.
clips = test_package.clips
small_disk = test_disk_errors.small_disk

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
NOT_OURS = (
    "a file archiver did not write (not in the kit's manifests); it will not replace it,"
    " and nothing was written"
)


def held(tmp_path: Path, items: list[Entry]) -> tuple[Manifest, Path]:
    """``items`` downloaded into ``tmp_path/archive``: the manifest and the archive."""
    manifest = Manifest(entries=tuple(items))
    download(manifest, tmp_path / "archive", settings=FAST)
    return manifest, tmp_path / "archive"


@pytest.fixture
def three(server: FileServer, clips: list[bytes], tmp_path: Path) -> tuple[list[Entry], Path]:
    """Three videos held in ``tmp_path/archive``."""
    items = entries(server, clips)
    return items, held(tmp_path, items)[1]


def two_of_three_packaged(three: tuple[list[Entry], Path], kit: Path) -> Manifest:
    """A kit of the first two videos at ``kit``; the manifest of all three."""
    items, archive = three
    package(Manifest(entries=tuple(items[:2])), archive, kit)
    return Manifest(entries=tuple(items))


# -- which folders become kits -------------------------------------------------------------------


def test_a_key_holding_other_files_is_refused_and_nothing_is_written(
    three: tuple[list[Entry], Path], tmp_path: Path
) -> None:
    items, archive = three
    key = tmp_path / "usbkey"
    (key / "data" / "notes").mkdir(parents=True)
    (key / "data" / "notes" / "seance-1.txt").write_text("mes notes")
    (key / "index.html").write_text("<p>la page de l'école</p>")
    before = snapshot(key)
    manifest = Manifest(entries=tuple(items))
    with pytest.raises(KitRefused) as caught:
        package(manifest, archive, key)
    assert caught.value.exit_code == 2
    assert caught.value.message == (
        f"{key}: not empty (data, index.html) and not a kit archiver made; nothing was written"
    )
    assert caught.value.hint == SUBFOLDER_HINT
    assert SUBFOLDER_HINT == "add --subfolder NAME to make the kit in a new folder NAME inside it"
    assert snapshot(key) == before
    write_manifest(manifest, tmp_path / "m.json")
    assert run("package", tmp_path / "m.json", "--archive", archive, "-o", key, "-q") == (
        2,
        "",
        f"Error: {caught.value.message}\nHint: {SUBFOLDER_HINT}\n",
    )
    assert snapshot(key) == before

    # What --subfolder does: the kit in a folder of its own, the teacher's files untouched.
    assert run(
        "package", tmp_path / "m.json", "--archive", archive, "-o", key, "--subfolder", "videos",
        "-q",
    ) == (0, "", "")  # fmt: skip
    bagit.Bag(str(key / "videos")).validate()
    assert {p: s for p, s in snapshot(key).items() if not p.startswith("videos")} == before


def test_a_folder_holding_only_what_systems_and_killed_runs_leave_becomes_a_kit(
    three: tuple[list[Entry], Path], tmp_path: Path
) -> None:
    items, archive = three
    key = tmp_path / "key"
    for folder in ("System Volume Information", ".Trashes/501", ".Trash-1000/files", "lost+found"):
        (key / folder).mkdir(parents=True)
    (key / "System Volume Information" / "IndexerVolumeGuid").write_text("{1234}")
    (key / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    # A first build killed while staging: its staging folder, and the temporary files an
    # earlier release staged beside their final names.
    (key / STAGING / "data" / "videos" / "Evaluer-avec-le-numerique").mkdir(parents=True)
    (
        key
        / STAGING
        / "data"
        / "videos"
        / "Evaluer-avec-le-numerique"
        / "Evaluer-avec-le-numerique-240p.mp4"
    ).write_bytes(b"cut")
    (key / "data" / "videos" / "Evaluer-avec-le-numerique").mkdir(parents=True)
    (
        key
        / "data"
        / "videos"
        / "Evaluer-avec-le-numerique"
        / ".Evaluer-avec-le-numerique-240p.mp4.archiver-tmp"
    ).write_bytes(b"cut")
    (key / ".index.html.archiver-tmp").write_text("<html")
    package(Manifest(entries=tuple(items)), archive, key)
    bagit.Bag(str(key)).validate()
    assert not list(key.rglob("*.archiver-tmp"))
    assert not (key / STAGING).exists()
    assert (key / "System Volume Information" / "IndexerVolumeGuid").read_text() == "{1234}"
    assert (key / ".DS_Store").exists()
    assert (key / ".Trash-1000" / "files").is_dir()


def test_a_file_given_as_the_kit_is_refused(
    three: tuple[list[Entry], Path], tmp_path: Path
) -> None:
    items, archive = three
    (tmp_path / "kit").write_text("pas un dossier")
    with pytest.raises(KitRefused) as caught:
        package(Manifest(entries=tuple(items)), archive, tmp_path / "kit")
    assert caught.value.message == f"{tmp_path / 'kit'}: not a folder; nothing was written"
    assert (tmp_path / "kit").read_text() == "pas un dossier"


# -- the archive is never within a kit's reach -------------------------------------------------


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("archive", "this is the archive's folder; a kit needs one of its own"),
        ("archive/kit", "inside the archive {archive}; nothing was written"),
        (".", "holds the archive {archive}; nothing was written"),
        ("archive/media/..", "this is the archive's folder; a kit needs one of its own"),
        ("link-to-archive", "this is the archive's folder; a kit needs one of its own"),
        ("link-to-archive/kit", "inside the archive {archive}; nothing was written"),
    ],
)
def test_a_kit_that_is_in_or_holds_the_archive_is_refused_before_anything_is_written(
    three: tuple[list[Entry], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    reason: str,
) -> None:
    items, archive = three
    (tmp_path / "link-to-archive").symlink_to(archive)
    monkeypatch.chdir(tmp_path)
    manifest = Manifest(entries=tuple(items))
    before = snapshot(tmp_path)
    with pytest.raises(KitRefused) as caught:
        package(manifest, archive, Path(where))
    assert caught.value.exit_code == 2
    assert caught.value.message == f"{where}: {reason.format(archive=archive)}"
    assert caught.value.hint == "choose a kit folder outside the archive, and not one that holds it"
    with Archive(archive) as opened, opened.locked(), pytest.raises(KitRefused):
        build_kit(manifest, opened, Path(where))  # as sync calls it
    assert snapshot(tmp_path) == before


def test_sync_with_the_kit_holding_the_archive_deletes_nothing(
    server: FileServer, clips: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `archiver sync fiches --archive data --kit .`, run from the folder holding the archive.
    server.add("/une.mp4", clips[0])
    (tmp_path / "fiches").mkdir()
    (tmp_path / "fiches" / "une.md").write_text(
        f"---\ntitle: Une\nvideoDLHref: {server.url('/une.mp4')}\n---\n\n## Script\n\nTexte.\n"
    )
    monkeypatch.chdir(tmp_path)
    sync([Path("fiches")], Path("data"), Path("kit"))  # an archive that holds a video
    asked = len(server.requests())
    with pytest.raises(KitRefused) as caught:
        sync([Path("fiches")], Path("data"), Path("."))
    assert caught.value.message == ".: holds the archive data; nothing was written"
    assert len(server.requests()) == asked  # refused before a single request
    assert (tmp_path / "data" / "catalog.sqlite").is_file()
    assert (tmp_path / "data" / "archiver.lock").is_file()
    with Archive(tmp_path / "data") as archive:
        record = archive.held("une", "video")
    assert record is not None
    assert (tmp_path / "data" / record.path).read_bytes() == clips[0]
    assert not (tmp_path / "data" / "index.html").exists()


# -- inside a kit of archiver's ----------------------------------------------------------------


def test_files_the_user_added_to_a_kit_are_left_and_named_in_a_warning(
    three: tuple[list[Entry], Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items, archive = three
    kit = tmp_path / "kit"
    package(Manifest(entries=tuple(items)), archive, kit)
    (kit / "data" / "notes").mkdir()
    (kit / "data" / "notes" / "seance-1.txt").write_text("mes notes")
    (kit / "data" / "videos" / "Collaborer-en-classe" / "questions.txt").write_text("à poser")
    (kit / "A LIRE.txt").write_text("clé de la salle 12")
    with caplog.at_level(logging.WARNING, logger="archiver"):
        report = package(Manifest(entries=tuple(items[:2])), archive, kit)
    assert report.removed == 3  # collaborer's page, video and poster: archiver's, listed
    assert (kit / "data" / "notes" / "seance-1.txt").read_text() == "mes notes"
    assert (
        kit / "data" / "videos" / "Collaborer-en-classe" / "questions.txt"
    ).read_text() == "à poser"
    assert sorted(p.name for p in (kit / "data" / "videos" / "Collaborer-en-classe").iterdir()) == [
        "questions.txt"
    ]
    assert (kit / "A LIRE.txt").read_text() == "clé de la salle 12"
    warning = (
        f"{kit}: 3 files archiver did not write left as they are: A LIRE.txt,"
        " data/notes/seance-1.txt, data/videos/Collaborer-en-classe/questions.txt; archiver verify"
        " reports those under data/ as extra files"
    )
    assert caplog.messages == [warning]
    assert report.warnings == (warning,)
    assert sorted(str(p) for p in verify_bag(kit)[2]) == [
        "data/notes/seance-1.txt: not in the kit's manifest (extra file)",
        "data/videos/Collaborer-en-classe/questions.txt: not in the kit's manifest (extra file)",
    ]


def test_a_file_archiver_did_not_write_where_the_kit_needs_one_is_refused(
    three: tuple[list[Entry], Path], tmp_path: Path
) -> None:
    kit = tmp_path / "kit"
    manifest = two_of_three_packaged(three, kit)
    mine = kit / "data" / "videos" / "Collaborer-en-classe" / "index.html"
    mine.parent.mkdir()
    mine.write_text("<p>ma page sur le travail en îlots</p>")
    before = snapshot(kit)
    with pytest.raises(KitRefused) as caught:
        package(manifest, three[1], kit)
    assert caught.value.message == f"{mine}: {NOT_OURS}"
    assert caught.value.hint == (
        "move it out of the kit folder (or delete it if it is archiver's), then package again"
    )
    assert snapshot(kit) == before
    mine.unlink()
    package(manifest, three[1], kit)
    bagit.Bag(str(kit)).validate()


# -- a damaged list ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", [MANIFEST, TAGMANIFEST])
def test_a_damaged_manifest_is_rebuilt_by_packaging_again(
    three: tuple[list[Entry], Path], tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    items, archive = three
    kit = tmp_path / "kit"
    manifest = Manifest(entries=tuple(items))
    package(manifest, archive, kit)
    (kit / name).write_bytes(b"\x00\x00 une cl\xc3\xa9 arrach\xc3\xa9e\n\xff\xfe")
    said = f"{name}: damaged (2 unreadable lines); packaging again rebuilds it"
    assert said in [str(problem) for problem in verify_bag(kit)[2]]
    with caplog.at_level(logging.WARNING, logger="archiver"):
        report = package(manifest, archive, kit)
    assert caplog.messages == [
        f"{kit / name}: damaged (2 unreadable lines); files archiver cannot prove it wrote"
        " are left as they are, and it is written anew"
    ]
    assert report.written == 0  # every file was there, whole: taken back, not rewritten
    assert verify_bag(kit)[2] == []
    bagit.Bag(str(kit)).validate()


def test_a_damaged_manifest_never_lets_archiver_delete_what_it_no_longer_lists(
    three: tuple[list[Entry], Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items, archive = three
    kit = tmp_path / "kit"
    package(Manifest(entries=tuple(items)), archive, kit)
    lines = (kit / MANIFEST).read_text().splitlines(keepends=True)
    damaged = [("#" * 70 + "\n") if "/Collaborer-en-classe/" in line else line for line in lines]
    (kit / MANIFEST).write_text("".join(damaged))
    collaborer = snapshot(kit / "data" / "videos" / "Collaborer-en-classe")
    with caplog.at_level(logging.WARNING, logger="archiver"):
        report = package(Manifest(entries=tuple(items[:2])), archive, kit)
    assert report.removed == 0
    assert snapshot(kit / "data" / "videos" / "Collaborer-en-classe") == collaborer
    assert caplog.messages[0].startswith(f"{kit / MANIFEST}: damaged (3 unreadable lines)")
    assert caplog.messages[1] == (
        f"{kit}: 3 files archiver did not write left as they are:"
        " data/videos/Collaborer-en-classe/Collaborer-en-classe-240p.mp4,"
        " data/videos/Collaborer-en-classe/index.html,"
        " data/videos/Collaborer-en-classe/poster.jpg; archiver verify reports those under data/"
        " as extra files"
    )
    assert b"Collaborer" not in (kit / "data" / "index.html").read_bytes()


GIB = 1024**3
# What a run of archiver takes resident (about 45 MiB, measured) with room to spare; reading a
# 1 GiB manifest whole took 3.1 GB.
RUN_RSS = 128 * 1024 * 1024


def test_a_huge_manifest_is_damaged_and_never_read_whole(
    three: tuple[list[Entry], Path], tmp_path: Path
) -> None:
    items, archive = three
    kit = tmp_path / "kit"
    write_manifest(Manifest(entries=tuple(items)), tmp_path / "m.json")
    package(Manifest(entries=tuple(items)), archive, kit)
    os.truncate(kit / MANIFEST, GIB)  # sparse: no disk taken, a gibibyte to read
    limit = format_bytes(MAX_MANIFEST)
    damaged = f"damaged (1.0 GiB, more than a manifest ever holds ({limit}))"

    verified = run_bounded(["verify", kit, "-q"], cwd=tmp_path)
    assert verified.code == 1, verified.stderr
    errors = verified.stderr.splitlines()
    assert errors[0] == f"Error: {kit / MANIFEST}: {damaged}; packaging again rebuilds it"
    assert f"Error: {kit / MANIFEST}: corrupt: 1.0 GiB, not the file listed" in errors
    # Nothing it says is trusted: every payload file is named, none is missed.
    assert sum(line.endswith("(extra file)") for line in errors) == 15
    assert verified.max_rss is not None and verified.max_rss < RUN_RSS

    # Packaging again rebuilds it as for any damaged manifest, holding no more of it.
    packaged = run_bounded(
        ["package", tmp_path / "m.json", "--archive", archive, "-o", kit], cwd=tmp_path
    )
    assert packaged.code == 0, packaged.stderr
    assert packaged.stderr.splitlines()[0] == (
        f"Warning: {kit / MANIFEST}: {damaged}; files archiver cannot prove it wrote are left"
        " as they are, and it is written anew"
    )
    assert packaged.max_rss is not None and packaged.max_rss < RUN_RSS
    assert (kit / MANIFEST).stat().st_size < 4096
    assert verify_bag(kit)[2] == []
    bagit.Bag(str(kit)).validate()


def test_a_huge_journal_is_never_read_whole(
    three: tuple[list[Entry], Path], tmp_path: Path
) -> None:
    items, archive = three
    kit = tmp_path / "kit"
    write_manifest(Manifest(entries=tuple(items)), tmp_path / "m.json")
    package(Manifest(entries=tuple(items[:2])), archive, kit)
    (kit / JOURNAL).write_text(
        f"{JOURNAL_HEADER}data/videos/Evaluer-avec-le-numerique/index.html\n"
    )
    os.truncate(kit / JOURNAL, GIB)
    packaged = run_bounded(
        ["package", tmp_path / "m.json", "--archive", archive, "-o", kit, "-q"], cwd=tmp_path
    )
    assert (packaged.code, packaged.stderr) == (0, "")
    assert packaged.max_rss is not None and packaged.max_rss < RUN_RSS
    assert not (kit / JOURNAL).exists()
    assert verify_bag(kit)[2] == []
    bagit.Bag(str(kit)).validate()


def test_a_first_build_interrupted_while_renaming_is_finished_by_the_next(
    three: tuple[list[Entry], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items, archive = three
    kit = tmp_path / "kit"
    manifest = Manifest(entries=tuple(items))
    real_replace = os.replace
    renamed: list[object] = []

    def replace_then_die(source: object, target: object) -> None:
        if STAGING in Path(str(source)).parts and not str(target).endswith(JOURNAL):
            if len(renamed) == 4:
                raise KeyboardInterrupt  # the key pulled out midway: no mark, no manifest yet
            renamed.append(target)
        real_replace(source, target)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(kit_writer.os, "replace", replace_then_die)
        with pytest.raises(KeyboardInterrupt):
            package(manifest, archive, kit)
    assert not (kit / "bag-info.txt").exists()
    assert (kit / JOURNAL).is_file()
    assert not claim(kit).new  # the journal says whose the placed files are
    # Another title: the catalog page placed before the interruption changes, and is replaced.
    package(manifest, archive, kit, settings=KitSettings(title="Former au numérique"))
    assert not (kit / JOURNAL).exists()
    assert "Former au numérique" in (kit / "data" / "index.html").read_text()
    assert verify_bag(kit)[2] == []
    bagit.Bag(str(kit)).validate()


def test_verify_names_an_update_interrupted_while_renaming(
    three: tuple[list[Entry], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kit = tmp_path / "kit"
    manifest = two_of_three_packaged(three, kit)
    real_replace = os.replace

    def replace_then_die(source: object, target: object) -> None:
        if str(target).endswith("/index.html"):
            raise KeyboardInterrupt
        real_replace(source, target)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(kit_writer.os, "replace", replace_then_die)
        with pytest.raises(KeyboardInterrupt):
            package(manifest, three[1], kit)
    problems = [str(p) for p in verify_bag(kit)[2]]
    assert problems[0] == f"{JOURNAL}: an update was interrupted; packaging again completes it"
    package(manifest, three[1], kit)
    assert verify_bag(kit)[2] == []


# -- links, pipes and folders are never written through ----------------------------------------


def _link_file(kit: Path, outside: Path) -> Path:
    target = kit / "data" / "videos" / "Evaluer-avec-le-numerique" / "index.html"
    target.unlink()
    target.symlink_to(outside / "victim.html")
    return target


def _link_folder(kit: Path, outside: Path) -> Path:
    target = kit / "data" / "videos" / "Evaluer-avec-le-numerique"
    for child in target.iterdir():
        child.unlink()
    target.rmdir()
    target.symlink_to(outside, target_is_directory=True)
    return target


def _link_payload(kit: Path, outside: Path) -> Path:
    target = kit / "data"
    os.rename(target, outside / "data")
    target.symlink_to(outside / "data", target_is_directory=True)
    return target


def _fifo(kit: Path, _outside: Path) -> Path:
    target = (
        kit / "data" / "videos" / "Evaluer-avec-le-numerique" / "Evaluer-avec-le-numerique-240p.mp4"
    )
    target.unlink()
    os.mkfifo(target)
    return target


def _folder(kit: Path, _outside: Path) -> Path:
    target = kit / "data" / "videos" / "Evaluer-avec-le-numerique" / "poster.jpg"
    target.unlink()
    (target / "inside").mkdir(parents=True)
    return target


def _file_for_folder(kit: Path, _outside: Path) -> Path:
    target = kit / "data" / "videos" / "Collaborer-en-classe"
    target.write_text("un fichier où le kit met un dossier")
    return target


def _linked_tag(kit: Path, outside: Path) -> Path:
    target = kit / "LISEZMOI.txt"
    target.unlink()
    target.symlink_to(outside / "victim.html")
    return target


def _linked_staging(kit: Path, outside: Path) -> Path:
    target = kit / STAGING
    target.symlink_to(outside, target_is_directory=True)
    return target


def _file_as_staging(kit: Path, _outside: Path) -> Path:
    target = kit / STAGING
    target.write_text("un fichier à moi")
    return target


@pytest.mark.parametrize(
    ("perturb", "reason"),
    [
        (_link_file, "a symbolic link; archiver does not write through links"),
        (_linked_staging, "a symbolic link; archiver does not write through links"),
        (_file_as_staging, "a file where archiver stages an update's files"),
        (_link_folder, LINKED_FOLDER),
        (_link_payload, LINKED_FOLDER),
        (_fifo, "a device or other special file, not a regular file"),
        (_folder, "a folder, not a file"),
        (_file_for_folder, "a file where the kit needs a folder"),
        (_linked_tag, "a symbolic link; archiver does not write through links"),
    ],
)
def test_a_link_pipe_or_folder_where_the_kit_writes_is_refused_naming_it(
    three: tuple[list[Entry], Path],
    tmp_path: Path,
    perturb: Callable[[Path, Path], Path],
    reason: str,
) -> None:
    kit, outside = tmp_path / "kit", tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.html").write_text("à ne pas toucher")
    manifest = two_of_three_packaged(three, kit)
    target = perturb(kit, outside)
    before, outside_before = snapshot(kit), snapshot(outside)
    with pytest.raises(KitRefused) as caught:
        package(manifest, three[1], kit, settings=KitSettings(title="Un autre titre"))
    assert caught.value.message == f"{target}: {reason}; nothing was written"
    assert caught.value.exit_code == 2
    assert snapshot(kit) == before
    assert snapshot(outside) == outside_before


def test_files_no_longer_planned_behind_a_linked_folder_are_left(
    three: tuple[list[Entry], Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    items, archive = three
    kit, outside = tmp_path / "kit", tmp_path / "outside"
    package(Manifest(entries=tuple(items)), archive, kit)
    # The folder of a video about to leave the kit, now a link to someone's folder whose
    # files have the names archiver would delete.
    os.rename(kit / "data" / "videos" / "Collaborer-en-classe", outside)
    (kit / "data" / "videos" / "Collaborer-en-classe").symlink_to(outside, target_is_directory=True)
    kept = snapshot(outside)
    with caplog.at_level(logging.WARNING, logger="archiver"):
        package(Manifest(entries=tuple(items[:2])), archive, kit)
    assert snapshot(outside) == kept
    folder = kit / "data" / "videos" / "Collaborer-en-classe"
    assert (
        f"{folder}: {LINKED_FOLDER}; data/videos/Collaborer-en-classe/index.html is left as it is"
        in caplog.messages
    )


# -- one run at a time -------------------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from archiver.kit.lock import locked
with locked(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(120)
"""


@contextlib.contextmanager
def held_elsewhere(kit: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the kit's lock, until the block ends (or it is killed)."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(kit)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "held\n"
            yield holder
        finally:
            holder.kill()


def test_a_second_run_on_a_kit_in_use_exits_3_and_a_killed_holder_lets_go(
    three: tuple[list[Entry], Path], tmp_path: Path
) -> None:
    items, archive = three
    kit = tmp_path / "kit"
    kit.mkdir()
    manifest = Manifest(entries=tuple(items))
    with held_elsewhere(kit) as holder:
        with pytest.raises(LockHeld) as caught:
            package(manifest, archive, kit)
        assert caught.value.exit_code == 3
        assert caught.value.message == f"{kit} is locked by process {holder.pid}"
        assert caught.value.hint == "another archiver run is using this kit; wait for it to finish"
        assert list(kit.iterdir()) == []  # nothing written, no lock file either
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        package(manifest, archive, kit)  # the kernel let go of the lock with the process
    assert verify_bag(kit)[2] == []
    assert sorted(p.name for p in kit.iterdir() if p.name.startswith(".")) == []


def test_two_archives_packaging_one_kit_at_once_leave_a_whole_kit(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    items = entries(server, clips)
    first, archive_a = held(tmp_path / "a", items[:2])
    second, archive_b = held(tmp_path / "b", items[1:])
    kit = tmp_path / "kit"
    refused: list[LockHeld] = []

    class MeanwhileAnotherRun(NullProgress):
        def begin(self, total: int | None, total_bytes: int | None = None) -> None:
            with contextlib.suppress(LockHeld):
                package(second, archive_b, kit)
                return
            refused.append(LockHeld(kit, None))

    package(first, archive_a, kit, progress=MeanwhileAnotherRun())
    assert refused, "the second run was not refused while the first held the kit"
    assert verify_bag(kit)[2] == []
    package(second, archive_b, kit)  # then it runs, and the kit is its own
    assert verify_bag(kit)[2] == []
    bagit.Bag(str(kit)).validate()
    assert not (kit / "data" / "videos" / "Differencier-ses-pratiques").exists()


# -- names from the item and the role ----------------------------------------------------------


def test_names_in_the_kit_come_from_the_item_and_the_role_not_from_urls(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    fiche, transcript = PDF + b"% la fiche\n", PDF + b"% la transcription\n"
    server.add("/lecteur/index.html", clips[0])  # a video whose URL ends like the page's
    server.add("/fiches/download.php", fiche)  # two companions whose URLs end alike
    server.add("/scripts/download.php", transcript)
    entry = make_entry(
        "accueil",
        server.url("/lecteur/index.html"),
        assets=(
            Asset("fiche_pdf", server.url("/fiches/download.php?f=12")),
            Asset("transcript_pdf", server.url("/scripts/download.php?f=12")),
        ),
    )
    manifest, archive = held(tmp_path, [entry])
    kit = tmp_path / "kit"
    package(manifest, archive, kit)
    folder = kit / "data" / "videos" / "Video-accueil"
    assert sorted(p.name for p in folder.iterdir()) == [
        "Video-accueil-240p.mp4", "fiche.pdf", "index.html", "poster.jpg", "transcription.pdf",
    ]  # fmt: skip
    assert (folder / "Video-accueil-240p.mp4").read_bytes() == clips[0]
    assert (folder / "index.html").read_bytes().startswith(b"<!DOCTYPE html>")
    assert (folder / "fiche.pdf").read_bytes() == fiche
    assert (folder / "transcription.pdf").read_bytes() == transcript
    page = (folder / "index.html").read_text()
    assert 'href="fiche.pdf"' in page
    assert 'href="transcription.pdf"' in page
    assert '<source src="Video-accueil-240p.mp4" type="video/mp4">' in page
    bagit.Bag(str(kit)).validate()


def _png() -> bytes:
    """A 1×1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def test_stored_names_never_reach_the_kit_and_each_file_is_what_its_role_says(
    clips: list[bytes], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An archive of an earlier release: its files named after their URLs, one of them a login
    # page a captive portal answered for the fiche's PDF.
    entry = make_entry(
        "ancien",
        "https://x.org/index.html",
        assets=(
            Asset("fiche_pdf", "https://x.org/fiche"),
            Asset("transcript_pdf", "https://x.org/script"),
        ),
    )
    stored = {
        ("video", "index.html"): clips[0],
        ("fiche_pdf", "captions.js"): b"<!doctype html><title>Portail captif</title>",
        ("transcript_pdf", "poster.jpg"): PDF,
        ("preview", "preview.jpg"): _png(),
        (
            "caption_fr",
            "download.php",
        ): "\ufeffWEBVTT\n\n00:00.000 --> 00:01.000\nBonjour\n".encode(),
        ("caption_de", "sous-titres.vtt"): b"<html>pas des sous-titres</html>",
        ("caption_../x", "x.vtt"): b"WEBVTT\n",
    }
    root = tmp_path / "archive"
    with Archive(root) as archive:
        archive.record_item(entry)
        for (role, name), data in stored.items():
            partial = root / "partial" / f"{role.replace('/', '_')}.part"
            partial.write_bytes(data)
            url = f"https://x.org/{name}"
            digest = hashlib.sha256(data).hexdigest()
            fetched = FetchedFile(url, url, digest, len(data), None, None, None)
            archive.commit("ancien", role, name, partial, fetched)
    with caplog.at_level(logging.WARNING, logger="archiver"):
        package(Manifest(entries=(entry,)), root, tmp_path / "kit")
    folder = tmp_path / "kit" / "data" / "videos" / "Video-ancien"
    assert sorted(p.name for p in folder.iterdir()) == [
        "Video-ancien-240p.mp4", "captions-fr.vtt", "captions.js", "index.html", "poster.png", "transcription.pdf",
    ]  # fmt: skip
    assert (folder / "poster.png").read_bytes() == _png()
    assert (folder / "transcription.pdf").read_bytes() == PDF
    assert (folder / "captions.js").read_bytes().startswith(b"window.ARCHIVER_CAPTIONS = ")
    page = (folder / "index.html").read_text()
    assert "fiche.pdf" not in page
    assert 'poster="poster.png"' in page
    assert caplog.messages == [
        "Vidéo ancien (ancien): fiche_pdf: not a PDF: a login page?; left out of the kit",
        "Vidéo ancien (ancien): captions '../x': not a language code; left out",
        "Vidéo ancien (ancien): captions de: not WebVTT captions: a login page?; left out",
    ]
    bagit.Bag(str(tmp_path / "kit")).validate()


# -- a key that fills up -----------------------------------------------------------------------


def test_a_key_full_when_the_update_notes_its_journal_keeps_the_previous_kit(
    three: tuple[list[Entry], Path],
    tmp_path: Path,
    small_disk: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    disk = small_disk("16m")
    kit = disk / "kit"
    manifest = two_of_three_packaged(three, kit)
    before, free = snapshot(kit), None
    real_note = kit_writer._note_journal
    given_back: list[Callable[[int], None]] = []

    def fill_then_note(*args: object) -> None:
        nonlocal free
        free = _free_without_ballast(disk)
        given_back.append(fill(disk))  # the disk fills up as the last staged file is done
        real_note(*args)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(kit_writer, "_note_journal", fill_then_note)
        with pytest.raises(KitError) as caught:
            package(manifest, three[1], kit, settings=KitSettings(copy=True))
    assert caught.value.exit_code == 1
    assert caught.value.message == f"{kit}: the key is full; the kit was left as it was"
    (disk / "ballast").unlink()
    assert snapshot(kit) == before
    assert verify_bag(kit)[2] == []
    bagit.Bag(str(kit)).validate()
    assert _free_without_ballast(disk) >= (free or 0)  # every staged byte let go
    grow(disk, "32m")
    package(manifest, three[1], kit, settings=KitSettings(copy=True))
    bagit.Bag(str(kit)).validate()


def _free_without_ballast(disk: Path) -> int:
    return shutil.disk_usage(disk).free + (
        (disk / "ballast").stat().st_size if (disk / "ballast").exists() else 0
    )


# -- library checks ----------------------------------------------------------------------------


def test_write_kit_refuses_a_name_no_key_accepts(tmp_path: Path) -> None:
    with pytest.raises(KitError):
        kit_writer.write_kit(
            tmp_path / "kit",
            {"data/../../x": Source.of_bytes(b"x")},
            {},
            claim=Claim(new=True),
            archive_root=tmp_path,
            copy=False,
            progress=NullProgress(),
        )
    assert not (tmp_path / "x").exists()


def test_a_manifest_line_naming_a_path_outside_the_kit_is_never_archivers(
    three: tuple[list[Entry], Path], tmp_path: Path
) -> None:
    items, archive = three
    kit = tmp_path / "kit"
    package(Manifest(entries=tuple(items)), archive, kit)
    victim = tmp_path / "victim.txt"
    victim.write_text("à garder")
    with (kit / MANIFEST).open("a") as stream:
        stream.write(f"{'0' * 64}  data/../../victim.txt\n{'0' * 64}  {victim}\n")
    package(Manifest(entries=tuple(items[:1])), archive, kit)
    assert victim.read_text() == "à garder"
    bagit.Bag(str(kit)).validate()


# -- an update that changes nothing (issue 14: a kit of 10,000 videos re-packaged in 3 s) -------


def test_an_update_that_changes_nothing_makes_no_page_and_no_tag_file(
    three: tuple[list[Entry], Path], tmp_path: Path
) -> None:
    """Its pages and tag files are known by the kit's manifests: none is rendered, so a fresh
    run never even imports jinja2 (40 to 80 ms of a run that writes nothing)."""
    items, archive = three
    kit = tmp_path / "kit"
    manifest = Manifest(entries=tuple(items))
    package(manifest, archive, kit)
    write_manifest(manifest, tmp_path / "m.json")
    before = snapshot(kit)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from archiver.kit import package\n"
        "from archiver.manifest import load_manifest\n"
        f"report = package(load_manifest(Path({str(tmp_path / 'm.json')!r})),"
        f" Path({str(archive)!r}), Path({str(kit)!r}))\n"
        "print(report.written, report.removed, report.unchanged, 'jinja2' in sys.modules)\n"
    )
    out = fresh_python(code, timeout=120)
    listed = len((kit / MANIFEST).read_text().splitlines())
    assert out.split() == ["0", "0", str(listed), "False"]
    assert snapshot(kit) == before


def test_one_update_rewrites_what_a_person_deleted_or_changed_and_names_what_they_added(
    three: tuple[list[Entry], Path], tmp_path: Path
) -> None:
    """The kit is read once for the update's checks (:class:`archiver.kit.tree.Tree`): each
    file archiver wrote is still looked at, at its size, and so is each file beside them."""
    items, archive = three
    kit = tmp_path / "kit"
    manifest = Manifest(entries=tuple(items))
    copied = KitSettings(copy=True)  # not hard links: a change to one would be the archive's
    package(manifest, archive, kit, settings=copied)
    folder = kit / "data" / "videos" / "Collaborer-en-classe"
    page, poster = folder / "index.html", folder / "poster.jpg"
    page_bytes, poster_bytes = page.read_bytes(), poster.read_bytes()
    page.unlink()
    poster.write_bytes(poster_bytes + b"retouchee")
    (folder / "questions.txt").write_text("à poser")
    (kit / "data" / "notes.txt").write_text("séance 1")
    report = package(manifest, archive, kit, settings=copied)
    assert report.changed == (
        "data/videos/Collaborer-en-classe/index.html",
        "data/videos/Collaborer-en-classe/poster.jpg",
    )
    assert (page.read_bytes(), poster.read_bytes()) == (page_bytes, poster_bytes)
    assert report.warnings == (
        f"{kit}: 2 files archiver did not write left as they are: data/notes.txt,"
        " data/videos/Collaborer-en-classe/questions.txt; archiver verify reports those under"
        " data/ as extra files",
    )
    assert sorted(str(p) for p in verify_bag(kit)[2]) == [
        "data/notes.txt: not in the kit's manifest (extra file)",
        "data/videos/Collaborer-en-classe/questions.txt: not in the kit's manifest (extra file)",
    ]


def test_the_cyclic_collector_rests_while_a_kit_is_built(
    three: tuple[list[Entry], Path], tmp_path: Path
) -> None:
    """It rescanned every record of the plan as they grew (0.3 s of a 10,000-video update);
    it is back on once the kit is built, and when building it failed."""
    items, archive = three
    seen: list[bool] = []

    class Watching(NullProgress):
        def begin(self, tasks: int, total: int | None) -> None:
            seen.append(gc.isenabled())

    package(Manifest(entries=tuple(items)), archive, tmp_path / "kit", progress=Watching())
    assert seen == [False]
    assert gc.isenabled()
    kit = tmp_path / "other"
    manifest = two_of_three_packaged(three, kit)
    mine = kit / "data" / "videos" / "Collaborer-en-classe" / "index.html"
    mine.parent.mkdir()
    mine.write_text("<p>ma page</p>")
    with pytest.raises(KitRefused):  # refused while the kit is built, by the survey
        package(manifest, archive, kit)
    assert gc.isenabled()
