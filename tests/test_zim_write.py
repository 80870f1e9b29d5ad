"""Writing the ZIM: atomic, a full disk named on one line, paths refused, determinism,
hostile text escaped as in the kit, and what Debian's zimcheck says of it (and why)."""

from __future__ import annotations

import errno
import random
import struct
import subprocess
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path

import pytest
from libzim.reader import Archive as ZimArchive
from playwright.sync_api import Browser

from archiver.archive import Archive
from archiver.errors import KitError
from archiver.fetch import download
from archiver.kit import KitSettings
from archiver.kit.derive import Source
from archiver.kit.plan import plan_kit
from archiver.manifest import Manifest, load_manifest, write_manifest
from archiver.progress import NullProgress
from archiver.zim.content import ZimEntry
from archiver.zim.metadata import Metadata
from archiver.zim.verify import END_BLOCK, WHOLE_BELOW, check_written
from archiver.zim.writer import PARTIAL_SUFFIX, _create, write_plan

from .conftest import chromium
from .media import make_mp4
from .server import FileServer
from .test_disk_errors import small_disk
from .test_package import FAST, HOSTILE, entries, hostile_entries, run

__all__ = ["small_disk"]  # the fixture, used by name
from .test_zim import open_served
from .zim_support import kiwix_serve, require_tool

UUID = slice(8, 24)  # the header's UUID: libzim draws it at random
CHECKSUM = 16  # the file's last bytes: the MD5 of all before


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("clips")
    return [make_mp4(folder / f"{s}.mp4", seconds=s).read_bytes() for s in (2, 3, 4)]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def archived(tmp_path: Path, server: FileServer, clips: list[bytes]) -> tuple[Path, Path]:
    """The 3 videos of tests/test_package.py in an archive; its manifest's path."""
    manifest = Manifest(entries=tuple(entries(server, clips)))
    archive = tmp_path / "archive"
    download(manifest, archive, settings=FAST)
    path = tmp_path / "m.json"
    write_manifest(manifest, path)
    return path, archive


def partials(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if PARTIAL_SUFFIX in p.name)


# -- the command line ------------------------------------------------------------------------------


