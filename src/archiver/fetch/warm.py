"""Open a file's other connections while its first answer is on its way (issue 14).

A file split over several connections (:mod:`.split`) adds them once its first answer says
its length and validator: on a far server, each then costs two round trips to its first
byte, one of them TCP's handshake. A file alone in its run whose first answer has not come
after :data:`.http.WARM_AFTER` opens them before: one ``HEAD`` each (within the free slots of
``--jobs`` and ``--per-host``, given back once answered), so that the client keeps their
connections and the ranged requests go out on them, one round trip to their first byte.

Measured on the emulated poor line (bench/linkemu.py: 0.3 s round trip, 2 MiB/s a
connection, 8 MiB/s in all), one 40 MB file over 4 connections, from the first connection
to the last byte: 5.79 s opened after 0.1 s, 5.83 s after 0.15 s, 6.01 s not opened ahead
(medians of 4 and 5 runs, in turns). A file that does not split loses nothing but the
``HEAD``s; a nearby server, answering before ``WARM_AFTER``, sees none.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from .http import WARM_AFTER
from .split import Line

__all__ = ["warm_up"]


async def warm_up(line: Line, more: int, answered: asyncio.Event) -> None:
    """Up to ``more`` connections to ``line.url``'s server, opened with a ``HEAD`` each,
    unless ``answered`` is set within :data:`.http.WARM_AFTER` seconds. A ``HEAD`` that
    fails costs nothing: the split opens its connections as it would have."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(answered.wait(), WARM_AFTER)
    if answered.is_set():
        return
    taken = 0
    try:
        while taken < more and await line.slots.try_take(line.url):
            taken += 1

        async def one() -> None:
            with contextlib.suppress(httpx.HTTPError):
                await line.client.head(line.url, headers=line.headers, extensions=line.extensions)

        await asyncio.gather(*(one() for _ in range(taken)))
    finally:
        for _ in range(taken):
            line.slots.give(line.url)
