"""The public API is what archiver/__init__.py re-exports."""

from __future__ import annotations

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
            assert value.exit_code in (1, 2, 3)
