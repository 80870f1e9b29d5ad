"""Sizes before any byte: what a file's server says of it with ``HEAD``, when nothing else does.

A PeerTube instance's API gives each video file's size; a fiche's companion PDFs, a video on
a plain web server, an instance's preview and captions come with none. Three things need
them before the first byte of media: ``--dry-run`` (what a run would fetch, in bytes),
``--fit`` for a video with no PeerTube UUID, and the progress bar's total. ``HEAD`` gives
``Content-Length`` without the body; it follows redirects as the downloads do (the same
client: its https-to-http refusal, its password rules), and is bounded like any request to
an untrusted server: ``--timeout`` for the answer (no body is read), at most ``--per-host``
at once to a host and ``--jobs`` in all, and a length of at most :data:`MAX_DIGITS` digits.

An answer with no length, a refusal (some servers answer ``HEAD`` with 405) or a failure is
no size: the caller counts the file as of unknown size, never as zero. A host given up on
(:mod:`.hosts`) is not asked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import httpx

from ..urls import redact
from .http import DownloadSettings

__all__ = ["MAX_DIGITS", "head_sizes", "length_of"]

log = logging.getLogger(__name__)

# 15 digits: up to 999 TB, past any file a collection holds, and short of a float's 2**53.
MAX_DIGITS = 15


def length_of(response: httpx.Response) -> int | None:
    """The length a ``200`` answer announces, or ``None``: a range, an error page, a length
    that is no plain number (``"²"``, ``"1e9"``, 40 digits) says nothing of the file.

    >>> length_of(httpx.Response(200, headers={"Content-Length": "1024"}))
    1024
    >>> length_of(httpx.Response(404, headers={"Content-Length": "9"})) is None
    True
    """
    if response.status_code != 200:
        return None
    value = response.headers.get("Content-Length", "").strip()
    if not value.isascii() or not value.isdigit() or len(value) > MAX_DIGITS:
        return None
    return int(value)


async def head_sizes(
    client: httpx.AsyncClient,
    urls: Iterable[str],
    settings: DownloadSettings,
) -> dict[str, int]:
    """Each URL's size as its server announces it to ``HEAD``, for those that say one.

    ``urls`` are the manifest's (the run's mirrors applied when asking); the answer is keyed
    by them. Several at once: ``--per-host`` a host, ``--jobs`` in all.
    """
    wanted = sorted(set(urls))
    if not wanted:
        return {}
    everywhere = asyncio.Semaphore(max(settings.jobs, 1))
    per_host: dict[str, asyncio.Semaphore] = {}

    async def ask(url: str) -> int | None:
        asked = settings.request_url(url)
        try:
            host = httpx.URL(asked).netloc.decode("ascii", "replace")
        except httpx.InvalidURL:
            return None
        gate = per_host.setdefault(host, asyncio.Semaphore(max(settings.per_host, 1)))
        async with everywhere, gate:
            try:
                response = await client.head(asked, timeout=settings.timeout)
            except httpx.HTTPError as exc:
                log.info("%s: no size from HEAD (%s: %s)", redact(url), type(exc).__name__, exc)
                return None
        size = length_of(response)
        if size is None:
            log.info("%s: HEAD says no size (HTTP %s)", redact(url), response.status_code)
        return size

    sizes = await asyncio.gather(*(ask(url) for url in wanted))
    return {url: size for url, size in zip(wanted, sizes, strict=True) if size is not None}
