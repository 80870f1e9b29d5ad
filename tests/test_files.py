"""Writes that never leave a half-written file under its final name."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from archiver.files import atomic_write_many, file_sha256, unsafe_target


def test_many_files_are_written_whole_with_no_temporary_left(tmp_path: Path) -> None:
    files = [(tmp_path / f"item-{i}" / "entry.json", f"{i}\n".encode() * 100) for i in range(5)]
    (tmp_path / "item-0").mkdir()
    (tmp_path / "item-0" / "entry.json").write_bytes(b"old")
    atomic_write_many(files)
    for path, data in files:
        assert path.read_bytes() == data
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failure_replaces_nothing_and_leaves_no_temporary(tmp_path: Path) -> None:
    held = tmp_path / "a" / "entry.json"
    held.parent.mkdir()
    held.write_bytes(b"held")
    (tmp_path / "blocked").write_bytes(b"a file where a folder should be")
    with pytest.raises(FileExistsError):
        atomic_write_many([(held, b"new"), (tmp_path / "blocked" / "entry.json", b"x")])
    assert held.read_bytes() == b"held"  # nothing renamed before every file was written
    assert not list(tmp_path.rglob("*.tmp"))


def test_atomic_writes_follow_the_umask(tmp_path: Path) -> None:
    """A kit on a LAN share is read by the server's account: 0644, not mkstemp's 0600."""
    script = (
        "import os, sys; os.umask(0o022); from pathlib import Path; "
        "from archiver.files import atomic_write_bytes; "
        "atomic_write_bytes(Path(sys.argv[1]), b'<p>')"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "page.html")], check=True)
    assert stat.S_IMODE((tmp_path / "page.html").stat().st_mode) == 0o644


def test_links_and_devices_are_not_write_targets(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("kept")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert unsafe_target(tmp_path / "link") is not None
    assert unsafe_target(Path("/dev/null")) is not None
    assert unsafe_target(tmp_path) is not None
    assert unsafe_target(tmp_path / "real") is None
    assert unsafe_target(tmp_path / "missing") is None


def test_a_fifo_or_a_device_is_not_hashed_but_refused_at_once(tmp_path: Path) -> None:
    """``verify`` put before a FIFO at a file's path would wait for a writer for ever."""
    os.mkfifo(tmp_path / "video.mp4")
    for path in (tmp_path / "video.mp4", Path("/dev/zero")):
        with pytest.raises(OSError, match="not a regular file"):
            file_sha256(path)
