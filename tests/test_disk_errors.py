"""A disk that refuses a write, at each place the archive and the kit write: one line naming
the file and the reason, exit 1, what was held before intact, and the next run works.

The faults are those of a full disk. Injected ones fire at one chosen write: an ``OSError``
(ENOSPC) that names no file, raised by the write itself, as the kernel raises it; a
``sqlite3.OperationalError`` "database or disk is full" (``SQLITE_FULL``) raised by the
catalog's own connection, so that the catalog's mapper and transaction are the real ones.
Real ones fill a small tmpfs (mounting one needs root: those tests are skipped without).
"""

from __future__ import annotations

import errno
import math
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import bagit
import pytest
from click.testing import CliRunner

import archiver.kit.write as kit_writer
from archiver.cli import cli
from archiver.kit.ownership import STAGING
from archiver.manifest import Manifest, write_manifest

from .conftest import content_of, make_entry, snapshot
from .server import FileServer

FULL = "no space left on the device"
CATALOG_FULL = f"{FULL} (the catalog cannot grow)"
KEY_FULL = "the key is full; the kit was left as it was"


def run(*args: str | Path) -> tuple[int, str]:
    """``archiver ARGS``: its exit code and its stderr (stdout stays empty for these)."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.stdout == ""
    return result.exit_code, result.stderr


def run_status(archive: Path) -> tuple[int, str]:
    """``archiver status``: its exit code and what it prints."""
    result = CliRunner().invoke(cli, ["status", "--archive", str(archive)], catch_exceptions=False)
    return result.exit_code, result.stdout


def publish(server: FileServer, item: str, size: int, seed: int) -> bytes:
    """A playable MP4 of ``size`` bytes, served at ``/<item>.mp4``."""
    content = content_of(size, seed)
    server.add(f"/{item}.mp4", content)
    return content


def collect(server: FileServer, path: Path, *items: str) -> Path:
    """A manifest of the videos ``items``, as the server serves them."""
    entries = tuple(make_entry(item, server.url(f"/{item}.mp4")) for item in items)
    write_manifest(Manifest(entries=entries), path)
    return path


def assert_intact(kit: Path, before: dict[str, str]) -> None:
    """The previous kit, exactly: every byte and folder, whole to our verify and to bagit."""
    assert snapshot(kit) == before
    assert run("verify", kit, "-q") == (0, "")
    bagit.Bag(str(kit)).validate()


# -- injected faults ---------------------------------------------------------------------------


class _Refusing:
    """A file open for writing on a disk with ``room`` bytes left."""

    def __init__(self, stream: IO[Any], room: int) -> None:
        self._stream = stream
        self._room = room

    def write(self, data: bytes) -> int:
        taken = min(len(data), self._room)
        self._stream.write(data[:taken])
        self._room -= taken
        if taken < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return taken

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __enter__(self) -> _Refusing:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stream.close()


class DiskFull:
    """Every file opened for writing whose path ``refuses`` takes ``room`` bytes, then fails
    with ENOSPC. Files are opened through ``Path.open`` or, for those made by ``mkstemp``,
    ``os.fdopen``; the path of the latter is the kernel's (``/proc/self/fd``)."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, refuses: Callable[[Path], bool], room: int = 0
    ) -> None:
        self.refused: list[Path] = []
        real_fdopen, real_open = os.fdopen, pathlib.Path.open

        def wrap(path: Path, mode: str, stream: IO[Any]) -> IO[Any]:
            if not set(mode) & set("wa+") or not refuses(path):
                return stream
            self.refused.append(path)
            return _Refusing(stream, room)  # type: ignore[return-value]

        def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> IO[Any]:
            path = Path(os.readlink(f"/proc/self/fd/{fd}"))
            return wrap(path, mode, real_fdopen(fd, mode, *args, **kwargs))

        def path_open(path: Path, mode: str = "r", *args: Any, **kwargs: Any) -> IO[Any]:
            return wrap(path, mode, real_open(path, mode, *args, **kwargs))

        monkeypatch.setattr(os, "fdopen", fdopen)
        monkeypatch.setattr(pathlib.Path, "open", path_open)


def _catalog_full() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("database or disk is full")
    exc.sqlite_errorcode = sqlite3.SQLITE_FULL
    exc.sqlite_errorname = "SQLITE_FULL"
    return exc


