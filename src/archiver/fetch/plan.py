"""What a download run fetches: pure planning, no network.

For each entry of a manifest: which files (the video, in the rendition chosen among those its
PeerTube instance offers; its companion PDFs; the instance's preview and captions), and, for
each, whether the archive already holds it, holds it but is due to ask upstream whether it
changed, or must fetch it. With them, the records a run is made of (:class:`Job`,
:class:`Outcome`, :class:`Status`, :class:`Choices`), which every command imports.

The choice of each video's rendition, made before this plan from what the instances said, is
:mod:`.renditions`: only a run needs it, and imports it from there.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ..entry import Entry
from ..errors import StorageError
from ..links import height_in_link
from ..manifest_reader import Manifest
from ..names import slugify

if TYPE_CHECKING:  # the API's client needs httpx: a plan read from a seal does not
    from .. import sniff
    from ..archive import Archive, FileRecord
    from ..choose import FitPlan
    from .video_info import VideoFile, VideoInfo

# The archive, its catalog and the checks of a file's type are imported where they are used,
# not with this module: every command imports it (through archiver.fetch, for the settings
# its options show), and only a run uses them (20-25 ms of every start, issue 14).

log = logging.getLogger(__name__)

__all__ = [
    "CAPTIONS_CAP",
    "IMAGE_CAP",
    "PDF_CAP",
    "VIDEO_CAP",
    "Choices",
    "Job",
    "Outcome",
    "Status",
    "claim_for",
    "file_name",
    "jobs_for",
    "plan",
    "size_cap",
    "video_failure",
]


class Status(enum.Enum):
    """What a run did with one file."""

    FETCHED = "fetched"  # its first version
    CHANGED = "changed"  # a new version, the old one kept
    HELD = "held"  # already held (and, if it was due, upstream confirmed unchanged)
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """One file to fetch: an entry's video or one of its companion files."""

    entry: Entry
    role: str
    url: str
    name: str
    sha256: str | None = None
    size: int | None = None
    revalidate: FileRecord | None = None  # held, but due for a check that upstream is the same
    resolution: int | None = None  # the height chosen among those the PeerTube instance offers
    optional: bool = False  # a preview or captions: missing them fails nothing
    segments_url: str | None = None  # the instance's sha256 of each byte range of the file
    segments_name: str | None = None  # the name those checksums know the file by
    has_sound: bool = False  # the instance says the file carries sound: it must have it
    protected: bool = False  # asked for with --video-password, from the video's instance only
    # The size its instance said the file has: not a pin (the file may have been re-encoded
    # since), but enough to check the disk has room before asking, and to cap the body.
    expected_size: int | None = None

    @property
    def claim(self) -> sniff.Claim | None:
        """What the file must be, checked by :func:`archiver.sniff.check` before it is kept;
        ``None`` for a video or a sound file, which :mod:`archiver.media` checks."""
        return claim_for(self.role)

    @property
    def known_size(self) -> int | None:
        """The file's size before any byte comes: pinned in the manifest, else its instance's."""
        return self.size if self.size is not None else self.expected_size

    @property
    def cap(self) -> int:
        """The most bytes this file may have: past it, the body is no file of this kind."""
        return size_cap(self.role, self.known_size)

    def named(self, extension: str) -> str:
        """The file's name in its item's folder, with the extension its checked type has."""
        return self.name.rpartition(".")[0] + extension

    @property
    def name_upstream(self) -> str:
        """The name the source's segment checksums know the file by: the instance's stored
        name when it said it, else the last segment of the download URL."""
        return self.segments_name or unquote(urlsplit(self.url).path.rpartition("/")[2])

    @property
    def key(self) -> tuple[str, str]:
        """The file, as progress reports name it."""
        return (self.entry.id, self.role)

    @property
    def label(self) -> str:
        return f"{self.entry.title} ({self.entry.id}, {self.role})"


@dataclass(frozen=True)
class Outcome:
    """What happened to one job."""

    job: Job
    status: Status
    record: FileRecord | None = None
    reason: str | None = None
    bytes_fetched: int = 0
    seconds: float = 0.0
    # The host (``host:port``) given up on for the run that failed it: said once for the host.
    unreachable: str | None = None


@dataclass(frozen=True)
class Choices:
    """What the PeerTube instances said: each video's chosen file, its description, the plan."""

    files: dict[str, VideoFile]
    infos: dict[str, VideoInfo]
    fit: FitPlan | None = None
    # Videos that must not be fetched, with the reason: the instance refuses them, or could
    # not say what they are while a cap or a budget needs to know.
    failed: dict[str, str] = dataclasses.field(default_factory=dict)
    # Videos among ``failed`` because their host is given up on for the run: the host.
    unreachable: dict[str, str] = dataclasses.field(default_factory=dict)


# -- what each file is, its name, its cap ------------------------------------------------------

KiB, MiB, GiB = 1024, 1024**2, 1024**3

