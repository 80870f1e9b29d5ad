"""An update that only renames files moves them within the kit: a new title (or the names of
an earlier release) never copies a video onto the key again."""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import bagit
import pytest

import archiver.kit.write as kit_writer
from archiver.entry import Entry
from archiver.kit import KitReport, KitSettings, package
from archiver.kit.bag import JOURNAL, verify_bag
from archiver.kit.derive import Source
from archiver.kit.ownership import STAGING, claim
from archiver.manifest import Manifest, write_manifest
from archiver.progress import NullProgress

from . import test_package
from .conftest import content_of, make_entry
from .server import FileServer
from .test_kit_ownership import held
from .test_package import entries, files_in, run

clips = test_package.clips
COPY = KitSettings(copy=True)  # the kit's videos its own files, not links to the archive's
TITLES = ("Différencier autrement", "Évaluer sans noter", "Coopérer en classe")


def inodes(kit: Path) -> dict[int, str]:
    """Every file below ``data/videos``: its inode → its path in the kit."""
    return {
        path.stat().st_ino: path.relative_to(kit).as_posix()
        for path in (kit / "data" / "videos").rglob("*")
        if path.is_file()
    }


def retitled(items: list[Entry]) -> Manifest:
    """The same videos, each under a new title: every folder and file of theirs renamed."""
    return Manifest(
        entries=tuple(dataclasses.replace(e, title=t) for e, t in zip(items, TITLES, strict=True))
    )


def video_bytes(kit: Path) -> int:
    return sum(path.stat().st_size for path in (kit / "data" / "videos").glob("*/*.mp4"))


