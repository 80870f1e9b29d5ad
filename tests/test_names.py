"""Safe ids for folder names on any USB key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archiver.names import MAX_NAME_LENGTH, is_safe_id, shown_name, shown_path, slugify

WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {
    f"{p}{i}" for p in ("com", "lpt") for i in range(10)
}


@given(st.text())
def test_slug_is_always_a_safe_folder_name(text: str) -> None:
    slug = slugify(text)
    assert slug.isascii()
    assert "/" not in slug and "\\" not in slug
    assert not slug.startswith(".")
    assert 0 < len(slug) <= MAX_NAME_LENGTH
    assert slug.lower() not in WINDOWS_RESERVED
    assert not any(c in slug for c in '<>:"|?*') and all(32 < ord(c) < 127 for c in slug)
    assert is_safe_id(slug)


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("Différencier ses pratiques pédagogiques", "differencier-ses-pratiques-pedagogiques"),
        ("../../etc/passwd", "etc-passwd"),
        ("CON", "con-fiche"),
        ("lpt1", "lpt1-fiche"),
        ("", "fiche"),
        ("日本語", "fiche"),
        ("x" * 300, "x" * MAX_NAME_LENGTH),
    ],
)
def test_slug_examples(text: str, slug: str) -> None:
    assert slugify(text) == slug


@pytest.mark.parametrize("bad", ["", ".hidden", "a/b", "A", "nul", "é", "x" * 101, "-x"])
def test_unsafe_ids_are_refused(bad: str) -> None:
    assert not is_safe_id(bad)


@given(st.text())
def test_a_shown_name_is_one_printable_line(text: str) -> None:
    shown = shown_name(text, limit=40)
    assert shown.isprintable()
    assert len(shown) <= 4 * 10 * 41  # an escape is at most 10 characters a character
    if text.isprintable() and len(text) <= 40:
        assert shown == text


def test_shown_name_examples() -> None:
    assert shown_name("titre\n\x1b[31m") == "titre\\n\\x1b[31m"
    assert shown_name("é" * 45) == "é" * 40 + "…"


def test_a_shown_path_is_one_line_and_keeps_printable_paths_as_they_are() -> None:
    assert shown_path(Path("fiches/Vidéo 1.md")) == "fiches/Vidéo 1.md"
    assert shown_path(Path(os.fsdecode(b"fiches/new\nline\xe9.md"))) == "fiches/new\\nline\\xe9.md"