# A cap on each body: a server that sends without end (a misconfigured one, a hostile one, a
# portal streaming a page) fails that file rather than filling the disk.
# A video whose instance gave no size: ten hours of 1080p at 6 Mbit/s is 27 GiB, and nothing in
# a collection of teachers' videos comes near.
VIDEO_CAP = 32 * GiB
# A video whose instance gave its size: that, and room for a file re-encoded since the
# instance described it (its answer is kept up to a day).
SIZE_SLACK_RATIO, SIZE_SLACK_MIN = 0.10, 1 * MiB
# A companion PDF: a fiche or a transcript is a few MiB, a scanned booklet tens of MiB.
PDF_CAP = 200 * MiB
# Captions: the WebVTT of a three-hour film is under 1 MiB; they are read whole to be checked.
CAPTIONS_CAP = 10 * MiB
# A preview image: PeerTube re-encodes the ones it serves, a few hundred KiB at most.
IMAGE_CAP = 16 * MiB

# The name each role's file gets in its item's folder: never a URL's last segment, so that two
# URLs ending alike (download.php?f=…) or one ending index.html collide with nothing.
ROLE_STEMS = {
    "video": "video",
    "audio": "audio",
    "fiche_pdf": "fiche",
    "transcript_pdf": "transcription",
    "preview": "preview",
}
CAPTION_PREFIX = "caption_"
# A caption's language as it names a role and a file: an ISO 639 code, maybe a region or a
# script (pt-BR, zh-Hans), as PeerTube lists them. Anything else (``../x``) names nothing.
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})?")


def claim_for(role: str) -> sniff.Claim | None:
    """What a role's file must be (``None``: an MP4, checked by :mod:`archiver.media`)."""
    from .. import sniff

    if role in ("video", "audio"):
        return None
    if role == "preview":
        return sniff.IMAGE
    if role.startswith(CAPTION_PREFIX):
        return sniff.CAPTIONS
    return sniff.PDF  # every companion asset is a PDF (entry.Asset)


def size_cap(role: str, known: int | None) -> int:
    """The most bytes a role's file may have, given the size known beforehand, if any."""
    if known is not None:
        return known + max(int(known * SIZE_SLACK_RATIO), SIZE_SLACK_MIN)
    from .. import sniff

    claim = claim_for(role)
    if claim is None:
        return VIDEO_CAP
    return {sniff.PDF: PDF_CAP, sniff.CAPTIONS: CAPTIONS_CAP, sniff.IMAGE: IMAGE_CAP}[claim]


def file_name(role: str, *, resolution: int | None = None) -> str:
    """The name of a role's file: ``video-720p.mp4``, ``fiche.pdf``, ``captions-fr.vtt``.

    The extension is the one its type usually has; the check of its bytes may change it
    (a PNG preview is kept as ``preview.png``).

    >>> file_name("video", resolution=720), file_name("transcript_pdf"), file_name("caption_pt-BR")
    ('video-720p.mp4', 'transcription.pdf', 'captions-pt-br.vtt')
    """
    if role.startswith(CAPTION_PREFIX):
        language = role.removeprefix(CAPTION_PREFIX)
        if not _LANGUAGE.fullmatch(language):
            raise ValueError(f"{language!r} is not a language code")
        return f"captions-{language.lower()}.vtt"
    stem = ROLE_STEMS.get(role) or slugify(role)
    if role == "video" and resolution:
        stem = f"video-{resolution:d}p"
    claim = claim_for(role)
    return stem + (claim.extension if claim is not None else ".mp4")


def jobs_for(
    entry: Entry, choice: VideoFile | None = None, info: VideoInfo | None = None
) -> tuple[list[Job], list[str]]:
    """The files of one entry, and the reasons any cannot be fetched at all.

    ``choice`` is the file picked among those the PeerTube instance offers (``--max-height``,
    ``--fit``); the fiche's own link otherwise. A checksum pinned for the fiche's file does not
    apply to another resolution. ``info``, when the instance described the video, adds its
    preview image and its captions, as optional files.
    """
    jobs: list[Job] = []
    problems: list[str] = []
    if choice is None and info is not None:
        choice = _own_file(entry, info)
    url = choice.url if choice is not None else entry.video.url
    if url:
        own = url == entry.video.url
        jobs.append(
            Job(
                entry=entry,
                role="video",
                url=url,
                name=file_name("video", resolution=choice.resolution if choice else None),
                sha256=entry.video.sha256 if own else None,
                size=entry.video.size if own else None,
                resolution=choice.resolution if choice is not None else None,
                segments_url=choice.segments_url if choice is not None else None,
                segments_name=choice.stored_name if choice is not None else None,
                has_sound=choice is not None and choice.has_audio is True,
                protected=info is not None and info.protected,
                expected_size=choice.size if choice is not None and choice.size > 0 else None,
            )
        )
        sound = info.sound_for(choice) if info is not None and choice is not None else None
        if sound is not None:  # stored apart: the kit joins it to the picture
            jobs.append(
                Job(
                    entry=entry,
                    role="audio",
                    url=sound.url,
                    name=file_name("audio"),
                    resolution=0,
                    segments_url=sound.segments_url,
                    segments_name=sound.stored_name,
                    protected=info is not None and info.protected,
                    expected_size=sound.size if sound.size > 0 else None,
                )
            )
    else:
        problems.append("no download URL in the manifest (only an embed URL)")
    for asset in entry.assets:
        name = file_name(asset.kind)
        jobs.append(Job(entry=entry, role=asset.kind, url=asset.url, name=name))
    if info is not None and info.preview_url:
        jobs.append(
            Job(
                entry=entry,
                role="preview",
                url=info.preview_url,
                name=file_name("preview"),
                optional=True,
            )
        )
    for caption in info.captions if info is not None else ():
        role = f"{CAPTION_PREFIX}{caption.language}"
        try:
            name = file_name(role)
        except ValueError as exc:  # the instance's parser refuses it first; a file name never
            log.warning("%s (%s): captions left out: %s", entry.title, entry.id, exc)
            continue
        jobs.append(Job(entry=entry, role=role, url=caption.url, name=name, optional=True))
    return jobs, problems


