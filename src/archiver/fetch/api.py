"""How archiver asks a PeerTube instance's API: within its rate limit, at a pace, never
reading more than it can hold, and keeping the good answers for the next runs.

The API is rate limited (``rates_limit.api``: 50 calls per 10 s per client, every
``/api/v1/videos/*`` route, captions included; express-rate-limit's ``X-RateLimit-Limit``,
``-Remaining`` and ``-Reset`` on every answer, then ``429`` with ``Retry-After``): each
instance gets an :class:`ApiBudget` that paces the calls under it and waits out a 429.

Every answer is untrusted: read up to :data:`MAX_ANSWER` bytes (or the cap its caller sets)
within :data:`API_MAX_TIME` seconds and no slower than its :class:`Pace`, never whole into
memory. A kept answer is named in the archive only by a plain UUID (:func:`cache_path`), and
read back within :data:`MAX_CACHED` bytes, never through a symlink nor from a FIFO.

What the answers say is read by :mod:`.video_info`; :mod:`.peertube` asks.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import json
import logging
import os
import re
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..errors import describe_os_error
from ..files import atomic_write_bytes
from ..urls import redact
from .http import PASSWORD_HEADER, PASSWORD_ORIGIN, describe, origin, retry_after

__all__ = [
    "API_ATTEMPTS",
    "API_MAX_TIME",
    "API_TIMEOUT",
    "CUT",
    "DEFAULT_PACE",
    "MAX_ANSWER",
    "MAX_CACHED",
    "ApiBudget",
    "Pace",
    "answer_json",
    "api_get",
    "cache_path",
    "get_capped",
    "loads",
    "read_stored",
    "store_answer",
    "why",
]

log = logging.getLogger(__name__)

API_TIMEOUT = 10.0
# A whole answer, however slowly it trickles in: a byte every 9 s never trips API_TIMEOUT.
API_MAX_TIME = 60.0
# An API answer: a real video's is 10 to 60 KB, its captions list less. Parsed JSON takes up to
# 25 times its size in memory (``[{},{},…]``), so the cap is what bounds the process.
MAX_ANSWER = 2 * 1024 * 1024
# A video's answer and its captions', kept together in the cache.
MAX_CACHED = 4 * MAX_ANSWER
# The extension that marks an answer cut at its cap (its bytes dropped).
CUT = "archiver.cut"
API_ATTEMPTS = 5  # per call, when the instance answers 429 or 503
RETRY_AFTER_MAX = 60.0
# config/default.yaml, rates_limit.api: "50 attempts in 10 seconds"
DEFAULT_LIMIT, DEFAULT_WINDOW = 50, 10.0

# A video's UUID as the manifest holds it: it names the cached answer's file, so nothing else.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Pace:
    """The slowest an answer may come, as for downloads (curl's ``--speed-limit`` and
    ``--speed-time``): fewer than ``min_rate`` bytes a second over ``window`` seconds is a
    stall (``--timeout``); 0 sets no floor. Whatever the pace, :data:`API_MAX_TIME` bounds it.
    """

    min_rate: int = 1024
    window: float = API_TIMEOUT


class _Clock:
    """What an answer brought, when: whether it came too slowly over the last window."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self.samples: collections.deque[tuple[float, int]] = collections.deque()
        self.samples.append((time.monotonic(), 0))

    def too_slow(self, received: int) -> bool:
        now = time.monotonic()
        self.samples.append((now, received))
        window = self.pace.window
        # Keep one sample at least a window old: the span measured is never shorter.
        while len(self.samples) > 2 and now - self.samples[1][0] >= window:
            self.samples.popleft()
        since, then = self.samples[0]
        return now - since >= window and received - then < self.pace.min_rate * window


DEFAULT_PACE = Pace()


