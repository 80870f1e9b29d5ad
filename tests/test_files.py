"""Writes that never leave a half-written file under its final name."""

from __future__ import annotations

from pathlib import Path

import pytest

from archiver.files import atomic_write_many


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