def _own_file(entry: Entry, info: VideoInfo) -> VideoFile | None:
    """The instance's file for a fiche's own link: the very file, else the file of the height
    the link's name says (an old ``/download/videos/…`` link an instance no longer serves),
    else, for a fiche with only a player link, the tallest."""
    if not entry.video.url:
        return info.files[-1] if info.files else None
    same = next((f for f in info.files if f.url == entry.video.url), None)
    if same is not None:
        return same
    height = height_in_link(urlsplit(entry.video.url).path)
    return next((f for f in info.files if f.resolution == height), None)


def video_failure(entry: Entry, reason: str, *, unreachable: str | None = None) -> Outcome:
    """An entry's video failed before any file could be named: a video with no usable link,
    a video left out of the kit, one on a host given up on (``unreachable``). Named by the
    URL the manifest gives for it."""
    url = entry.video.url or entry.video.embed_url or ""
    job = Job(entry=entry, role="video", url=url, name="")
    return Outcome(job, Status.FAILED, reason=reason, unreachable=unreachable)


def _due(checked_at: str, refresh_after: float, now: float) -> bool:
    from ..catalog import parse_time

    checked = parse_time(checked_at)
    return checked is None or now - checked.timestamp() >= refresh_after


def plan(
    manifest: Manifest,
    archive: Archive | None,
    *,
    refresh_after: float | None = None,
    choices: Mapping[str, VideoFile] | None = None,
    infos: Mapping[str, VideoInfo] | None = None,
    failed: Mapping[str, str] | None = None,
    show: bool = True,
    unreachable: Mapping[str, str] | None = None,
) -> tuple[list[Job], list[Outcome]]:
    """Split the manifest's files into those to fetch and those already settled.

    A file is held when the catalog's current version of its rendition came from the same URL
    and is on disk at its recorded size: a second run fetches nothing, and a run for a kit of
    another height fetches only the renditions it lacks. A file whose manifest pins a sha256
    is held when any version of it the archive holds has those bytes. With
    ``refresh_after`` (seconds), a held file last checked longer ago than that is asked for
    again, conditionally, to learn whether upstream changed.

    A dry run plans with ``show=False``, which writes nothing (a held file's view deleted by
    a person is not made again), and with no ``archive`` when there is none yet: then every
    file is to fetch.
    """
    todo: list[Job] = []
    settled: list[Outcome] = []
    now = time.time()
    for entry in manifest.entries:
        jobs, problems = jobs_for(entry, (choices or {}).get(entry.id), (infos or {}).get(entry.id))
        refused = (failed or {}).get(entry.id)
        if refused is not None:  # its companion files may still be had
            problems = [refused]
            jobs = [job for job in jobs if job.role not in ("video", "audio")]
        host = (unreachable or {}).get(entry.id)
        settled.extend(video_failure(entry, problem, unreachable=host) for problem in problems)
        if archive is None:
            todo.extend(jobs)
            continue
        for job in jobs:
            if job.sha256 is not None:
                # Pinned: any held version with those bytes is the one, whatever upstream
                # serves now; no request is made for it (an older version stays pinned).
                pinned = archive.held_sha256(entry.id, job.role, job.sha256, job.size)
                if pinned is not None:
                    settled.append(_shown(archive, job, pinned, show))
                else:
                    todo.append(job)
                continue
            rendition = job.resolution if job.role == "video" else None
            record = archive.held(entry.id, job.role, job.url, rendition=rendition)
            if record is None or (job.size is not None and record.size != job.size):
                todo.append(job)
            elif refresh_after is not None and _due(record.checked_at, refresh_after, now):
                todo.append(dataclasses.replace(job, revalidate=record))
            else:
                settled.append(_shown(archive, job, record, show))
    return todo, settled


def _shown(archive: Archive, job: Job, record: FileRecord, show: bool = True) -> Outcome:
    """A held file, its view in the item's folder made again if it is gone (``show``); one
    behind a link fails, named (nothing is written through it)."""
    if not show:
        return Outcome(job, Status.HELD, record=record)
    try:
        archive.shown(record)
    except StorageError as exc:
        return Outcome(job, Status.FAILED, reason=exc.message)
    return Outcome(job, Status.HELD, record=record)
