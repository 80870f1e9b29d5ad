"""The PeerTube API client: a video's description asked of its instance, its files' checksums.

:func:`fetch_info` asks ``GET /api/v1/videos/{uuid}`` and its captions; what their answers
mean (:class:`.video_info.VideoInfo`, its files and captions) is read by :mod:`.video_info`,
and what an answer refusing the video means (an :class:`Unavailable`: private,
password-protected, unknown) is read here. :func:`check_segments` checks a fetched file
against the sha256 its playlist's ``segmentsSha256Url`` publishes: a JSON
``{stored file name: {"start-end": sha256}}`` (``server/core/lib/hls.ts``), keyed by the name
in ``fileUrl``, not the download name.

Every call goes through :mod:`.api`: the instance's rate limit, the pace, the caps on what an
answer may hold (a segments list up to :data:`MAX_SEGMENTS`), the cache.

Only a ``200`` answer is kept (in the archive's ``peertube/`` folder) and reused within the
refresh period. An answer that says the video cannot be had (private, password-protected,
unknown, a live, not published yet) is an :class:`Unavailable` with a reason for a person,
never cached: the next run asks again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from ..entry import PeerTubeRef
from .api import (
    API_TIMEOUT,
    CUT,
    DEFAULT_PACE,
    MAX_ANSWER,
    ApiBudget,
    Pace,
    answer_json,
    api_get,
    cache_path,
    get_capped,
    loads,
    read_stored,
    store_answer,
    why,
)
from .http import PASSWORD_HEADER
from .video_info import (
    Caption,
    Unavailable,
    VideoFile,
    VideoInfo,
    parse_captions,
    parse_video,
)

# API_TIMEOUT, MAX_ANSWER, ApiBudget, Pace and cache_path are .api's; Caption, Unavailable,
# VideoFile, VideoInfo, parse_captions and parse_video are .video_info's: all still named here.
__all__ = [
    "API_TIMEOUT",
    "MAX_ANSWER",
    "ApiBudget",
    "Caption",
    "Pace",
    "Unavailable",
    "VideoFile",
    "VideoInfo",
    "cache_path",
    "check_segments",
    "fetch_info",
    "parse_captions",
    "parse_video",
]

log = logging.getLogger(__name__)

# A segments list: one line per 4 s segment of every file, some 400 KB an hour of video.
MAX_SEGMENTS = 16 * 1024 * 1024
# Its values are some 80 bytes apart ("start-end":"sha256"); junk packed tighter than one per
# SEGMENT_SPACING bytes would cost far more memory than its size once parsed.
SEGMENT_SPACING = 32
NOT_ASKED = "its instance was not asked: the run's --max-time was reached"

_RANGE = re.compile(r"^(\d{1,15})-(\d{1,15})$")


def _problem(response: httpx.Response) -> bool:
    """Whether an error answer is PeerTube's own: ``application/problem+json``
    (``server/core/middlewares/error.ts``). A host that is no PeerTube instance (a mirror, a
    bucket whose paths hold a UUID) answers its 404 otherwise: then the fiche's link is used."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return kind in ("application/problem+json", "application/json")


def _said(response: httpx.Response) -> tuple[str | None, str | None]:
    """The ``code`` and ``detail`` an error answer's JSON gives, when it gives them."""
    try:
        problem = loads(response.content)
    except ValueError:
        return None, None
    if not isinstance(problem, Mapping):
        return None, None
    code, detail = problem.get("code"), problem.get("detail")
    return (code if isinstance(code, str) else None), (detail if isinstance(detail, str) else None)


def _refusal(response: httpx.Response) -> Unavailable:
    """What a 4xx answer of the API says, in words (problem+json ``code`` and ``detail``)."""
    code, detail = _said(response)
    status = response.status_code
    if code == "video_requires_password":
        return Unavailable("protected by a password: give it with --video-password", True)
    if code == "incorrect_video_password":
        return Unavailable("protected by a password, and the one given is wrong", True)
    if status == 401:
        return Unavailable("private on the instance: it asks for an account (HTTP 401)", True)
    if status == 403:
        said = f": {detail}" if detail else ""
        return Unavailable(f"the instance refuses it (HTTP 403{said})", True)
    if status in (404, 410):
        return Unavailable(
            f"unknown to the instance (HTTP {status}): removed, or a wrong link", True
        )
    return Unavailable(f"the instance's API answered HTTP {status}", False)