def catalog_full_at(monkeypatch: pytest.MonkeyPatch, *statements: str) -> list[str]:
    """Make the catalog's connection fail with SQLITE_FULL at each statement that starts with
    one of ``statements``; the statements refused."""
    refused: list[str] = []

    class Full(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql.startswith(statements):
                refused.append(sql)
                raise _catalog_full()
            return super().execute(sql, *args)

        def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
            if sql.startswith(statements):
                refused.append(sql)
                raise _catalog_full()
            return super().executemany(sql, *args)

    real = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real(*a, factory=Full, **k))
    return refused


# -- the kit -----------------------------------------------------------------------------------


def kit_to_update(server: FileServer, tmp_path: Path, *options: str) -> tuple[Path, Path, Path]:
    """A kit of two videos, and a manifest of three (all held): ``(manifest, archive, kit)``.

    Updating the kit stages the site's changed pages, the new video's page, poster and file,
    then the tag files, the bag's payload manifest last.
    """
    archive, kit, manifest = tmp_path / "archive", tmp_path / "kit", tmp_path / "m.json"
    for number, item in enumerate(("v1", "v2", "v3")):
        publish(server, item, 200_000, number)
    collect(server, manifest, "v1", "v2")
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    assert run("package", manifest, "--archive", archive, "-o", kit, "-q", *options) == (0, "")
    collect(server, manifest, "v1", "v2", "v3")
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    return manifest, archive, kit


