"""Byte sizes and rates as people write them: ``500k``, ``2M``, ``1.5G``, and as French readers
write them, ``2Mo``, ``1,5 Go`` (1k = 1024 bytes, whichever spelling: ``k``, ``K``, ``KB``,
``KiB``, ``Ko``, ``Kio``; a bare number is bytes)."""

from __future__ import annotations

import re

__all__ = ["format_bytes", "format_duration", "parse_duration", "parse_size"]

_MULTIPLIERS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
# A number (a point or a French comma before its decimals), a multiple, maybe "B"/"o" (byte,
# octet) with an "i" before it, maybe "/s" (a rate). "o" alone is a byte too: "500o".
_SIZE = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*([kmgt]?)(?:i?[bo])?(?:/s)?\s*$", re.I)


def parse_size(text: str, *, zero: bool = False) -> int:
    """``"500k"`` → 512000, like curl's ``--limit-rate``; ``ValueError`` on anything else.
    ``zero``: 0 is a value (none: no cap, no floor), not a size of less than one byte.

    >>> parse_size("2M"), parse_size("2MB"), parse_size("2Mo"), parse_size("2 MiB")
    (2097152, 2097152, 2097152, 2097152)
    >>> parse_size("1,5 Go") == parse_size("1.5G") == 1610612736
    True
    >>> parse_size("0", zero=True)
    0
    """
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a size (examples: 500k, 2M, 1.5G, 4Go, 65536)")
    number = float(match.group(1).replace(",", "."))
    value = number * _MULTIPLIERS[match.group(2).lower()]
    if value == 0 and zero:
        return 0
    if value < 1:
        raise ValueError(f"{text!r} is less than one byte")
    return int(value)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)?\s*$", re.I)
_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``"24h"`` → 86400.0; a bare number is seconds; ``ValueError`` on anything else.

    >>> parse_duration("30m")
    1800.0
    """
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration (examples: 24h, 30m, 7d, 0)")
    return float(match.group(1)) * _SECONDS[(match.group(2) or "s").lower()]


def format_bytes(count: float) -> str:
    """``1536`` → ``"1.5 KiB"``; a number past any file (from an untrusted answer or
    record, beyond what a float holds) is said as such.

    >>> format_bytes(1536), format_bytes(10**400)
    ('1.5 KiB', 'over 1 ZiB')
    """
    if abs(count) >= 1 << 70:
        return "over 1 ZiB"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover - loop returns at GiB


def format_duration(seconds: float) -> str:
    """``75.2`` → ``"1 min 15 s"``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