async def fetch_info(
    client: httpx.AsyncClient,
    ref: PeerTubeRef,
    cache: Path,
    *,
    budget: ApiBudget | None = None,
    fresh: bool = False,
    api_base: str | None = None,
    password: str | None = None,
    deadline: float | None = None,
    pace: Pace = DEFAULT_PACE,
    keep: bool = True,
) -> VideoInfo | Unavailable:
    """The instance's description of a video: from the cache when ``fresh``, else the API.

    When the API cannot answer (down, rate limited past its retries), a cached answer serves
    if there is one; so it does when the run's ``deadline`` (a :func:`time.monotonic` instant,
    ``--max-time``) comes first. ``api_base`` replaces the instance's address in the requests
    (a mirror); ``password`` is sent in PeerTube's header, never logged; an answer slower than
    ``pace`` is a stall. ``keep=False`` (a dry run) keeps no answer: the archive is not
    touched.
    """
    cached = cache_path(cache, ref.uuid)
    if cached is None:
        # The manifest's loader refuses such a UUID; a path made of one would point anywhere.
        return Unavailable(f"not a PeerTube video UUID: {ref.uuid[:80]!r}", True)
    left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
    try:
        async with asyncio.timeout(left) as clock:
            return await _ask(
                client,
                ref,
                cache,
                cached,
                budget=budget or ApiBudget(),
                fresh=fresh,
                api_base=api_base,
                password=password,
                pace=pace,
                keep=keep,
            )
    except TimeoutError:
        if not clock.expired():
            raise
    held = await asyncio.to_thread(_read_cached, cached, ref)
    return held or Unavailable(NOT_ASKED, False)


async def _ask(
    client: httpx.AsyncClient,
    ref: PeerTubeRef,
    cache: Path,
    cached: Path,
    *,
    budget: ApiBudget,
    fresh: bool,
    api_base: str | None,
    password: str | None,
    pace: Pace,
    keep: bool = True,
) -> VideoInfo | Unavailable:
    # The cache is on the archive's disk (a USB key, perhaps): read and written, with its
    # fsync, in worker threads.
    if fresh:
        held = await asyncio.to_thread(_read_cached, cached, ref)
        if held is not None:
            return held
    url = f"{api_base or ref.instance}/api/v1/videos/{ref.uuid}"
    headers: dict[str, str] = {}
    try:
        response = await api_get(client, url, budget, headers, pace)
        if password and _code(response) == "video_requires_password":
            # The password goes only to an instance that asked for it, for this video.
            headers = {PASSWORD_HEADER: password}
            response = await api_get(client, url, budget, headers, pace)
    except httpx.HTTPError as exc:
        reason = why(exc)
        log.info("%s: PeerTube API not reachable (%s)", ref.uuid, reason)
        held = await asyncio.to_thread(_read_cached, cached, ref)
        return held or Unavailable(f"the instance's API cannot be reached ({reason})", False)
    if response.status_code in (401, 403, 404, 410) and _problem(response):
        return _refusal(response)
    if response.status_code != 200:
        held = await asyncio.to_thread(_read_cached, cached, ref)
        if held is not None:
            return held
        if response.status_code in (401, 403, 404, 410):
            said = f"no PeerTube API there (HTTP {response.status_code})"
            return Unavailable(said, False, instance=False)
        return _refusal(response)
    try:
        video = answer_json(response)
        info = parse_video(video, ref.instance)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        log.warning("%s: PeerTube API answer not understood (%s)", ref.uuid, exc)
        return Unavailable(f"the instance's answer is not understood ({exc})", False)
    captions: Any = None  # None: not known (kept nowhere, asked again next time)
    tracks: tuple[Caption, ...] = ()
    try:
        answer = await api_get(client, f"{url}/captions", budget, headers, pace)
        if answer.status_code == 200:
            captions = answer_json(answer)
            tracks = parse_captions(captions, ref.instance)
        else:
            log.info("%s: captions not listed (HTTP %s)", ref.uuid, answer.status_code)
    except httpx.HTTPError as exc:
        log.info("%s: captions not listed (%s)", ref.uuid, why(exc))
        captions, tracks = None, ()
    except (ValueError, TypeError, AttributeError) as exc:
        log.info("%s: captions not listed (%s)", ref.uuid, exc)
        captions, tracks = None, ()
    if keep and captions is not None and info.problem is None:
        # Only 200 answers, both of them, are kept; a live or a video not published yet is
        # asked about again next time.
        await asyncio.to_thread(store_answer, cache, cached, {"video": video, "captions": captions})
    return dataclasses.replace(info, captions=tracks, protected=bool(headers))


