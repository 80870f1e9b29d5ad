"""The ZIM's 48×48 PNG illustration, drawn here: a play sign on the kit's blue.

openZIM asks for an ``Illustration_48x48@1`` PNG in every ZIM; the Kiwix apps show it in
their library and kiwix-serve's catalogue. It is drawn in code, not read from a file, so that
it is the same bytes on every machine (zlib at a fixed level, no timestamp chunk) and needs
no image library: PNG is a signature and three chunks.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["ILLUSTRATION_SIZE", "illustration_png", "png"]

ILLUSTRATION_SIZE = 48
BACKGROUND = (0x1F, 0x4E, 0x8C, 0xFF)  # the blue of the kit's header
FOREGROUND = (0xFF, 0xFF, 0xFF, 0xFF)
CLEAR = (0, 0, 0, 0)
CORNER = 8  # radius of the rounded corners, in pixels
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png(width: int, height: int, rows: list[bytes]) -> bytes:
    """An 8-bit RGBA PNG of ``rows`` (``width * 4`` bytes each), filter 0 on every row."""
    if len(rows) != height or any(len(row) != width * 4 for row in rows):
        raise ValueError("rows do not match the size")
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def _inside_rounded_square(x: int, y: int, size: int) -> bool:
    """Whether pixel (x, y) is inside the square with rounded corners."""
    last = size - 1
    cx = min(max(x, CORNER), last - CORNER)
    cy = min(max(y, CORNER), last - CORNER)
    return (x - cx) ** 2 + (y - cy) ** 2 <= CORNER**2


def _inside_play_sign(x: int, y: int, size: int) -> bool:
    """Whether pixel (x, y) is inside the triangle pointing right, centred."""
    left, right = size * 0.36, size * 0.72
    top, bottom = size * 0.26, size * 0.74
    middle = (top + bottom) / 2
    if not left <= x + 0.5 <= right:
        return False
    half = (bottom - top) / 2 * (right - (x + 0.5)) / (right - left)
    return abs(y + 0.5 - middle) <= half


def illustration_png(size: int = ILLUSTRATION_SIZE) -> bytes:
    """The illustration, ``size`` pixels square: a white play sign on a blue rounded square.

    >>> data = illustration_png()
    >>> data[:8] == PNG_SIGNATURE, struct.unpack(">II", data[16:24])
    (True, (48, 48))
    """
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            if not _inside_rounded_square(x, y, size):
                row.extend(CLEAR)
            elif _inside_play_sign(x, y, size):
                row.extend(FOREGROUND)
            else:
                row.extend(BACKGROUND)
        rows.append(bytes(row))
    return png(size, size, rows)