@pytest.fixture
def kit_of_three(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> tuple[list[Entry], Path, Path]:
    """Three videos held, and a kit of them (copied, not linked) at ``tmp_path/kit``."""
    items = entries(server, clips)
    manifest, archive = held(tmp_path, items)
    package(manifest, archive, tmp_path / "kit", settings=COPY)
    return items, archive, tmp_path / "kit"


def test_retitled_videos_are_moved_not_copied(
    kit_of_three: tuple[list[Entry], Path, Path],
) -> None:
    items, archive, kit = kit_of_three
    before = inodes(kit)
    old_folders = {path.name for path in (kit / "data" / "videos").iterdir()}
    report = package(retitled(items), archive, kit, settings=COPY)
    after = inodes(kit)

    # Every video and poster is the very file it was, under its new name; only the pages
    # (whose text names the title) are written anew.
    mp4s = {ino: path for ino, path in before.items() if path.endswith(".mp4")}
    assert len(mp4s) == 3
    for ino, old_path in mp4s.items():
        assert ino in after, f"{old_path} was copied, not moved"
        assert after[ino].startswith("data/videos/") and after[ino] != old_path
    assert {after[ino].split("/")[2] for ino in mp4s} == {
        "Differencier-autrement",
        "Evaluer-sans-noter",
        "Cooperer-en-classe",
    }
    assert report.moved == 6  # three videos, three posters
    assert report.bytes_written < video_bytes(kit) // 10, report
    assert report.bytes_written < 64 * 1024, report  # pages and lists: kilobytes
    assert not old_folders & {path.name for path in (kit / "data" / "videos").iterdir()}
    assert not (kit / STAGING).exists()
    assert verify_bag(kit)[2] == []
    bagit.Bag(str(kit)).validate()


def test_without_hard_links_a_move_is_a_rename_with_the_other_files(
    kit_of_three: tuple[list[Entry], Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAT and exFAT, what most USB keys are formatted in, refuse hard links (EPERM)."""
    items, archive, kit = kit_of_three
    before = {ino for ino, path in inodes(kit).items() if path.endswith(".mp4")}
    real_link = os.link

    def no_links(source: object, target: object, **kwargs: object) -> None:
        if str(target).startswith(str(kit)):
            raise OSError(errno.EPERM, "Operation not permitted", str(target))
        real_link(source, target, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(kit_writer.os, "link", no_links)
    report = package(retitled(items), archive, kit, settings=COPY)
    assert before <= set(inodes(kit))
    assert report.moved == 6
    assert report.bytes_written < 64 * 1024
    assert verify_bag(kit)[2] == []
    bagit.Bag(str(kit)).validate()


@pytest.mark.parametrize("links", [True, False], ids=["hard-links", "fat"])
def test_an_update_interrupted_anywhere_while_moving_is_finished_without_a_copy(
    kit_of_three: tuple[list[Entry], Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    links: bool,
) -> None:
    """Killed at each link and rename of the update in turn: the kit is the previous one
    (verify accepts it), or one verify names as interrupted; the next run finishes it, and
    every video is still the file it was."""
    items, archive, kit = kit_of_three
    start = {ino for ino, path in inodes(kit).items() if path.endswith(".mp4")}
    manifest = retitled(items)
    real_link, real_replace = os.link, os.replace
    step = 0
    while True:
        calls = [0]  # the update's links and renames in the kit so far

        def counted(
            real: Callable[..., None], fails: bool, step: int = step, calls: list[int] = calls
        ) -> Callable[..., None]:
            def call(source: object, target: object, **kwargs: object) -> None:
                if not str(target).startswith(str(kit)):
                    real(source, target, **kwargs)
                    return
                if fails:
                    raise OSError(errno.EPERM, "Operation not permitted", str(target))
                calls[0] += 1
                if calls[0] > step:
                    raise KeyboardInterrupt  # the process dies here
                real(source, target, **kwargs)

            return call

        with monkeypatch.context() as patch:
            patch.setattr(kit_writer.os, "link", counted(real_link, not links))
            patch.setattr(kit_writer.os, "replace", counted(real_replace, False))
            try:
                done = package(manifest, archive, kit, settings=COPY)
            except KeyboardInterrupt:
                done = None
        problems = verify_bag(kit)[2]
        if (kit / JOURNAL).exists():  # killed while renaming: said so
            assert str(problems[0]).startswith(f"{JOURNAL}: an update was interrupted"), problems
        else:
            assert problems == [], (step, problems)
        finish = package(manifest, archive, kit, settings=COPY)
        assert verify_bag(kit)[2] == [], step
        assert not (kit / STAGING).exists()
        assert start <= set(inodes(kit)), f"killed at step {step}, a video was copied"
        assert finish.bytes_written + (done.bytes_written if done else 0) < 64 * 1024
        if done is not None:
            break
        # The kit as it was before the update, for the next step: its old names again.
        package(Manifest(entries=tuple(items)), archive, kit, settings=COPY)
        assert start <= set(inodes(kit))
        step += 1
    assert step >= 8, "the update made fewer steps than a move needs: the test proved nothing"
    bagit.Bag(str(kit)).validate()


def test_the_same_bytes_wanted_at_two_paths_are_moved_once_and_copied_once(
    tmp_path: Path,
) -> None:
    kit = tmp_path / "kit"
    data = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 64
    source = Source.of_bytes(data)

    def write(payload: dict[str, Source]) -> kit_writer.Written:
        return kit_writer.write_kit(
            kit,
            payload,
            {"bag-info.txt": b"Bag-Software-Agent: archiver test\n"},
            claim=claim(kit),
            archive_root=tmp_path,
            copy=True,
            progress=NullProgress(),
        )

    write({"data/videos/a/a.mp4": source})
    first = (kit / "data/videos/a/a.mp4").stat().st_ino
    # Not archiver's: never moved, though it holds the very bytes wanted.
    (kit / "data/videos/mine").mkdir()
    (kit / "data/videos/mine/copie.mp4").write_bytes(data)
    theirs = (kit / "data/videos/mine/copie.mp4").stat().st_ino
    done = write({"data/videos/b/b.mp4": source, "data/videos/c/c.mp4": source})
    assert (done.moved, done.written, done.bytes_written) == (1, 1, len(data))
    held_b, held_c = (kit / f"data/videos/{n}/{n}.mp4" for n in "bc")
    assert held_b.stat().st_ino == first  # the first path gets the file; the other a copy
    assert held_c.stat().st_ino != first and held_c.read_bytes() == data
    assert held_b.stat().st_nlink == held_c.stat().st_nlink == 1
    assert not (kit / "data/videos/a").exists()
    assert (kit / "data/videos/mine/copie.mp4").stat().st_ino == theirs
    assert sorted(done.changed) == [
        "data/videos/a/a.mp4",
        "data/videos/b/b.mp4",
        "data/videos/c/c.mp4",
    ]


def test_summary_counts_of_a_plain_rebuild_are_unchanged(
    kit_of_three: tuple[list[Entry], Path, Path],
) -> None:
    """A kit update with nothing renamed moves nothing."""
    items, archive, kit = kit_of_three
    report: KitReport = package(Manifest(entries=tuple(items)), archive, kit, settings=COPY)
    assert (report.moved, report.written, report.bytes_written) == (0, 0, 0)


def test_an_update_sigkilled_after_staging_a_move_leaves_the_kit_whole_and_moves_once(
    server: FileServer, tmp_path: Path
) -> None:
    """A real ``kill -9`` while the update copies a new video, after it staged the move of a
    retitled one: the previous kit, whole; the next run moves the video, copies nothing of it."""
    big = 32 * 1024 * 1024
    server.add("/grand.mp4", content_of(big, 7))
    server.add("/nouveau.mp4", content_of(big, 8))
    grand = make_entry("grand", server.url("/grand.mp4"), title="Le grand")
    archive = tmp_path / "archive"
    package(held(tmp_path, [grand])[0], archive, tmp_path / "kit", settings=COPY)
    kit = tmp_path / "kit"
    (video,) = (kit / "data" / "videos" / "Le-grand").glob("*.mp4")
    ino = video.stat().st_ino
    before = files_in(kit)
    manifest_bytes = (kit / "manifest-sha256.txt").read_bytes()
    # Retitled (its move is staged first: "A-grand" sorts before "Z-nouveau"), and a new video.
    grand = dataclasses.replace(grand, title="A grand")
    nouveau = make_entry("nouveau", server.url("/nouveau.mp4"), title="Z nouveau")
    manifest = Manifest(entries=(grand, nouveau))
    held(tmp_path, [grand, nouveau])
    write_manifest(manifest, tmp_path / "m.json")
    command = [sys.executable, "-m", "archiver", "-q", "package", str(tmp_path / "m.json"),
               "--archive", str(archive), "-o", str(kit), "--copy"]  # fmt: skip
    copying = kit / STAGING / "data" / "videos" / "Z-nouveau"
    with subprocess.Popen(command) as victim:
        deadline = time.monotonic() + 60
        while victim.poll() is None and not (copying.is_dir() and any(copying.iterdir())):
            assert time.monotonic() < deadline
        os.kill(victim.pid, signal.SIGKILL)
    assert victim.returncode == -signal.SIGKILL, "the update ended before it was killed"
    staged = kit / STAGING / "data" / "videos" / "A-grand"
    assert [p.stat().st_ino for p in staged.glob("*.mp4")] == [ino], "the move was not staged"
    assert not (kit / JOURNAL).exists(), "killed while renaming: the test proved nothing"
    assert (kit / "manifest-sha256.txt").read_bytes() == manifest_bytes
    assert run("verify", kit, "-q") == (0, "", "")  # the previous kit, whole
    bagit.Bag(str(kit)).validate()

    assert run("package", tmp_path / "m.json", "--archive", archive, "-o", kit, "--copy",
               "-q") == (0, "", "")  # fmt: skip
    (moved,) = (kit / "data" / "videos" / "A-grand").glob("*.mp4")
    assert moved.stat().st_ino == ino and moved.stat().st_nlink == 1
    assert not (kit / "data" / "videos" / "Le-grand").exists()
    assert files_in(kit) - before
    assert run("verify", kit, "-q") == (0, "", "")
    bagit.Bag(str(kit)).validate()
