"""Sizes as people write them, in English and in French: one meaning for each spelling."""

from __future__ import annotations

import pytest

from archiver.units import parse_size

MIB = 1024**2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2M", 2 * MIB),
        ("2MB", 2 * MIB),
        ("2MiB", 2 * MIB),
        ("2Mo", 2 * MIB),
        ("2 Mio", 2 * MIB),
        ("4Go", 4 * 1024**3),
        ("1,5 Go", 1536 * MIB),
        ("1.5G", 1536 * MIB),
        ("500ko/s", 500 * 1024),
        ("500o", 500),
        ("65536", 65536),
    ],
)
def test_a_size_in_any_spelling_is_bytes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["fast", "2 mégas", "1,5,5G", "2Mbit", "-1M", "0.1"])
def test_anything_else_is_refused_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match=r"(is not a size|less than one byte)"):
        parse_size(text)