class ApiBudget:
    """One instance's API rate limit, kept from our side: calls are paced under it.

    The instance says where its fixed window stands on every answer (``X-RateLimit-Remaining``,
    ``X-RateLimit-Reset`` in seconds since the epoch, express-rate-limit's legacy headers):
    when only ``reserve`` calls are left, the next waits for the window's reset. An instance
    that says nothing gets at most its default budget less ``reserve`` in any window. A 429
    or 503 blocks every call for its ``Retry-After``.
    """

    def __init__(
        self, *, limit: int = DEFAULT_LIMIT, window: float = DEFAULT_WINDOW, reserve: int = 5
    ) -> None:
        self.limit = limit
        self.window = window
        self.reserve = reserve
        self.calls: collections.deque[float] = collections.deque()
        self.remaining: int | None = None
        self.reset_at = 0.0  # monotonic time the instance's window resets
        self.blocked_until = 0.0
        self.waited = 0.0  # seconds spent waiting, for the run's record
        self._lock = asyncio.Lock()

    async def slot(self) -> None:
        """Wait until a call may be made, and count it."""
        async with self._lock:
            while True:
                now = time.monotonic()
                wait = self.blocked_until - now
                reserve = min(self.reserve, self.limit // 5)
                if wait <= 0 and self.remaining is not None:
                    if self.remaining > reserve:
                        self.remaining -= 1
                        return
                    wait = self.reset_at - now
                    if wait <= 0:
                        self.remaining = None  # a new window: the next answer says how much
                        continue
                if wait <= 0:
                    while self.calls and now - self.calls[0] >= self.window:
                        self.calls.popleft()
                    if len(self.calls) < max(self.limit - reserve, 1):
                        self.calls.append(now)
                        return
                    wait = self.calls[0] + self.window - now
                self.waited += wait
                await asyncio.sleep(wait)

    def learn(self, response: httpx.Response) -> None:
        """Read where the instance's window stands from an answer's headers."""
        headers = response.headers
        remaining = _integer(headers.get("X-RateLimit-Remaining"))
        reset = _integer(headers.get("X-RateLimit-Reset"))
        limit = _integer(headers.get("X-RateLimit-Limit"))
        if limit:
            self.limit = limit
        if remaining is not None:
            self.remaining = remaining
            clock = _sent_at(headers) or time.time()
            ahead = (reset - clock) if reset is not None else self.window
            self.reset_at = time.monotonic() + min(max(ahead, 0.0), RETRY_AFTER_MAX)
        if response.status_code in (429, 503):
            asked = retry_after(headers.get("Retry-After"), RETRY_AFTER_MAX)
            self.block(self.window if asked is None else asked)  # "0" means now

    def block(self, seconds: float) -> None:
        self.blocked_until = max(
            self.blocked_until, time.monotonic() + min(seconds, RETRY_AFTER_MAX)
        )


def _digits(value: str | None) -> str | None:
    """The value when it is plain ASCII digits (``"²".isdigit()`` is true), and not absurdly
    long; ``None`` otherwise."""
    if value is None:
        return None
    value = value.strip()
    return value if value.isascii() and value.isdigit() and len(value) <= 12 else None


def _integer(value: str | None) -> int | None:
    digits = _digits(value)
    return int(digits) if digits is not None else None


def _sent_at(headers: httpx.Headers) -> float | None:
    """When the answer was sent, by its ``Date`` header (the instance's clock)."""
    try:
        return email.utils.parsedate_to_datetime(headers.get("Date", "")).timestamp()
    except (TypeError, ValueError):
        return None


async def api_get(
    client: httpx.AsyncClient,
    url: str,
    budget: ApiBudget,
    headers: Mapping[str, str],
    pace: Pace = DEFAULT_PACE,
) -> httpx.Response:
    """``GET url`` within the instance's budget; a 429 or 503 is waited out and asked again."""
    for attempt in range(1, API_ATTEMPTS + 1):
        await budget.slot()
        response = await get_capped(client, url, headers, pace=pace)
        budget.learn(response)
        if response.status_code not in (429, 503) or attempt == API_ATTEMPTS:
            return response
        log.info(
            "%s: HTTP %s, asking again (attempt %d)",
            redact(url),
            response.status_code,
            attempt + 1,
        )
    raise AssertionError("unreachable")  # pragma: no cover


class _Failed(httpx.RequestError):
    """A request this client gave up on: an answer too slow to ever end, a redirect to
    something that is no URL. Its message says why, for a person."""


def why(exc: httpx.HTTPError) -> str:
    """A failed request in words."""
    return str(exc) if isinstance(exc, _Failed) else describe(exc, API_TIMEOUT)


async def get_capped(
    client: httpx.AsyncClient,
    url: str,
    headers: Mapping[str, str],
    *,
    cap: int = MAX_ANSWER,
    pace: Pace = DEFAULT_PACE,
) -> httpx.Response:
    """``GET url``, its body read up to ``cap`` bytes, at ``pace`` and for at most
    :data:`API_MAX_TIME` seconds: an endless answer is cut past ``cap`` (and then refused by
    :func:`answer_json`), never read whole into memory; a trickling one is a time-out."""
    # A password is for this URL's origin only: a redirect elsewhere drops it (http.py).
    home = {PASSWORD_ORIGIN: origin(url)} if PASSWORD_HEADER in headers else None
    body = bytearray()
    try:
        async with (
            asyncio.timeout(API_MAX_TIME) as clock,
            client.stream(
                "GET", url, timeout=API_TIMEOUT, headers=dict(headers), extensions=home
            ) as streamed,
        ):
            pulse = _Clock(pace)  # from the headers on: a server may think before answering
            # Decoded bytes: a small gzip bomb is cut at the cap like any long answer.
            async for chunk in streamed.aiter_bytes():
                body += chunk
                if len(body) > cap:
                    break
                if pace.min_rate and pulse.too_slow(len(body)):
                    said = f"too slow: less than {pace.min_rate} bytes/s over {pace.window:g} s"
                    raise _Failed(said, request=streamed.request)
    except TimeoutError as exc:
        if not clock.expired():
            raise
        said = f"too slow: no whole answer within {API_MAX_TIME:g} s"
        raise _Failed(said, request=httpx.Request("GET", url)) from exc
    except httpx.InvalidURL as exc:
        # No httpx.HTTPError: raised by httpx itself for a Location such as javascript:x.
        said = f"redirected to an address that is no URL ({exc})"
        raise _Failed(said, request=httpx.Request("GET", url)) from exc
    cut = len(body) > cap
    # A cut answer's bytes are of no use: dropped, not copied (the copy would double the peak).
    return httpx.Response(
        streamed.status_code,
        headers=streamed.headers,
        content=b"" if cut else bytes(body),
        request=streamed.request,
        extensions={CUT: True} if cut else {},
    )


def answer_json(response: httpx.Response) -> Any:
    """An answer's JSON, refused past :data:`MAX_ANSWER` bytes."""
    if response.extensions.get(CUT) or len(response.content) > MAX_ANSWER:
        raise ValueError(f"an answer longer than {MAX_ANSWER} bytes")
    return loads(response.content)


def loads(document: bytes) -> Any:
    """JSON, its nesting beyond Python's recursion limit refused as any other bad JSON."""
    try:
        return json.loads(document)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def cache_path(cache: Path, uuid: str) -> Path | None:
    """Where a video's answer is kept in ``cache``; ``None`` when ``uuid`` is not a plain
    lowercase UUID, which would name a path elsewhere (``../../settings``)."""
    return cache / f"{uuid}.json" if _UUID.fullmatch(uuid) else None


def store_answer(cache: Path, path: Path, document: Mapping[str, Any]) -> None:
    """Keep an answer for the next runs. A cache: a disk that refuses it costs a question to
    the API next time, never this run."""
    data = json.dumps(document, ensure_ascii=False, sort_keys=True).encode()
    if len(data) > MAX_CACHED:
        log.info("%s: the PeerTube API's answer is too long to keep", path)
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except OSError as exc:
        log.warning("%s: cannot keep the PeerTube API's answer: %s", path, describe_os_error(exc))


def _read_bounded(path: Path, cap: int) -> bytes | None:
    """A regular file's bytes, ``None`` past ``cap`` bytes. Not through a symlink, and never
    blocking on a FIFO put in its place."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    descriptor = os.open(path, flags)
    with os.fdopen(descriptor, "rb") as stream:
        found = os.fstat(descriptor)
        if not stat.S_ISREG(found.st_mode) or found.st_size > cap:
            return None
        data = stream.read(cap + 1)
    return data if len(data) <= cap else None


def read_stored(path: Path) -> Any:
    """A kept answer's JSON; ``None`` when it is no regular file or is past
    :data:`MAX_CACHED` bytes. Raises ``OSError`` and ``ValueError`` as reading and JSON do."""
    data = _read_bounded(path, MAX_CACHED)
    return None if data is None else loads(data)
