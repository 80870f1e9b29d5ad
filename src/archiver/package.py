"""Build or update an offline kit: a BagIt bag holding a static site and the videos.

Kit layout::

    index.html                 the one file to double-click; opens data/index.html
    LISEZMOI.txt               how to open the kit and how to check a copy
    bagit.txt  bag-info.txt  manifest-sha256.txt  tagmanifest-sha256.txt
    data/index.html            the catalog (search, filter by area)
    data/search-index.js       the search index, loaded with <script src>
    data/assets/               style.css, app.js
    data/videos/<id>/          index.html, the MP4, poster.jpg, companion PDFs

Updating a kit (a USB key) writes only new or changed files (the catalog's sha256 against the
bag's manifest), under temporary names then renamed, removes files no longer listed, and writes
the bag manifests last: an update interrupted midway is caught by ``archiver verify``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__, media
from .archive import Archive, Derived, FileRecord
from .bag import (
    BAG_INFO,
    BAGIT_DECLARATION,
    BAGIT_TXT,
    MANIFEST,
    PAYLOAD,
    TAGMANIFEST,
    format_manifest,
    payload_files,
    read_manifest,
)
from .bag import (
    file_sha256 as _file_sha256,
)
from .entry import Entry
from .errors import KitError, UsageError
from .files import atomic_write_bytes, fsync_dir
from .manifest import Manifest
from .meter import ByteMeter
from .names import MAX_NAME_LENGTH
from .peertube import VideoFile, kit_overhead, plan_fit
from .site import (
    ASSET_LABELS,
    KitAsset,
    KitCaptions,
    KitItem,
    parse_vtt,
    render_root,
    render_site,
)
from .units import format_bytes

__all__ = [
    "DEFAULT_TITLE",
    "KitError",
    "PackageReport",
    "PackageSettings",
    "build_kit",
    "package",
]

log = logging.getLogger(__name__)

DEFAULT_TITLE = "Vidéos de formation"
FAT32_LIMIT = 4 * 1024**3 - 1
# Left free on the key beyond what the kit needs: file system metadata, a little slack.
SPACE_MARGIN = 8 * 1024 * 1024
COPY_BLOCK = 4 * 1024 * 1024
POSTER_NAME = "poster.jpg"
# Caption languages as a French page names them; others keep their code.
LANGUAGES = {
    "fr": "Français",
    "en": "Anglais",
    "de": "Allemand",
    "es": "Espagnol",
    "it": "Italien",
    "pt": "Portugais",
    "ar": "Arabe",
    "oc": "Occitan",
    "br": "Breton",
    "eu": "Basque",
    "ca": "Catalan",
}
_FORBIDDEN = set('<>:"/\\|?*') | {chr(c) for c in range(32)}


class _Unplayable(Exception):
    """FFmpeg finds no playable video in a held file: it stays out of the kit."""


@dataclass(frozen=True, kw_only=True)
class PackageSettings:
    """How to build the kit."""

    title: str = DEFAULT_TITLE
    copy: bool = False  # copy media even when a hard link to the archive would do
    # Re-encoding, a last resort: for a video taller than ``max_height`` (the preset's own
    # height when not given and there is no budget), and for a budget the videos held exceed.
    transcode: media.Preset | None = None
    max_height: int | None = None
    fit: int | None = None  # bytes the kit must fit in
    # With ``fit``: choose among every version held (package), or take the current ones
    # (sync, which fitted the kit by choosing what to download).
    fit_versions: bool = True

    @property
    def reencode_cap(self) -> int | None:
        """With ``transcode``: the height past which a video is re-encoded, if any.

        ``max_height`` when given; else, without a budget, the preset's own height (with a
        budget, only the budget calls for re-encoding).
        """
        if self.transcode is None:
            return None
        if self.max_height is not None or self.fit is not None:
            return self.max_height
        return self.transcode.max_height


@dataclass(frozen=True)
class PackageReport:
    """What an update of a kit did."""

    kit: Path
    items: int
    left_out: tuple[tuple[Entry, str], ...]
    written: int
    bytes_written: int
    linked: int
    removed: int
    unchanged: int
    warnings: tuple[str, ...]
    seconds: float
    changed: tuple[str, ...] = ()  # payload paths written or removed by this update
    reencoded: int = 0  # videos carried re-encoded (--transcode)


@dataclass(frozen=True)
class _Source:
    """Where a payload file's bytes come from: a file of the archive, or bytes in memory."""

    sha256: str
    size: int
    path: Path | None = None
    data: bytes | None = None

    @classmethod
    def of_bytes(cls, data: bytes) -> _Source:
        return cls(sha256=hashlib.sha256(data).hexdigest(), size=len(data), data=data)