def _code(response: httpx.Response) -> str | None:
    """The ``code`` of a PeerTube problem+json answer, if it is one."""
    return _said(response)[0] if _problem(response) else None


def _read_cached(path: Path, ref: PeerTubeRef) -> VideoInfo | None:
    try:
        document = read_stored(path)
        if document is None:
            return None
        if "video" not in document:
            return None  # what older releases kept of a refusal: ask again
        return parse_video(document["video"], ref.instance, document.get("captions"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, OverflowError):
        return None


async def check_segments(
    client: httpx.AsyncClient, url: str, path: Path, name: str, *, pace: Pace = DEFAULT_PACE
) -> tuple[str, str] | str | None:
    """Check ``path`` against the sha256 PeerTube publishes for each of its byte ranges, under
    ``name`` (the file's stored name); its list read at ``pace`` at the slowest.

    Returns ``(expected, actual)`` for the first range that does not match, ``None`` when all
    match, or a reason (``str``) when nothing was checked: the instance publishes no checksum
    for this file, or its list cannot be had.
    """
    try:
        response = await get_capped(client, url, {}, cap=MAX_SEGMENTS, pace=pace)
    except httpx.HTTPError as exc:
        reason = why(exc)
        return f"the instance's segment checksums cannot be had ({reason})"
    if response.status_code != 200:
        return f"the instance's segment checksums cannot be had (HTTP {response.status_code})"
    if response.extensions.get(CUT):
        return "the instance's segment checksums are too long to be a list of checksums"
    # Reading and hashing the whole file, and reading the instance's list (one line per
    # segment of every file of the video): in a worker thread, not on the event loop.
    return await asyncio.to_thread(_first_mismatch, path, response.content, name)


def _first_mismatch(path: Path, document: bytes, name: str) -> tuple[str, str] | str | None:
    if document.count(b",") > len(document) // SEGMENT_SPACING + 64:
        return "the instance's segment checksums are not understood (not a list of checksums)"
    try:
        ranges = loads(document).get(name)
    except (ValueError, AttributeError) as exc:
        return f"the instance's segment checksums are not understood ({exc})"
    if not isinstance(ranges, dict) or not ranges:
        return f"the instance publishes no segment checksum for {name}"
    checked = 0
    covered = 0  # ranges must follow each other: no byte is hashed twice
    with path.open("rb") as stream:
        for span, expected in sorted(ranges.items(), key=lambda kv: _start(kv[0])):
            match = _RANGE.match(span)
            if not match or not isinstance(expected, str):
                continue
            start, end = int(match.group(1)), int(match.group(2))
            if start < covered or end < start:
                return f"{expected} for bytes {span}", "a range that overlaps another"
            covered = end + 1
            stream.seek(start)
            digest = hashlib.sha256()
            left = end - start + 1
            while left > 0 and (block := stream.read(min(left, 4 * 1024 * 1024))):
                digest.update(block)
                left -= len(block)
            if left > 0:
                return f"{expected} for bytes {span}", "bytes past the end of the file"
            actual = digest.hexdigest()
            if actual != expected.lower():
                return f"{expected} for bytes {span}", actual
            checked += 1
    return None if checked else f"the instance publishes no usable segment checksum for {name}"


def _start(span: str) -> int:
    match = _RANGE.match(span)
    return int(match.group(1)) if match else 0