def test_package_zim_is_silent_with_q_and_says_one_line_without(
    server: FileServer, clips: list[bytes], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    manifest, archive = archived(tmp_path, server, clips)
    zim = tmp_path / "out" / "videos.zim"
    assert run("package", manifest, "--archive", archive, "--zim", zim, "-q") == (0, "", "")
    said = capfd.readouterr()
    assert "ZIM file is ready" not in said.out + said.err  # libzim's own chatter is kept
    assert ZimArchive(zim).check()
    code, out, err = run("package", manifest, "--archive", archive, "--zim", zim)
    assert (code, out) == (0, "")
    assert err.startswith(f"ZIM: 3 videos in {zim}; 15 entries, ")
    assert partials(zim.parent) == []


def test_package_writes_the_kit_and_the_zim_in_one_run(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    manifest, archive = archived(tmp_path, server, clips)
    kit, zim = tmp_path / "kit", tmp_path / "videos.zim"
    code, _, err = run("package", manifest, "--archive", archive, "-o", kit, "--zim", zim)
    assert code == 0
    assert [line.split(":")[0] for line in err.splitlines()] == ["Kit", "ZIM"]
    assert (kit / "data" / "index.html").is_file()
    assert ZimArchive(zim).has_entry_by_path("index.html")


def test_package_without_kit_or_zim_is_a_usage_error(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    write_manifest(Manifest(entries=()), manifest)
    code, _, err = run("package", manifest, "--archive", tmp_path / "a")
    assert (code, err) == (
        2,
        "Error: give the kit folder (-o KIT), a ZIM file (--zim FILE.zim), or both\n",
    )


def test_zim_paths_archiver_must_not_write_are_refused_exit_2(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    manifest, archive = archived(tmp_path, server, clips)
    notes = tmp_path / "notes.zim"
    notes.write_text("mes notes, pas un ZIM")
    folder = tmp_path / "dossier.zim"
    folder.mkdir()
    inside = archive / "videos.zim"
    for path, reason in (
        (notes, "is not a ZIM archiver may replace; give another name"),
        (folder, "is a folder; --zim names the ZIM file to write (FILE.zim)"),
        (inside, "is inside the archive; write the ZIM elsewhere"),
    ):
        code, _, err = run("package", manifest, "--archive", archive, "--zim", path)
        assert (code, err) == (2, f"Error: {path}: {reason}\n")
    assert notes.read_text() == "mes notes, pas un ZIM"
    assert not inside.exists()
    code, _, err = run("package", manifest, "--archive", archive, "--zim", tmp_path / "v.txt")
    assert (code, err) == (2, f"Error: --zim {tmp_path / 'v.txt'}: a ZIM's name ends in .zim\n")
    # Inside the folder kit, the ZIM would be a file its manifest does not list: every later
    # `verify` of the kit would fail. Refused before the kit is written, by package and sync.
    kit = tmp_path / "kit"
    in_kit = kit / "data" / "videos.zim"
    reason = "is inside the kit folder, whose manifest would not list it; write the ZIM elsewhere"
    code, _, err = run("package", manifest, "--archive", archive, "-o", kit, "--zim", in_kit)
    assert (code, err) == (2, f"Error: {in_kit}: {reason}\n")
    assert not kit.exists()


# -- a full disk, and atomicity --------------------------------------------------------------------


def test_a_disk_too_small_is_named_before_writing_and_the_old_zim_stays(
    server: FileServer, clips: list[bytes], tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    manifest, archive = archived(tmp_path, server, clips)
    disk = small_disk("2M")  # the videos fit, not the room a ZIM's indexes take on top
    zim = disk / "videos.zim"
    old = b"ZIM\x04" + b"an older ZIM, kept whole" * 10
    zim.write_bytes(old)
    code, out, err = run("package", manifest, "--archive", archive, "--zim", zim, "-q")
    assert (code, out) == (1, "")
    assert err.startswith(f"Error: {zim}: not enough room for the ZIM: it needs about ")
    assert len(err.splitlines()) == 1
    assert zim.read_bytes() == old
    assert partials(disk) == []


class FillsTheDisk(NullProgress):
    """Another program fills the disk as soon as the first video is being written."""

    def __init__(self, disk: Path) -> None:
        self.disk = disk
        self.filled = False

    def started(self, key: Hashable, label: str, total: int | None, done: int) -> None:
        if self.filled or not label.endswith(".mp4"):
            return
        self.filled = True
        with (self.disk / "filler").open("wb") as filler:
            try:
                while True:
                    filler.write(b"\0" * 65536)
                    filler.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise


def test_a_disk_that_fills_while_writing_is_named_and_nothing_is_left(
    server: FileServer, clips: list[bytes], tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    manifest, archive_root = archived(tmp_path, server, clips)
    disk = small_disk("16M")
    zim = disk / "videos.zim"
    with Archive(archive_root) as archive:
        plan = plan_kit(load_manifest(manifest), archive, KitSettings())
    filling = FillsTheDisk(disk)
    with pytest.raises(KitError) as raised:
        write_plan(plan, zim, title="Vidéos", flavour="maxi", progress=filling)
    assert filling.filled
    assert raised.value.message == f"{zim}: cannot write the ZIM: no space left on the device"
    assert not zim.exists()
    assert partials(disk) == []


# -- the check before the rename -------------------------------------------------------------------

VIDEO_SIZE = WHOLE_BELOW + 3 * END_BLOCK  # a "video": checked at its ends, not hashed


def held_file(path: Path, data: bytes) -> Source:
    path.write_bytes(data)
    return Source(sha256=Source.of_bytes(data).sha256, size=len(data), path=path)


@pytest.fixture
def written(tmp_path: Path) -> tuple[Path, list[ZimEntry], Metadata]:
    """A ZIM written by libzim from a page and two videos of one size, as planned."""
    rng = random.Random(7)
    page = b"<html><body>Bonjour</body></html>"
    entries = [
        ZimEntry("index.html", Source.of_bytes(page), "text/html", title="T", front=True,
                 index_text="bonjour"),
        ZimEntry("videos/a.mp4", held_file(tmp_path / "a.mp4", rng.randbytes(VIDEO_SIZE)),
                 "video/mp4"),
        ZimEntry("videos/b.mp4", held_file(tmp_path / "b.mp4", rng.randbytes(VIDEO_SIZE)),
                 "video/mp4"),
    ]  # fmt: skip
    metadata = Metadata((("Title", "T"), ("Language", "fra")))
    zim = tmp_path / "t.zim"
    _create(zim, entries, metadata, NullProgress())
    return zim, entries, metadata


def test_the_check_before_the_rename_passes_a_zim_written_as_planned(
    written: tuple[Path, list[ZimEntry], Metadata],
) -> None:
    assert check_written(*written) == []


def test_the_check_names_a_video_in_its_neighbours_place_a_changed_end_and_a_wrong_page(
    written: tuple[Path, list[ZimEntry], Metadata], tmp_path: Path
) -> None:
    """Videos are compared at their ends with their files, not hashed: that still tells two
    videos of one size apart, and a file whose last byte is not the one written; a page
    (compressed) is hashed whole; a MIME type and a count are read as planned."""
    zim, entries, metadata = written
    page, a, b = entries
    swapped = [page, ZimEntry(a.path, b.source, a.mimetype), ZimEntry(b.path, a.source, b.mimetype)]
    assert check_written(zim, swapped, metadata) == [
        "videos/a.mp4: its bytes differ from its file's",
        "videos/b.mp4: its bytes differ from its file's",
    ]
    assert b.source.path is not None
    changed = bytearray(b.source.path.read_bytes())
    changed[-1] ^= 1
    other = held_file(tmp_path / "b2.mp4", bytes(changed))
    wrong_page = ZimEntry(page.path, Source.of_bytes(b"<html>autre</html>"), page.mimetype,
                          title="T", front=True)  # fmt: skip
    assert check_written(zim, [wrong_page, a, ZimEntry(b.path, other, "video/webm")], metadata) == [
        "index.html: 33 bytes, 18 planned",
        "videos/b.mp4: its MIME type reads 'video/mp4', not 'video/webm'",
    ]
    assert check_written(zim, [page, a, ZimEntry(b.path, other, b.mimetype)], metadata) == [
        "videos/b.mp4: its bytes differ from its file's"
    ]
    same_size = Source.of_bytes(page.source.data[::-1] if page.source.data else b"")
    assert check_written(
        zim, [ZimEntry(page.path, same_size, page.mimetype, front=True), a, b], metadata
    ) == ["index.html: its bytes differ from what was planned"]
    assert check_written(zim, entries[:2], metadata) == ["3 entries, 2 planned"]


# -- deterministic where libzim allows -------------------------------------------------------------


def test_two_zims_of_one_collection_differ_only_in_their_uuids_and_checksum(
    server: FileServer, clips: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1790000000")
    manifest, archive = archived(tmp_path, server, clips)
    made = []
    for name in ("a.zim", "b.zim"):
        assert (
            run("package", manifest, "--archive", archive, "--zim", tmp_path / name, "-q")[0] == 0
        )
        made.append(bytearray((tmp_path / name).read_bytes()))
    first, second = made
    assert len(first) == len(second)
    runs: list[list[int]] = []  # each run of differing bytes: [first, last]
    for at in (i for i in range(len(first)) if first[i] != second[i]):
        if runs and at - runs[-1][1] <= CHECKSUM:
            runs[-1][1] = at
        else:
            runs.append([at, at])
    # The header's UUID; one UUID in each Xapian database (the full-text index and the title
    # index: Xapian draws one for each); the MD5 of the whole file, last.
    assert len(runs) == 4, runs
    assert runs[0][0] >= UUID.start and runs[0][1] < UUID.stop
    assert all(last - start < 16 for start, last in runs)
    assert runs[-1][0] >= len(first) - CHECKSUM
    assert ZimArchive(tmp_path / "a.zim").get_metadata("Date") == b"2026-09-21"


# -- hostile text ----------------------------------------------------------------------------------


def test_hostile_strings_are_escaped_in_the_zim_as_in_the_kit(
    server: FileServer, clips: list[bytes], tmp_path: Path, browser: Browser
) -> None:
    items = hostile_entries(server, clips[0], word="mot")
    manifest = Manifest(entries=tuple(items))
    archive = tmp_path / "archive"
    download(manifest, archive, settings=FAST)
    write_manifest(manifest, tmp_path / "m.json")
    zim = tmp_path / "hostile.zim"
    assert run("package", tmp_path / "m.json", "--archive", archive, "--zim", zim, "-q")[0] == 0
    held = ZimArchive(zim)
    titles = {}  # each video's page, and the title its <h1> shows
    for index in range(held.entry_count):
        entry = held._get_entry_by_id(index)
        if entry.path.startswith("videos/") and entry.path.endswith("/index.html"):
            titles[entry.path] = entry.title
    assert sorted(titles.values()) == sorted(item.title for item in items)
    with kiwix_serve(zim) as served:
        searches = [f"../search?content={served.book}&pattern=mot{n}" for n in range(len(HOSTILE))]
        page, problems = open_served(browser, served)
        for path in ["index.html", *titles, *searches]:
            page.goto(served.content(path))
            page.wait_for_load_state("load")
            assert page.evaluate("window.__pwned") is None, path
            assert page.locator("img[onerror], svg[onload], b[onmouseover]").count() == 0, path
            assert problems == [], (path, problems)
            if path in titles:
                assert page.inner_text("h1") == titles[path]
            elif "search" in path:  # kiwix-serve's results list the page, its title as text
                number = int(path.rsplit("mot", 1)[1])
                assert f"T{number} mot{number} {HOSTILE[number]}" in page.inner_text("body")
        page.context.close()


# -- Debian's zimcheck -----------------------------------------------------------------------------


def test_zimcheck_finds_nothing_but_the_v0_title_index_libzim_no_longer_writes(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    """zim-tools 3.1.3 (Debian 12) checks the header's pointer to the old "v0" title index
    with libzim 8.1; libzim 9.3 and later write ZIM 6.3 without that index, the pointer set
    to 2^64-1 (libzim PRs #949, #969) that newer readers know means "none": every other
    check passes (docs/kiwix.md)."""
    program = require_tool("zimcheck", "zim-tools")
    manifest, archive = archived(tmp_path, server, clips)
    zim = tmp_path / "videos.zim"
    assert run("package", manifest, "--archive", archive, "--zim", zim, "-q")[0] == 0
    header = zim.read_bytes()[:80]
    _, major, minor, _, _, _, _, title_pointer, *_ = struct.unpack("<IHH16sIIQQQQIIQ", header)
    assert (major, minor, title_pointer) == (6, 3, 2**64 - 1)
    every = subprocess.run([program, "-A", str(zim)], capture_output=True, text=True, check=False)
    said = every.stdout + every.stderr
    assert every.returncode == 1
    assert "Full Title index table outside (or not fully inside) ZIM file." in said
    errors = [line.strip() for line in said.splitlines() if "[ERROR]" in line]
    assert errors == ["[ERROR] ZIM file's low level structure is invalid",
                      "[ERROR] Invalid low-level structure:"]  # fmt: skip
    but_integrity = ["-C", "-0", "-M", "-F", "-P", "-R", "-U", "-X", "-L"]
    rest = subprocess.run(
        [program, *but_integrity, str(zim)], capture_output=True, text=True, check=False
    )
    assert rest.returncode == 0, rest.stdout + rest.stderr
    assert "Overall Test Status: Pass" in rest.stdout


def test_a_video_the_archive_lacks_is_named_and_the_zim_holds_the_others(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    items = entries(server, clips)
    archive = tmp_path / "archive"
    download(Manifest(entries=tuple(items[:2])), archive, settings=FAST)
    write_manifest(Manifest(entries=tuple(items)), tmp_path / "m.json")
    zim = tmp_path / "videos.zim"
    code, _, err = run("package", tmp_path / "m.json", "--archive", archive, "--zim", zim, "-q")
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith(f"Error: {items[2].title} ({items[2].id}): ")
    held = ZimArchive(zim)
    assert held.article_count == 1 + 2  # the catalogue and the two videos held
    assert sum(held._get_entry_by_id(i).path.endswith(".mp4") for i in range(held.entry_count)) == 2


def test_a_title_of_one_endless_word_does_not_fail_the_zim(
    server: FileServer, clips: list[bytes], tmp_path: Path
) -> None:
    # Xapian refuses a term over 245 bytes; libzim then gave up on the whole ZIM ("Too much
    # loss of data during title indexing"): one odd fiche failed every night's ZIM.
    import dataclasses

    path, archive = archived(tmp_path, server, clips)
    manifest = load_manifest(path)
    word = "é" * 150 + "x" * 150
    first = dataclasses.replace(manifest.entries[0], title=word)
    write_manifest(dataclasses.replace(manifest, entries=(first, *manifest.entries[1:])), path)
    zim = tmp_path / "v.zim"
    code, _, err = run("package", path, "--archive", archive, "--zim", zim, "-q")
    assert (code, err) == (0, "")
    reader = ZimArchive(zim)
    assert reader.check()
    pages = [
        reader._get_entry_by_id(i).get_item().content.tobytes()
        for i in range(reader.all_entry_count)
        if reader._get_entry_by_id(i).get_item().mimetype.startswith("text/html")
    ]
    assert any(word.encode() in page for page in pages)  # the page keeps the whole title