@dataclass
class _Plan:
    items: list[KitItem] = field(default_factory=list)
    payload: dict[str, _Source] = field(default_factory=dict)
    left_out: list[tuple[Entry, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reencoded: int = 0  # videos the kit carries re-encoded


def package(
    manifest: Manifest,
    archive_root: Path,
    kit: Path,
    *,
    settings: PackageSettings = PackageSettings(),
    progress: ByteMeter | None = None,
) -> PackageReport:
    """Build the kit at ``kit`` from what the archive holds of ``manifest``, or update it."""
    if not archive_root.is_dir():
        raise KitError(archive_root, "no archive here", hint="run 'archiver download' first")
    with Archive(archive_root) as archive, archive.locked():
        return build_kit(manifest, archive, kit, settings=settings, progress=progress)


def build_kit(
    manifest: Manifest,
    archive: Archive,
    kit: Path,
    *,
    settings: PackageSettings = PackageSettings(),
    progress: ByteMeter | None = None,
) -> PackageReport:
    """:func:`package`, for a caller that already holds the archive's lock (sync)."""
    start = time.monotonic()
    plan = _plan(manifest, archive, settings)
    pages = render_site(plan.items, collection_title=settings.title)
    for name, data in pages.items():
        plan.payload[f"{PAYLOAD}/{name}"] = _Source.of_bytes(data)
    report = _apply(plan, kit, archive.root, settings, progress or ByteMeter(), start)
    for warning in report.warnings:
        log.warning("%s", warning)
    return report


def _fit_versions(
    manifest: Manifest, archive: Archive, budget: int, reencode: media.Preset | None
) -> dict[str, FileRecord]:
    """For ``--fit``: the held version of each video that makes the kit fit, tallest lowered
    first (the archive keeps every version: an earlier 480p beside a current 1080p). With a
    preset to re-encode with, the lowest versions when even they do not fit."""
    records: dict[str, FileRecord] = {}
    options: dict[str, list[VideoFile]] = {}
    for entry in manifest.entries:
        for record in archive.held_versions(entry.id, "video"):
            records[record.path] = record
            options.setdefault(entry.id, []).append(
                VideoFile(resolution=_height(archive, record), size=record.size, url=record.path)
            )
    overhead = kit_overhead(len(manifest.entries))
    plan = plan_fit(
        options, budget=budget, overhead=overhead, reencode=reencode.name if reencode else None
    )
    return {item: records[choice.url] for item, choice in plan.choices}


def _height(archive: Archive, record: FileRecord) -> int:
    """A version's height: chosen from the instance, or as FFmpeg read it, else 0."""
    if record.resolution:
        return record.resolution
    facts = archive.media_facts(record.sha256)
    return facts.height if facts is not None and facts.height else 0


@dataclass
class _Video:
    """A video on its way into the kit: the held version, and what the kit will show."""

    entry: Entry
    record: FileRecord
    facts: Derived
    source: _Source
    name: str
    resolution: str | None
    reencoded: bool = False  # tried, whatever came of it
    kept_because: str | None = None  # why a re-encode did not replace it


def _plan(manifest: Manifest, archive: Archive, settings: PackageSettings) -> _Plan:
    plan = _Plan()
    videos = _videos(plan, manifest, archive, settings)
    _reencode(plan, archive, videos, settings, len(manifest.entries))
    ffmpeg_missing = False
    for video in videos:
        entry = video.entry
        folder = f"{PAYLOAD}/videos/{entry.id}"
        preview = archive.held(entry.id, "preview")
        if preview is not None:  # the instance's own preview image beats a frame of ours
            poster: _Source | None = _held(archive, preview)
        else:
            poster, problem = _frame(archive, video.record, video.facts)
            if isinstance(problem, media.MediaUnavailable):
                ffmpeg_missing = True  # said once, after the loop
            elif problem is not None:
                plan.warnings.append(f"{entry.title} ({entry.id}): no poster: {problem.reason}")
        if poster is not None:
            plan.payload[f"{folder}/{POSTER_NAME}"] = poster
        plan.payload[f"{folder}/{video.name}"] = video.source
        assets = []
        for asset in entry.assets:
            held = archive.held(entry.id, asset.kind)
            if held is None:
                plan.warnings.append(f"{entry.title} ({entry.id}): {asset.kind} not in the archive")
                continue
            name = _carry(plan, archive, folder, held)
            assets.append(KitAsset(ASSET_LABELS.get(asset.kind, asset.kind), name))
        plan.items.append(
            KitItem(
                entry=entry,
                video_name=video.name,
                video_size=format_bytes(video.source.size).replace(".", ","),
                poster_name=POSTER_NAME if poster is not None else None,
                duration=_duration(video.facts.duration) if video.facts.duration else None,
                resolution=video.resolution,
                captions=_captions(plan, archive, entry, folder),
                assets=tuple(assets),
            )
        )
    if ffmpeg_missing:
        plan.warnings.append("ffmpeg is not installed: the kit has no poster frames")
    return plan


def _videos(
    plan: _Plan, manifest: Manifest, archive: Archive, settings: PackageSettings
) -> list[_Video]:
    """The held version of each video that goes into the kit; the others are left out, named."""
    chosen = {}
    if settings.fit is not None and settings.fit_versions:
        chosen = _fit_versions(manifest, archive, settings.fit, settings.transcode)
    videos = []
    for entry in manifest.entries:
        if not entry.video.url:
            plan.left_out.append((entry, "no download URL: nothing to show"))
            continue
        # The current version, whichever URL it came from: a capped resolution, a mirror.
        record = chosen.get(entry.id) or archive.held(entry.id, "video")
        if record is None:
            plan.left_out.append((entry, "not in the archive yet (run 'archiver download')"))
            continue
        if record.size > FAT32_LIMIT:
            plan.warnings.append(
                f"{entry.title} ({entry.id}): {format_bytes(record.size)} is over 4 GiB, more than"
                " a FAT32 key can hold in one file; format the key as exFAT or NTFS"
            )
        try:
            facts = _facts(archive, record)
        except _Unplayable as exc:
            plan.left_out.append((entry, f"not a playable MP4: {exc}"))
            continue
        resolution = f"{record.resolution}p" if record.resolution else None
        videos.append(
            _Video(entry, record, facts, _held(archive, record), _leaf(record), resolution)
        )
    return videos


def _reencode(
    plan: _Plan,
    archive: Archive,
    videos: list[_Video],
    settings: PackageSettings,
    count: int,
) -> None:
    """Re-encode with ``preset``, as a last resort, the videos nothing else makes fit.

    First each video taller than :attr:`PackageSettings.reencode_cap`; then, with a budget,
    while the kit is over it, the largest video not yet re-encoded (its re-encoded size is
    known only once made, so one at a time). A budget still exceeded when none is left: exit 2.
    """
    preset, cap = settings.transcode, settings.reencode_cap
    if preset is None:
        return
    if cap is not None:
        for video in videos:
            if (video.facts.height or 0) > cap:
                _shrink(plan, archive, video, preset)
    if settings.fit is None:
        return
    overhead = kit_overhead(count)
    while (total := overhead + sum(v.source.size for v in videos)) > settings.fit:
        left = [v for v in videos if not v.reencoded]
        if not left:
            kept = [v for v in videos if v.kept_because]
            unmade = f" ({len(kept)} kept as they were: {kept[0].kept_because})" if kept else ""
            raise UsageError(
                f"the kit cannot fit in {format_bytes(settings.fit)}: even re-encoded to"
                f" {preset.name} it needs {format_bytes(total)}{unmade}",
                hint="use a larger key, fewer videos, or a smaller preset",
            )
        _shrink(plan, archive, max(left, key=lambda v: v.source.size), preset)


def _shrink(plan: _Plan, archive: Archive, video: _Video, preset: media.Preset) -> None:
    """Put ``video`` re-encoded with ``preset`` in the kit, when that makes it smaller."""
    video.reencoded = True  # tried: never twice, whatever the outcome
    entry = video.entry
    try:
        made = _transcoded(archive, video, preset)
    except media.MediaError as exc:
        video.kept_because = exc.reason
    else:
        if made.size >= video.source.size:
            video.kept_because = (
                f"re-encoded to {preset.name} it is no smaller ({format_bytes(made.size)})"
            )
    if video.kept_because:
        plan.warnings.append(f"{entry.title} ({entry.id}): kept as it was: {video.kept_because}")
        return
    video.source = made
    video.name = f"{Path(video.name).stem}-{preset.name}.mp4"
    video.resolution = preset.name
    plan.reencoded += 1


def _carry(plan: _Plan, archive: Archive, folder: str, record: FileRecord) -> str:
    """Put a held file in the video's folder of the kit; its name there."""
    plan.payload[f"{folder}/{_leaf(record)}"] = _held(archive, record)
    return _leaf(record)


def _captions(plan: _Plan, archive: Archive, entry: Entry, folder: str) -> tuple[KitCaptions, ...]:
    """The video's held caption files, carried into the kit and read into cues."""
    captions = []
    for track in archive.current_roles(entry.id, "caption_"):
        language = track.role.removeprefix("caption_")
        try:
            text = (archive.root / track.path).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            plan.warnings.append(f"{entry.title} ({entry.id}): captions {language}: {exc}")
            continue
        captions.append(
            KitCaptions(
                language=language,
                label=LANGUAGES.get(language, language),
                href=_carry(plan, archive, folder, track),
                cues=parse_vtt(text),
            )
        )
    return tuple(captions)


def _leaf(record: FileRecord) -> str:
    return record.path.rsplit("/", 1)[-1]


def _held(archive: Archive, record: FileRecord) -> _Source:
    return _Source(sha256=record.sha256, size=record.size, path=archive.root / record.path)


def _duration(seconds: float) -> str:
    total = round(seconds)
    minutes, secs = divmod(total, 60)
    if minutes == 0:
        return f"{secs} s"
    return f"{minutes} min {secs:02d} s"


def _facts(archive: Archive, record: FileRecord) -> Derived:
    """What FFmpeg read of the video: recorded when it was downloaded, else read now, once.

    Raises :class:`_Unplayable` when FFmpeg finds no playable video in the file (one held
    from before downloads were checked).
    """
    facts = archive.media_facts(record.sha256)
    if facts is not None:
        return facts
    try:
        info = media.confirm_playable(archive.root / record.path)
    except media.MediaError as exc:
        raise _Unplayable(exc.reason) from exc
    return archive.record_media_facts(record.sha256, info.duration, info.width, info.height)


def _frame(
    archive: Archive, record: FileRecord, facts: Derived
) -> tuple[_Source | None, media.MediaError | None]:
    """A frame of the video as its poster: from the cache or made once with ffmpeg."""
    cached = archive.derived(record.sha256, "poster", media.POSTER_VERSION)
    if cached is None:
        target = archive.derived_path(record.sha256, f"poster-v{media.POSTER_VERSION}.jpg")
        info = media.MediaInfo(facts.duration, facts.width, facts.height)
        try:
            media.make_poster(archive.root / record.path, target, info)
        except media.MediaError as exc:
            return None, exc
        cached = _record_made(archive, record, "poster", media.POSTER_VERSION, target, info)
    return _derived_source(archive, cached), None


def _transcoded(archive: Archive, video: _Video, preset: media.Preset) -> _Source:
    """The video re-encoded with ``preset``: made once, kept in the archive by sha256."""
    kind = f"transcode-{preset.name}"
    record, facts = video.record, video.facts
    cached = archive.derived(record.sha256, kind, preset.version)
    if cached is None or cached.path is None:
        log.info("%s (%s): re-encoding to %s", video.entry.title, video.entry.id, preset.name)
        source = archive.root / record.path
        target = archive.derived_path(record.sha256, f"{kind}-v{preset.version}.mp4")
        info = media.MediaInfo(facts.duration, facts.width, facts.height)
        media.transcode(source, target, info, preset)
        cached = _record_made(archive, record, kind, preset.version, target, media.probe(target))
    made = _derived_source(archive, cached)
    if made is None:
        raise media.MediaError(archive.root / record.path, f"no {kind} was recorded")
    return made


def _record_made(
    archive: Archive,
    record: FileRecord,
    kind: str,
    version: int,
    made: Path,
    info: media.MediaInfo,
) -> Derived:
    """Note in the catalog what was made from ``record``'s bytes, so it is never made again."""
    derived = Derived(
        sha256=record.sha256,
        kind=kind,
        version=version,
        path=made.relative_to(archive.root).as_posix(),
        file_sha256=_file_sha256(made),
        file_size=made.stat().st_size,
        duration=info.duration,
        width=info.width,
        height=info.height,
    )
    archive.record_derived(derived)
    return derived


def _derived_source(archive: Archive, derived: Derived) -> _Source | None:
    """The file a cached derivation made (a poster, a re-encode), as a payload source."""
    if derived.path is None or derived.file_sha256 is None or derived.file_size is None:
        return None
    return _Source(
        sha256=derived.file_sha256, size=derived.file_size, path=archive.root / derived.path
    )


# -- writing the kit ---------------------------------------------------------------------------


def _check_name(path: str) -> None:
    for part in path.split("/"):
        if (
            not part
            or len(part) > MAX_NAME_LENGTH
            or not part.isascii()
            or part.startswith(".")
            or part.endswith((" ", "."))
            or _FORBIDDEN.intersection(part)
        ):
            raise KitError(path, "not a name every USB key accepts")  # a bug if ever raised


def _apply(
    plan: _Plan,
    kit: Path,
    archive_root: Path,
    settings: PackageSettings,
    progress: ByteMeter,
    start: float,
) -> PackageReport:
    for path in plan.payload:
        _check_name(path)
    try:
        kit.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KitError(kit, f"cannot create the kit: {exc.strerror or exc}") from exc
    old = read_manifest(kit / MANIFEST) or {}
    todo = [
        (path, source)
        for path, source in sorted(plan.payload.items())
        if not _unchanged(kit / path, source, old.get(path))
    ]
    stale = [path for path in payload_files(kit) if path not in plan.payload]
    link = not settings.copy and _same_filesystem(archive_root, kit)
    needed = sum(s.size for _, s in todo if not (link and s.path is not None))
    _check_space(kit, needed)

    progress.begin(needed)
    written = linked = bytes_written = 0
    try:
        for path, source in todo:
            if _place(kit / path, source, link=link, progress=progress):
                linked += 1
            else:
                bytes_written += source.size
            written += 1
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise KitError(kit, "the key is full; the kit is incomplete") from exc
        raise KitError(kit, f"cannot write the kit: {exc.strerror or exc}") from exc
    finally:
        progress.end()
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            (kit / path).unlink()
    _remove_empty_folders(kit / PAYLOAD)

    manifest_bytes = format_manifest({path: s.sha256 for path, s in plan.payload.items()})
    if todo or stale or not _bag_complete(kit, manifest_bytes):
        _write_bag(kit, plan, manifest_bytes, settings.title)
    return PackageReport(
        kit=kit,
        items=len(plan.items),
        left_out=tuple(plan.left_out),
        written=written,
        bytes_written=bytes_written,
        linked=linked,
        removed=len(stale),
        unchanged=len(plan.payload) - len(todo),
        warnings=tuple(plan.warnings),
        seconds=time.monotonic() - start,
        changed=tuple(sorted([path for path, _ in todo] + stale)),
        reencoded=plan.reencoded,
    )


def _unchanged(target: Path, source: _Source, recorded: str | None) -> bool:
    if recorded != source.sha256:
        return False
    try:
        return target.stat().st_size == source.size
    except OSError:
        return False


def _same_filesystem(archive_root: Path, kit: Path) -> bool:
    try:
        return os.stat(archive_root).st_dev == os.stat(kit).st_dev
    except OSError:
        return False


def _check_space(kit: Path, needed: int) -> None:
    free = shutil.disk_usage(kit).free
    if needed + SPACE_MARGIN > free:
        raise KitError(
            kit,
            f"the kit does not fit: it needs {format_bytes(needed)} more, "
            f"{format_bytes(free)} is free",
            hint="use a larger key, or fewer or smaller videos",
        )


def _place(target: Path, source: _Source, *, link: bool, progress: ByteMeter) -> bool:
    """Put one file in place under a temporary name, then rename; True when hard-linked."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.archiver-tmp")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    linked = False
    try:
        if source.data is not None:
            atomic_write_bytes(temp, source.data)
            progress.advance(source.size)
        else:
            assert source.path is not None  # noqa: S101 - one of the two is always set
            if link:
                try:
                    os.link(source.path, temp)
                    linked = True
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise
            if not linked:
                _copy(source.path, temp, progress)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(target.parent)
    return linked


def _copy(source: Path, target: Path, progress: ByteMeter) -> None:
    with source.open("rb") as reader, target.open("wb") as writer:
        while block := reader.read(COPY_BLOCK):
            writer.write(block)
            progress.advance(len(block))
        writer.flush()
        os.fsync(writer.fileno())


def _remove_empty_folders(root: Path) -> None:
    for folder, dirs, files in os.walk(root, topdown=False):
        if not dirs and not files and Path(folder) != root:
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def _bag_complete(kit: Path, manifest_bytes: bytes) -> bool:
    try:
        return (kit / MANIFEST).read_bytes() == manifest_bytes and (kit / TAGMANIFEST).is_file()
    except OSError:
        return False


def _write_bag(kit: Path, plan: _Plan, manifest_bytes: bytes, title: str) -> None:
    """The bag's tag files, payload manifest then tag manifest last."""
    oxum_bytes = sum(s.size for s in plan.payload.values())
    organisations = sorted(
        {name for item in plan.items for c in item.entry.credits if c.role == "Production"
         for name in c.names}
    ) or ["archiver"]  # fmt: skip
    info = (
        f"Bagging-Date: {dt.date.today().isoformat()}\n"
        f"Bag-Software-Agent: archiver {__version__}\n"
        f"Payload-Oxum: {oxum_bytes}.{len(plan.payload)}\n"
        f"Bag-Size: {format_bytes(oxum_bytes)}\n"
        f"Source-Organization: {', '.join(organisations)}\n"
        f"External-Description: {title}: kit hors ligne de {len(plan.items)} vidéo(s), "
        "à ouvrir par index.html, sans connexion.\n"
    ).encode()
    tag_files = {
        BAGIT_TXT: BAGIT_DECLARATION,
        BAG_INFO: info,
        "index.html": render_root(collection_title=title, count=len(plan.items)),
        "LISEZMOI.txt": _readme(title, len(plan.items)),
        MANIFEST: manifest_bytes,  # the manifests last: until then, verify sees a mismatch
    }
    for name, data in tag_files.items():
        _write_if_changed(kit / name, data)
    tags = {name: hashlib.sha256(data).hexdigest() for name, data in tag_files.items()}
    _write_if_changed(kit / TAGMANIFEST, format_manifest(tags))


def _write_if_changed(path: Path, data: bytes) -> None:
    try:
        if path.read_bytes() == data:
            return
    except OSError:
        pass
    atomic_write_bytes(path, data)


def _readme(title: str, count: int) -> bytes:
    return f"""{title}
{"=" * len(title)}

Ce dossier contient {count} vidéo(s) de formation, consultables sans connexion à Internet.

OUVRIR
  Double-cliquez sur le fichier index.html de ce dossier : le catalogue s'ouvre dans votre
  navigateur (Firefox, Chrome, Edge, Safari). Cliquez sur une vidéo pour la regarder, lire sa
  transcription, ses crédits et sa licence. Aucune connexion n'est nécessaire.

VÉRIFIER UNE COPIE
  Ce dossier est un « sac » BagIt : le fichier manifest-sha256.txt donne l'empreinte SHA-256
  de chaque fichier. Pour vérifier qu'une copie (sur une clé USB, un serveur) est complète et
  intacte, depuis ce dossier :
      archiver verify .
  ou, sans archiver, sous Linux ou macOS :
      sha256sum -c manifest-sha256.txt
  Chaque fichier doit être signalé « OK » (ou « Réussi »).

LICENCES
  Chaque vidéo reste sous la licence indiquée sur sa page : respectez-la en la partageant.
""".encode()
