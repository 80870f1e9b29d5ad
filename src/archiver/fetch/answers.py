"""A file's request and what its answer says, before its body is read.

Where a fetch starts (the bytes of a partial file its sidecar proves, the headers that resume
it), and what the status and headers of the answer decide: where the bytes go, that a resumed
range continues the same version, that the length is within the file's cap, the version a
first answer brings for the parts of a split file. Plain functions of the job, the answer and
the partial's state: :mod:`.fetcher` runs the attempts, this is what each attempt reads.
"""

from __future__ import annotations

import httpx

from ..archive import Archive, PartialState
from ..errors import ChecksumMismatch, DownloadError
from ..files import open_regular
from ..units import format_bytes
from ..urls import redact
from .http import (
    NOT_RETRIED,
    RETRIED,
    UNSATISFIED_RANGE,
    encoded,
    repeats_etag,
    retry_after,
    sent_range,
    strong_etag,
)
from .plan import Job
from .segments import Origin, Segments
from .transfer import Dropped, NotModified, Retry

__all__ = [
    "cap_words",
    "check_response",
    "described",
    "final_url_of",
    "resume_point",
    "within_cap",
]


def resume_point(
    archive: Archive, job: Job
) -> tuple[int, PartialState | None, dict[str, str], Segments | None]:
    """How many bytes of a partial file can be resumed, its state, the request headers;
    or, for a file fetched in parts, the parts as its sidecar and the partial's size
    prove them."""
    part, side = archive.partial_paths(job.entry.id, job.role)
    try:
        with open_regular(side) as stream:  # a sidecar is a few hundred bytes
            data = stream.read(64 * 1024)
        have = part.stat().st_size
    except OSError:
        return 0, None, {}, None
    segments = Segments.from_json(data, have)
    if segments is not None:
        if segments.origin.url != job.url or segments.origin.validator is None:
            return 0, None, {}, None
        return segments.size, None, {}, segments
    state = PartialState.from_json(data)
    validator = (strong_etag(state.etag) or state.last_modified) if state else None
    if state is None or state.url != job.url or validator is None or have == 0:
        return 0, None, {}, None
    return have, state, {"Range": f"bytes={have}-", "If-Range": validator}, None


def check_response(
    job: Job,
    response: httpx.Response,
    have: int,
    state: PartialState | None,
    retry_after_max: float,
) -> tuple[int | None, int | None, PartialState]:
    """Decide from the status and headers where the bytes go: ``(offset, total, state)``."""
    status = response.status_code
    etag = response.headers.get("ETag")
    modified = response.headers.get("Last-Modified")
    if status == 304 and job.revalidate is not None:
        raise NotModified
    if status == 416 and state is not None:
        match = UNSATISFIED_RANGE.match(response.headers.get("Content-Range", ""))
        if match and int(match.group(1)) == have and state.length in (None, have):
            return None, have, state
        raise Retry(
            "the partial file does not match the server's; starting again",
            retry_after=0,
            restart=True,
        )
    if status in RETRIED:
        after = retry_after(response.headers.get("Retry-After"), retry_after_max)
        raise Retry(f"HTTP {status} {response.reason_phrase}".rstrip(), retry_after=after)
    if status == 206 and state is not None:
        # Asked ``bytes=have-``: the rest of the file, of the partial's version, as it is.
        sent = sent_range(response)
        first, last, total = sent if not isinstance(sent, str) else (-1, -1, None)
        same_version = (
            first == have
            and last + 1 == total
            and (state.length is None or total == state.length)
            and (etag is None or state.etag is None or etag == state.etag)
            and repeats_etag(state.etag, etag)
        )
        if not same_version:
            raise Retry(
                "the resumed range does not match the partial file; starting again",
                retry_after=0,
                restart=True,
            )
        within_cap(job, total)
        return have, total, state
    if status == 200:
        coding = encoded(response)
        if coding is not None:
            raise DownloadError(job.url, f"the server's answer is {coding}")
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isascii() and length.isdigit() else None
        if job.size is not None and total is not None and total != job.size:
            raise ChecksumMismatch(job.url, "size", str(job.size), str(total))
        within_cap(job, total)
        return (
            0,
            total,
            PartialState(url=job.url, etag=etag, last_modified=modified, length=total),
        )
    if status in NOT_RETRIED:
        raise DownloadError(job.url, f"HTTP {status} {response.reason_phrase}".rstrip())
    raise DownloadError(job.url, f"unexpected HTTP {status} {response.reason_phrase}".rstrip())


def within_cap(job: Job, size: int | None) -> None:
    """A length over the file's cap fails it before its body is read."""
    if size is not None and size > job.cap:
        reason = f"too large: {format_bytes(size)} announced, over {cap_words(job)}"
        raise Dropped(job.url, reason)


def described(job: Job, response: httpx.Response, state: PartialState, length: int) -> Origin:
    """The version a first answer brings, as its parts' answers must match it."""
    return Origin(
        url=job.url,
        etag=state.etag,
        last_modified=state.last_modified,
        length=length,
        content_type=response.headers.get("Content-Type", ""),
        final_url=final_url_of(job, response),
    )


def final_url_of(job: Job, response: httpx.Response) -> str:
    """The URL a file came from after redirects: the manifest's own URL as written; a
    redirect's may carry credentials the user never gave, which provenance does not need."""
    return job.url if str(response.url) == job.url else redact(str(response.url))


def cap_words(job: Job) -> str:
    """The cap a file went over, and why it has that one: ``10.0 MiB, the most for WebVTT
    captions``."""
    cap = format_bytes(job.cap)
    if job.known_size is not None:
        return f"{cap}, its known size ({format_bytes(job.known_size)}) and a margin"
    what = job.claim.label if job.claim is not None else "a video of unknown size"
    return f"{cap}, the most for {what}"
