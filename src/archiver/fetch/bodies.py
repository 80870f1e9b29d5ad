"""A response body's bytes handed on by h11 without two of its four copies.

Why: on a fast line the event loop's thread limits a download, and every byte of a body is
copied four times on it before archiver sees it: into h11's receive buffer, then twice by
``ReceiveBuffer.maybe_extract_at_most`` (a slice to test for emptiness, a slice to return),
then once more by httpcore (``bytes(event.data)``). When what a body reader asks for is all
the buffer holds, which is the rule for a body read at the socket's pace, the buffer itself
can be handed over and a new one started: the two copies of the extraction are gone. Measured
with httpx alone (800 MiB from nginx on loopback, 8 connections, bytes only counted): 0.70 to
0.74 s of CPU against 0.81 to 0.90 s, in turns.

h11 offers no option for this, so the method is replaced on its class, once, and only for the
releases whose ``ReceiveBuffer`` was read and tested against (:data:`KNOWN_H11`); with another
release nothing changes but speed. What the replacement returns is what h11's returns (a
``bytearray`` of the same bytes, the buffer left with the same bytes, its line searches
restarted as ``_extract`` restarts them): tests/test_net.py checks it against h11's own, on
generated buffers, and fails when the installed h11 is not one of :data:`KNOWN_H11`.
"""

from __future__ import annotations

from collections.abc import Callable

from h11 import _receivebuffer
from h11._version import __version__ as H11_VERSION

# The releases whose ReceiveBuffer (unchanged from 0.14 to 0.16) the replacement was read against.
KNOWN_H11 = frozenset({"0.14.0", "0.15.0", "0.16.0"})

_Extract = Callable[[_receivebuffer.ReceiveBuffer, int], "bytearray | None"]
_ORIGINAL: _Extract = _receivebuffer.ReceiveBuffer.maybe_extract_at_most


def _extract_at_most(buffer: _receivebuffer.ReceiveBuffer, count: int) -> bytearray | None:
    """h11's ``maybe_extract_at_most``: up to ``count`` bytes from the buffer's start, or
    ``None`` when it holds none; the whole buffer handed over when it is all that is asked."""
    data: bytearray = buffer._data
    if 0 < len(data) <= count:
        buffer._data = bytearray()
        buffer._next_line_search = 0
        buffer._multiple_lines_search = 0
        return data
    return _ORIGINAL(buffer, count)


def hand_over_bodies() -> bool:
    """Replace h11's extraction with :func:`_extract_at_most` when the installed h11 is one
    of :data:`KNOWN_H11`; whether it is (now or already) replaced."""
    if H11_VERSION not in KNOWN_H11:
        return False
    _receivebuffer.ReceiveBuffer.maybe_extract_at_most = _extract_at_most  # type: ignore[method-assign,assignment]
    return True
