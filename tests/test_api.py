"""The public API is what archiver/__init__.py re-exports."""

from __future__ import annotations

import errno

import archiver
import archiver.errors


def test_all_names_exist_and_are_sorted() -> None:
    for name in archiver.__all__:
        assert hasattr(archiver, name), name
    assert archiver.__all__ == sorted(archiver.__all__)


def test_every_error_has_an_exit_code_and_derives_from_the_root() -> None:
    for name in archiver.errors.__all__:
        value = getattr(archiver.errors, name)
        if isinstance(value, type):
            assert issubclass(value, archiver.ArchiverError)
            if isinstance(value.exit_code, property):
                # A target error's code follows its cause: 2 for a folder that cannot be
                # used at all, 1 for a run that failed (a full disk).
                error = value("/kit", "cannot write")
                error.__cause__ = OSError(errno.EROFS, "Read-only file system")
                assert error.exit_code == 2, name
                error.__cause__ = OSError(errno.ENOSPC, "No space left on device")
                assert error.exit_code == 1, name
                continue
            assert value.exit_code in (1, 2, 3)