def test_a_full_disk_at_the_bag_manifest_leaves_the_previous_kit_as_it_was(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, archive, kit = kit_to_update(server, tmp_path)
    before = snapshot(kit)
    with monkeypatch.context() as patch:
        # The payload manifest is the last file an update writes: everything else is staged.
        full = DiskFull(patch, lambda p: p.name.lstrip(".").startswith("manifest-sha256.txt"))
        code, stderr = run("package", manifest, "--archive", archive, "-o", kit, "-q")
    assert full.refused, "the manifest was never written: the test proved nothing"
    assert (code, stderr) == (1, f"Error: {kit / 'manifest-sha256.txt'}: {KEY_FULL}\n")
    assert_intact(kit, before)
    assert run("package", manifest, "--archive", archive, "-o", kit, "-q") == (0, "")
    assert re.search(
        r"data/videos/Video-v3/Video-v3\S*\.mp4$", (kit / "manifest-sha256.txt").read_text(), re.M
    )
    bagit.Bag(str(kit)).validate()


def test_a_full_disk_while_copying_a_video_leaves_the_previous_kit_as_it_was(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, archive, kit = kit_to_update(server, tmp_path, "--copy")
    before = snapshot(kit)
    folder = kit / "data" / "videos" / "Video-v3"
    with monkeypatch.context() as patch:
        # Its page and its poster are written by then; 64 KiB of it fit, then the disk is full.
        video = re.compile(r"Video-v3\S*\.mp4")  # the kit names it for its title and height
        full = DiskFull(
            patch, lambda p: STAGING in p.parts and bool(video.fullmatch(p.name)), room=65536
        )
        code, stderr = run("package", manifest, "--archive", archive, "-o", kit, "-q", "--copy")
    assert full.refused, "the video was never copied: the test proved nothing"
    assert code == 1
    assert re.fullmatch(rf"Error: {re.escape(str(folder))}/Video-v3\S*\.mp4: {KEY_FULL}\n", stderr)
    assert_intact(kit, before)  # v3's folder, made for the update, is gone too
    assert run("package", manifest, "--archive", archive, "-o", kit, "-q", "--copy") == (0, "")
    assert run("verify", kit, "-q") == (0, "")


# -- the archive -------------------------------------------------------------------------------


def test_a_full_catalog_at_a_files_commit_fails_that_item_and_keeps_its_bytes(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, manifest = tmp_path / "archive", tmp_path / "m.json"
    content = publish(server, "v1", 300_000, 1)
    collect(server, manifest, "v1")
    with monkeypatch.context() as patch:
        refused = catalog_full_at(patch, "INSERT INTO files")
        code, stderr = run("download", manifest, "--archive", archive, "-q")
    assert refused, "the file was never recorded: the test proved nothing"
    catalog = archive / "catalog.sqlite"
    url = server.url("/v1.mp4")
    assert (code, stderr) == (1, f"Error: Vidéo v1 (v1, video): {url}: {catalog}: {CATALOG_FULL}\n")
    # Not recorded, so not in media/ either: the bytes wait in the partial, with its sidecar.
    assert not (archive / "media" / "v1" / "video.mp4").exists()
    assert (archive / "partial" / "v1" / "video.part").read_bytes() == content
    assert run("verify", "--archive", archive, "-q") == (0, "")
    asked = len(server.requests())
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    # Resumed at the end: the server confirms that the partial holds it all, sends nothing.
    again = [(r.headers.get("Range"), r.status, r.sent) for r in server.requests()[asked:]]
    assert again == [(f"bytes={len(content)}-", 416, 0)]
    assert (archive / "media" / "v1" / "video.mp4").read_bytes() == content
    assert run("verify", "--archive", archive, "-q") == (0, "")


def test_a_full_disk_at_a_download_sidecar_fails_that_item_only(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, manifest = tmp_path / "archive", tmp_path / "m.json"
    held = publish(server, "v2", 200_000, 2)
    assert run("download", collect(server, manifest, "v2"), "--archive", archive, "-q") == (0, "")
    publish(server, "v1", 200_000, 1)
    collect(server, manifest, "v1", "v2")
    sidecar = archive / "partial" / "v1" / "video.json"
    with monkeypatch.context() as patch:
        full = DiskFull(patch, lambda p: p.parent == sidecar.parent and "video.json" in p.name)
        code, stderr = run("download", manifest, "--archive", archive, "-q")
    assert full.refused, "the sidecar was never written: the test proved nothing"
    url = server.url("/v1.mp4")
    assert (code, stderr) == (
        1,
        f"Error: Vidéo v1 (v1, video): {url}: cannot write {sidecar}: {FULL}\n",
    )
    assert not [p.name for p in sidecar.parent.iterdir() if p.name.endswith(".tmp")]
    assert (archive / "media" / "v2" / "video.mp4").read_bytes() == held
    assert run("verify", "--archive", archive, "-q") == (0, "")
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    assert [r.path for r in server.requests()] == ["/v2.mp4", "/v1.mp4", "/v1.mp4"]


def test_a_full_disk_at_an_items_entry_file_is_one_line_naming_it(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, manifest = tmp_path / "archive", tmp_path / "m.json"
    held = publish(server, "v1", 200_000, 1)
    assert run("download", collect(server, manifest, "v1"), "--archive", archive, "-q") == (0, "")
    before = snapshot(archive / "media")
    publish(server, "v2", 200_000, 2)
    collect(server, manifest, "v1", "v2")
    entry = archive / "media" / "v2" / "entry.json"
    with monkeypatch.context() as patch:
        full = DiskFull(patch, lambda p: p.parent == entry.parent and "entry.json" in p.name)
        code, stderr = run("download", manifest, "--archive", archive, "-q")
    assert full.refused, "the entry was never written: the test proved nothing"
    assert (code, stderr) == (1, f"Error: {entry}: cannot write: {FULL}\n")
    assert snapshot(archive / "media") == {**before, "v2": "/"}  # its folder, empty
    assert run("verify", "--archive", archive, "-q") == (0, "")
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    assert (archive / "media" / "v1" / "video.mp4").read_bytes() == held
    assert [r.path for r in server.requests()] == ["/v1.mp4", "/v2.mp4"]


def test_a_full_catalog_at_the_end_of_a_run_is_one_line_naming_it(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, manifest = tmp_path / "archive", tmp_path / "m.json"
    publish(server, "v1", 200_000, 1)
    collect(server, manifest, "v1")
    with monkeypatch.context() as patch:
        refused = catalog_full_at(patch, "UPDATE runs SET finished_at=?")
        code, stderr = run("download", manifest, "--archive", archive)
    assert refused, "the run was never finished: the test proved nothing"
    assert (code, stderr) == (1, f"Error: {archive / 'catalog.sqlite'}: {CATALOG_FULL}\n")
    code, status = run_status(archive)
    assert code == 0
    assert re.search(r"^Last run: download started \S+, interrupted$", status, re.M)
    assert run("verify", "--archive", archive, "-q") == (0, "")
    asked = len(server.requests())
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    assert len(server.requests()) == asked  # held: the file was recorded before the run's end


def test_a_catalog_too_full_to_record_a_failed_run_still_names_the_failed_item(
    server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, manifest = tmp_path / "archive", tmp_path / "m.json"
    publish(server, "v1", 200_000, 1)
    collect(server, manifest, "v1")
    with monkeypatch.context() as patch:
        catalog_full_at(
            patch, "INSERT INTO files", "INSERT INTO failures", "UPDATE runs SET finished_at=?"
        )
        code, stderr = run("download", manifest, "--archive", archive)
    catalog = archive / "catalog.sqlite"
    url = server.url("/v1.mp4")
    warning, error, summary = stderr.splitlines()
    assert code == 1
    assert warning == (
        f"Warning: {catalog}: {CATALOG_FULL}; this run and its failures are not recorded in it"
    )
    assert error == f"Error: Vidéo v1 (v1, video): {url}: {catalog}: {CATALOG_FULL}"
    assert summary.startswith("Download: 1 video (1 failed), 1 file: 0 downloaded,")
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")


def test_a_log_file_on_a_full_disk_is_one_line_naming_it(
    server: FileServer, tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    log = small_disk("1m", "logs") / "sync.log"
    log.touch()
    fill(log.parent)  # the log's disk is full: its first line is refused
    (tmp_path / "fiches").mkdir()
    publish(server, "v1", 200_000, 1)
    (tmp_path / "fiches" / "v1.md").write_text(
        f"---\ntitle: Vidéo 1\nvideoDLHref: {server.url('/v1.mp4')}\n---\n\n## Script\n\nTexte."
        "\n\n## Crédits\n\n- **Licence** : [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/)\n",
        encoding="utf-8",
    )
    kit = tmp_path / "kit"
    code, stderr = run(
        "sync", tmp_path / "fiches", "--archive", tmp_path / "archive", "--kit", kit,
        "--log-file", log, "-q",
    )  # fmt: skip
    assert (code, stderr) == (1, f"Error: {log}: cannot write the log: {FULL}\n")
    assert run("verify", kit, "-q") == (0, "")  # the run itself was done


# -- real full disks ---------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``small_disk(size, name)``: a tmpfs of ``size`` mounted at ``tmp_path/name``; skips the
    test where tmpfs cannot be mounted (not root)."""
    mounted: list[Path] = []

    def mount(size: str, name: str = "disk", *, options: str = "") -> Path:
        folder = tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        if shutil.which("mount") is None:
            pytest.skip("cannot mount tmpfs: no mount program")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount tmpfs: {done.stderr.strip() or done.returncode}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        if subprocess.run(["umount", str(folder)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def grow(disk: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def _write_until_refused(fd: int) -> int | None:
    """Write zeros to ``fd`` until the disk refuses them: the errno it refused with."""
    try:
        while os.write(fd, bytes(65536)):
            pass
    except OSError as exc:
        return exc.errno
    return None


def fill(disk: Path) -> Callable[[int], None]:
    """Take every byte still free on ``disk``; a function that gives some back."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        assert _write_until_refused(fd) == errno.ENOSPC
    finally:
        os.close(fd)
    assert shutil.disk_usage(disk).free == 0

    def give_back(size: int) -> None:
        os.truncate(ballast, ballast.stat().st_size - size)

    return give_back


def test_a_video_a_real_small_disk_cannot_hold_fails_before_its_bytes_and_the_next_run_gets_it(
    server: FileServer, tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    # 8 MiB: a small video and the 4 MiB margin kept free fit; a 6 MiB video does not.
    disk = small_disk("8m")
    archive, manifest = disk / "archive", tmp_path / "m.json"
    small = publish(server, "small", 200_000, 1)
    big = publish(server, "big", 6 * 1024 * 1024, 2)
    assert run("download", collect(server, manifest, "small"), "--archive", archive, "-q") == (
        0,
        "",
    )
    collect(server, manifest, "small", "big")
    code, stderr = run("download", manifest, "--archive", archive, "-q")
    url = server.url("/big.mp4")
    # Its Content-Length said 6 MiB: the disk cannot hold it, so not a byte of it is written.
    assert code == 1
    assert re.fullmatch(
        rf"Error: Vidéo big \(big, video\): {re.escape(url)}: not enough space:"
        r" needs 10\.0 MiB, \d+\.\d MiB free\n",
        stderr,
    ), stderr
    assert not (archive / "partial" / "big" / "video.part").exists()
    # Full to the last byte: no room even for the index SQLite keeps beside a WAL catalog.
    give_back = fill(disk)
    catalog = archive / "catalog.sqlite"
    assert run("verify", "--archive", archive) == (
        1,
        f"Error: {catalog}: cannot open the catalog: cannot write its index,"
        " catalog.sqlite-shm (is the disk full?)\n",
    )
    # Room for the index (32 KiB), none for the catalog to grow: every file is audited and
    # intact; the catalog cannot note when.
    give_back(32 * 1024)
    code, stderr = run("verify", "--archive", archive)
    warning, verdict = stderr.splitlines()
    assert code == 0
    assert warning == (
        f"Warning: {catalog}: {CATALOG_FULL}; the audit goes on, but its dates are not recorded"
    )
    assert verdict.startswith("Verify: 1 files (") and verdict.endswith(": all intact")
    grow(disk, "64m")
    asked = len(server.requests())
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    (request,) = server.requests()[asked:]
    assert (request.status, request.sent) == (200, len(big))
    assert (archive / "media" / "big" / "video.mp4").read_bytes() == big
    assert (archive / "media" / "small" / "video.mp4").read_bytes() == small
    assert run("verify", "--archive", archive, "-q") == (0, "")


def test_a_kit_on_a_real_small_disk_is_refused_or_left_as_it_was(
    server: FileServer,
    tmp_path: Path,
    small_disk: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 9 MiB: a small video fits; a 10 MiB video does not.
    disk = small_disk("9m")
    archive, kit, manifest = tmp_path / "archive", disk / "kit", tmp_path / "m.json"
    publish(server, "small", 200_000, 1)
    publish(server, "big", 10 * 1024 * 1024, 2)
    collect(server, manifest, "small")
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    assert run("package", manifest, "--archive", archive, "-o", kit, "-q") == (0, "")
    before, free = snapshot(kit), shutil.disk_usage(disk).free
    collect(server, manifest, "small", "big")
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")

    code, stderr = run("package", manifest, "--archive", archive, "-o", kit, "-q")
    assert code == 1
    assert re.fullmatch(
        rf"Error: {re.escape(str(kit))}: the kit does not fit: it needs 10\.\d MiB more, with"
        r" \d+\.\d KiB for the file system's own use; 8\.\d MiB is free\n"
        r"Hint: use a larger key, or fewer or smaller videos\n",
        stderr,
    ), stderr
    assert_intact(kit, before)

    # The check passes (the disk said it had room), then the disk fills up under the copy.
    with monkeypatch.context() as patch:
        real = shutil.disk_usage
        patch.setattr(kit_writer.shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 40))
        code, stderr = run("package", manifest, "--archive", archive, "-o", kit, "-q")
    (video,) = re.findall(
        rf"^Error: ({re.escape(str(kit))}/data/videos/Video-big/Video-big\S*\.mp4): ", stderr
    )
    video = Path(video)
    assert (code, stderr) == (1, f"Error: {video}: {KEY_FULL}\n")
    assert_intact(kit, before)
    assert shutil.disk_usage(disk).free == free  # every byte staged was let go

    grow(disk, "64m")
    assert run("package", manifest, "--archive", archive, "-o", kit, "-q") == (0, "")
    assert video.stat().st_size == 10 * 1024 * 1024
    bagit.Bag(str(kit)).validate()


def needs(stderr: str) -> tuple[int, int]:
    """What a refused update said it needs, in bytes, and what for the file system's own use
    (rounded up: the message gives a tenth of its unit)."""
    match = re.search(
        r"it needs ([\d.]+) (KiB|MiB) more, with ([\d.]+) (KiB|MiB) for the file system's", stderr
    )
    assert match, stderr
    unit = {"KiB": 1024, "MiB": 1024 * 1024}
    need, slack = (math.ceil((float(match[n]) + 0.05) * unit[match[n + 1]]) for n in (1, 3))
    return need, slack


def test_a_small_key_takes_what_fits_and_its_file_system_needs(
    server: FileServer, tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    # An empty 8 MiB key takes a 3.3 MiB kit: room is kept for what is written, not 8 MiB.
    disk = small_disk("8m")
    archive, kit, manifest = tmp_path / "archive", disk / "kit", tmp_path / "m.json"
    publish(server, "v1", 3_400_000, 1)
    collect(server, manifest, "v1")
    assert run("download", manifest, "--archive", archive, "-q") == (0, "")
    assert run("package", manifest, "--archive", archive, "-o", kit, "-q") == (0, "")
    bagit.Bag(str(kit)).validate()

    # With 1 MiB free, a new title (a few KiB in a dozen files) goes in.
    give_back = fill(disk)
    give_back(1024 * 1024)
    retitle = ("package", manifest, "--archive", archive, "-o", kit, "-q", "--title")
    assert run(*retitle, "Former au numérique") == (0, "")
    assert "Former au numérique" in (kit / "data" / "index.html").read_text()

    # With 16 KiB free it does not: a cluster (4 KiB on tmpfs) for each file and folder it
    # makes, and the file system's own growth, are counted and said.
    (disk / "ballast").unlink()
    give_back = fill(disk)
    give_back(16 * 1024)
    before = snapshot(kit)
    code, stderr = run(*retitle, "Enseigner au numérique")
    assert code == 1
    assert re.fullmatch(
        rf"Error: {re.escape(str(kit))}: the kit does not fit: it needs \d+\.\d KiB more, with"
        r" \d+\.\d KiB for the file system's own use; 16\.0 KiB is free\n"
        r"Hint: use a larger key, or fewer or smaller videos\n",
        stderr,
    ), stderr
    assert_intact(kit, before)
    need, slack = needs(stderr)
    assert need - slack < 16 * 1024  # the new bytes alone would fit: the clusters would not
    # Exactly what it said it needs is enough, on a real file system.
    give_back(-(-(need - 16 * 1024) // 4096) * 4096)  # the tmpfs frees whole pages
    assert shutil.disk_usage(disk).free < need + 4096
    assert run(*retitle, "Enseigner au numérique") == (0, "")
    assert run("verify", kit, "-q") == (0, "")
    bagit.Bag(str(kit)).validate()


def test_a_poster_a_read_only_archive_refuses_is_done_without(
    server: FileServer, tmp_path: Path, small_disk: Callable[..., Path]
) -> None:
    archive, kit, manifest = tmp_path / "archive", tmp_path / "kit", tmp_path / "m.json"
    publish(server, "v1", 200_000, 1)
    assert run("download", collect(server, manifest, "v1"), "--archive", archive, "-q") == (0, "")
    derived = small_disk("1m", "archive/derived", options=",ro")  # where posters are made
    code, stderr = run("package", manifest, "--archive", archive, "-o", kit)
    warning, summary = stderr.splitlines()
    assert code == 0
    assert re.fullmatch(
        rf"Warning: Vidéo v1 \(v1\): no poster: cannot write {re.escape(str(derived))}/\S+"
        r"-poster-v1\.jpg: read-only file system",
        warning,
    )
    assert summary.startswith("Kit: 1 video in ")
    assert not (kit / "data" / "videos" / "Video-v1" / "poster.jpg").exists()
    assert run("verify", kit, "-q") == (0, "")


def test_a_manifest_on_a_full_disk_is_one_line_exit_1_and_an_unusable_path_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import SEED

    output = tmp_path / "m.json"
    with monkeypatch.context() as patch:
        full = DiskFull(patch, lambda p: p.parent == tmp_path and "m.json" in p.name)
        code, stderr = run("manifest", SEED, "-o", output, "-q")
    assert full.refused
    assert (code, stderr) == (1, f"Error: {output}: cannot write: {FULL}\n")
    assert not output.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left either
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, stderr = run("manifest", SEED, "-o", blocker / "m.json", "-q")
    assert code == 2  # the path given cannot hold a file: bad usage, as before
    assert run("manifest", SEED, "-o", output, "-q") == (0, "")
