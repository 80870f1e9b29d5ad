"""The end of one file's fetch: what arrived is checked, then committed or quarantined.

Every file, over one connection or several (:mod:`.split`), ends the same way once its last
byte is written: its length against the announced one, its pins (size, sha256), its bytes
against what its role says (a PDF, WebVTT captions, an image), a video's or a sound file's
MP4 against FFmpeg and its instance's segment checksums; then the catalog's commit. These
checks need the archive, the client and the partial file, never a connection or a slot, so
they live apart from :mod:`.fetcher`'s attempts and answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import httpx

from .. import media, sniff
from ..archive import Archive, FetchedFile, FileRecord, PartialState
from ..errors import ChecksumMismatch, DownloadError
from .peertube import check_segments
from .plan import Job
from .transfer import Retry, discard_partial

# The fetcher's logger: a file's checks are part of its fetch, and log under its name.
log = logging.getLogger("archiver.fetch.fetcher")


@dataclass(frozen=True)
class Answer:
    """What the catalog keeps of the answers that brought a file: its type, its URL."""

    content_type: str  # "": the server said none
    final_url: str  # after redirects, as the catalog shows it


async def finish(
    archive: Archive,
    client: httpx.AsyncClient,
    job: Job,
    answer: Answer,
    state: PartialState,
    expected: int | None,
    size: int,
    digest: str,
    *,
    check_media: bool,
) -> FileRecord:
    """Check a complete partial file against every expectation, in order, then commit it.

    A length that differs from the announced one is retried from zero; bytes that are
    whole but wrong (a pin, the MP4's structure, the source's segment checksums, a
    companion file that is not what its role says) are quarantined.
    """
    part, side = archive.partial_paths(job.entry.id, job.role)
    if expected is not None and size != expected:
        raise Retry(f"received {size} bytes but the server announced {expected}", restart=True)
    if job.size is not None and size != job.size:
        mismatch = ChecksumMismatch(job.url, "size", str(job.size), str(size))
        await _reject(archive, job, part, mismatch.reason)
        raise mismatch
    if job.sha256 is not None and digest != job.sha256:
        mismatch = ChecksumMismatch(job.url, "sha256", job.sha256, digest)
        await _reject(archive, job, part, mismatch.reason)
        raise mismatch
    content_type = answer.content_type
    extension = await _check_content(archive, job, part, content_type)
    info, segments = None, None
    if job.role in ("video", "audio") and check_media:
        info, segments = await _check_media(archive, client, job, part)
    fetched = FetchedFile(
        url=job.url,
        final_url=answer.final_url,
        sha256=digest,
        size=size,
        etag=state.etag,
        last_modified=state.last_modified,
        content_type=content_type,
        resolution=job.resolution,
        media=(info.duration, info.width, info.height) if info else None,
        segments=segments,
    )
    # Renames, fsyncs and a catalog transaction: off the event loop.
    name = job.named(extension)
    return await asyncio.to_thread(_commit, archive, job, name, part, side, fetched)


async def _check_media(
    archive: Archive, client: httpx.AsyncClient, job: Job, part: Path
) -> tuple[media.MediaInfo, str]:
    """A video must be a whole MP4 that FFmpeg reads (a video stream, a duration), a sound
    file stored apart a whole MP4 with a sound stream, and both must match the checksums
    their instance publishes for each byte range. Returns what FFmpeg read, and what the
    segment checksums said (``verified``, or why nothing was verified)."""
    try:
        if job.role == "audio":
            info = await asyncio.to_thread(media.confirm_audio, part)
        else:  # with sound when the instance says it has some (hasAudio, PeerTube 6.2)
            info = await asyncio.to_thread(
                functools.partial(media.confirm_playable, require_audio=job.has_sound), part
            )
    except media.MediaError as exc:
        reason = f"not a playable MP4: {exc.reason}"
        await _reject(archive, job, part, reason)
        raise DownloadError(job.url, reason) from exc
    segments = "not published"
    if job.segments_url:
        found = await check_segments(client, job.segments_url, part, job.name_upstream)
        if isinstance(found, tuple):
            mismatch = ChecksumMismatch(job.url, "segment sha256", found[0], found[1])
            await _reject(archive, job, part, mismatch.reason)
            raise mismatch
        if found is None:
            segments = "verified"
        else:
            segments = f"not verified: {found}"
            log.warning("%s: segment checksums %s", job.label, segments)
    return info, segments


async def _check_content(archive: Archive, job: Job, part: Path, content_type: str | None) -> str:
    """The extension a companion file is kept with, once its bytes are what its role says
    (a PDF, WebVTT captions, an image); otherwise it is quarantined and fails."""
    claim = job.claim
    if claim is None:
        return ".mp4"
    try:
        return await asyncio.to_thread(sniff.check, part, claim, content_type)
    except sniff.Mismatch as exc:
        await _reject(archive, job, part, exc.reason)
        raise DownloadError(job.url, exc.reason) from exc


async def _reject(archive: Archive, job: Job, part: Path, reason: str) -> None:
    """Bad bytes go to quarantine, for a person to look at; the partial starts over."""
    await asyncio.to_thread(_quarantine, archive, job, part, reason)


def _quarantine(archive: Archive, job: Job, part: Path, reason: str) -> None:
    archive.quarantine(job.entry.id, job.name, part, role=job.role, reason=reason)
    discard_partial(archive, job)


def _commit(
    archive: Archive, job: Job, name: str, part: Path, side: Path, fetched: FetchedFile
) -> FileRecord:
    record = archive.commit(job.entry.id, job.role, name, part, fetched)
    with contextlib.suppress(FileNotFoundError):
        side.unlink()
    return record
