"""The video each item of a kit carries: the held version its settings choose (a restored or
pinned one, the one a run chose, ``--fit``'s or ``--max-height``'s, else the current one), or
why it is left out; joined with its sound when PeerTube stores that apart; re-encoded when
nothing else fits.

With ``--fit``, the versions chosen keep room for the kit's pages and posters and for the file
system's share, counted from each video's files (:func:`archiver.choose.kit_margin`): what
the check before writing the kit asks for.

Kept apart from :mod:`.plan`, which puts each video in its item's folder with its poster,
PDFs, captions and provenance: choosing a version weighs every video against the others (a
budget, a height) and may make large files (joins, re-encodes: :mod:`.derive`), before any
companion is looked at. :class:`KitSettings`, which decides the choice, and :class:`KitPlan`,
where what is left out or warned of is noted, are defined here, below :mod:`.plan`, so that
the two modules import one way; they are importable from :mod:`.plan` as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import media
from ..archive import Archive, Derived, FileRecord
from ..choose import Rendition, best_under, kit_margin, kit_overhead, plan_fit, reencode_cap
from ..entry import Entry
from ..errors import UsageError
from ..manifest_reader import Manifest
from ..units import format_bytes
from . import derive
from .derive import Source
from .pages import folder_names
from .provenance import Making
from .site import KitItem

__all__ = ["AUDIO", "DEFAULT_SETTINGS", "DEFAULT_TITLE", "FAT32_LIMIT", "KitPlan", "KitSettings"]

DEFAULT_TITLE = "Vidéos de formation"
AUDIO = "audio"  # the archive's role of a video's sound, when PeerTube stores it apart
FAT32_LIMIT = 4 * 1024**3 - 1


@dataclass(frozen=True, kw_only=True)
class KitSettings:
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
        """With ``transcode``: the height past which a video is re-encoded, if any."""
        height = self.transcode.max_height if self.transcode else None
        return reencode_cap(height, max_height=self.max_height, budget=self.fit)


DEFAULT_SETTINGS = KitSettings()


@dataclass
class KitPlan:
    """Everything the kit will hold, before a byte of it is written."""

    items: list[KitItem] = field(default_factory=list)
    payload: dict[str, Source] = field(default_factory=dict)
    left_out: list[tuple[Entry, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reencoded: int = 0  # videos the kit carries re-encoded


@dataclass
class _Video:
    """A video on its way into the kit: the held version, and what the kit will show."""

    entry: Entry
    record: FileRecord
    facts: Derived
    held_facts: Derived  # what FFmpeg read of the held video itself, for its provenance
    source: Source  # what the kit carries
    name: str
    resolution: str | None
    # What re-encodes are made from: the held video, or it joined with its sound.
    origin: Source
    held: Source  # the held video itself, what its poster is a frame of
    reencoded: bool = False  # tried, whatever came of it
    kept_because: str | None = None  # why a re-encode did not replace it
    # For its provenance: the sound joined to it, and how the kit's file was made from it.
    sound: FileRecord | None = None
    made: tuple[Making, ...] = ()
    folder: str = ""  # its folder under videos/, named from its title (pages.folder_names)

    @property
    def label(self) -> str:
        return f"{self.entry.title} ({self.entry.id})"


def _fit_versions(
    manifest: Manifest,
    archive: Archive,
    settings: KitSettings,
    fixed: set[str],
    chosen: Mapping[str, FileRecord],
) -> dict[str, FileRecord]:
    """For ``--fit``: the held version of each video that makes the kit fit, tallest lowered
    first (the archive keeps every version: an earlier 480p beside a current 1080p). With a
    preset to re-encode with, the lowest versions when even they do not fit.

    A restored or pinned video (``fixed``) has its one version; one a run ``chosen`` (sync,
    which fetched what fits) has that one; the others choose among every version held.
    """
    assert settings.fit is not None  # noqa: S101 - only called with a budget
    reencode = settings.transcode
    records: dict[str, FileRecord] = {}
    options: dict[str, list[Rendition]] = {}
    files = 0  # the videos' files in the kit, for the file system's share (choose.kit_margin)
    for entry in manifest.entries:
        captions = len(archive.current_roles(entry.id, "caption_"))
        # Its page, the video, its poster, its PDFs, its caption tracks and their script.
        files += 3 + len(entry.assets) + captions + (1 if captions else 0)
        audio = archive.held(entry.id, AUDIO)  # carried with each picture-only version
        if entry.id in fixed:
            one = _for_kit(archive, entry, None, settings)  # pinned or restored: that, or none
            candidates = [one] if one is not None else []
        elif entry.id in chosen:
            candidates = [chosen[entry.id]]
        else:
            candidates = archive.held_versions(entry.id, "video")
        for record in candidates:
            key = f"{entry.id}/{record.version}"  # versions of two items may share bytes
            records[key] = record
            size = derive.carried_size(archive, record, audio)
            options.setdefault(entry.id, []).append(
                Rendition(height=_height(archive, record), size=size, key=key)
            )
    count = len(manifest.entries)
    try:
        fit = plan_fit(
            options,
            budget=settings.fit,
            overhead=kit_overhead(count, files=files),
            reencode=reencode.name if reencode else None,
            margin=kit_margin(count, files=files),
        )
    except UsageError as exc:
        if not fixed:
            raise
        why = "a restored or pinned video counts at the size of its version"
        undo = "'archiver restore ITEM --latest' undoes a restore"
        raise UsageError(exc.message, hint=f"{why}; {undo}") from exc
    return {item: records[choice.key] for item, choice in fit.choices}


def _height(archive: Archive, record: FileRecord) -> int:
    """A version's height: chosen from the instance, or as FFmpeg read it, else 0."""
    if record.resolution:
        return record.resolution
    facts = archive.media_facts(record.sha256)
    return facts.height if facts is not None and facts.height else 0


def _for_kit(
    archive: Archive, entry: Entry, chosen: FileRecord | None, settings: KitSettings
) -> FileRecord | None:
    """The held version of an entry's video a kit shows (:meth:`Archive.for_kit`); with
    ``--max-height`` and no version chosen by the run, the tallest held rendition within it."""
    video = entry.video
    if chosen is None and settings.max_height is not None:
        held = [r for r in archive.catalog.renditions(entry.id, "video") if archive.is_held(r)]
        ladder = [Rendition(_height(archive, r), r.size, str(r.version)) for r in held]
        best = best_under(ladder, settings.max_height)
        chosen = next((r for r in held if best is not None and str(r.version) == best.key), None)
    return archive.for_kit(
        entry.id, sha256=video.sha256, size=video.size, url=video.url, chosen=chosen
    )


def _videos(
    plan: KitPlan,
    manifest: Manifest,
    archive: Archive,
    settings: KitSettings,
    chosen: Mapping[str, FileRecord],
) -> list[_Video]:
    """The held version of each video that goes into the kit; the others are left out, named."""
    if settings.fit is not None:
        ids = {entry.id for entry in manifest.entries}
        fixed = archive.catalog.restored_items() & ids
        fixed |= {entry.id for entry in manifest.entries if entry.video.sha256 is not None}
        if settings.fit_versions or fixed:
            within = {} if settings.fit_versions else chosen
            chosen = _fit_versions(manifest, archive, settings, fixed, within)
    videos = []
    # From every fiche's title, held or not: a video arriving later renames no other folder.
    folders = folder_names(manifest.entries)
    for entry in manifest.entries:
        # A restored or pinned version; else the one chosen for this kit; else the current
        # version of the fiche's own link; else the tallest held (a capped resolution, a
        # mirror, the instance's file for a fiche with only a player link).
        record = _for_kit(archive, entry, chosen.get(entry.id), settings)
        if record is None and not entry.video.url and entry.peertube is None:
            plan.left_out.append((entry, "no download URL: nothing to show"))
            continue
        if record is None and entry.video.sha256 is not None:
            pinned = f"its pinned version (sha256 {entry.video.sha256}) is not held"
            plan.left_out.append((entry, f"{pinned} (run 'archiver download')"))
            continue
        if record is None:
            plan.left_out.append((entry, "not in the archive yet (run 'archiver download')"))
            continue
        _warn_over_fat32(plan, entry, record.size)
        try:
            known = derive.facts(archive, record)
        except derive.Unplayable as exc:
            plan.left_out.append((entry, f"not a playable MP4: {exc}"))
            continue
        held = Source.held(archive, record)
        video = _Video(
            entry=entry,
            record=record,
            facts=known,
            held_facts=known,
            source=held,
            # Joined with its sound or not: kits stay stable.
            name=_video_name(record, known, folders[entry.id]),
            resolution=f"{record.resolution}p" if record.resolution else None,
            origin=held,
            held=held,
            folder=folders[entry.id],
        )
        if not _join_sound(plan, archive, video):
            continue
        if record.size <= FAT32_LIMIT:  # joined with its sound, it may have grown past it
            _warn_over_fat32(plan, entry, video.source.size)
        videos.append(video)
    return videos


def _warn_over_fat32(plan: KitPlan, entry: Entry, size: int) -> None:
    if size > FAT32_LIMIT:
        plan.warnings.append(
            f"{entry.title} ({entry.id}): {format_bytes(size)} is over 4 GiB, more than"
            " a FAT32 key can hold in one file; format the key as exFAT or NTFS"
        )


def _join_sound(plan: KitPlan, archive: Archive, video: _Video) -> bool:
    """With PeerTube's split sound (a picture-only video and a sound file, role ``"audio"``):
    carry the two joined into one MP4. False when the video must stay out of the kit.

    A sound file missing or unplayable, or no ffmpeg to join it, leaves the video silent with
    a warning rather than out of the kit: its page still has the transcript and captions, a
    teacher can still show the picture, and once the archive holds the sound again (the next
    download fetches a missing file, and names it if it cannot) the next update makes the kit
    whole under the same name. A join that ffmpeg botches, though, is an error: the video
    stays out, named, exit 1.
    """
    entry = video.entry
    audio = archive.held(entry.id, AUDIO)
    try:
        if audio is None:
            if archive.current(entry.id, AUDIO) is not None and derive.silent(
                archive, video.record
            ):  # recorded, but not on disk at its size
                raise derive.Silent("its sound file is missing (run 'archiver download')")
            return True
        made = derive.joined(archive, video.record, audio, video.label)
    except derive.Silent as exc:
        plan.warnings.append(f"{video.label}: carried without sound: {exc}")
        return True
    except derive.Unplayable as exc:
        plan.left_out.append((entry, f"not a playable MP4: {exc}"))
        return False
    except derive.Unjoinable as exc:
        plan.left_out.append((entry, f"cannot join its picture and its sound: {exc}"))
        return False
    if made is not None:
        video.source, video.facts = made
        video.origin = video.source
        video.sound = audio
        video.made = (*video.made, Making("joined"))
    return True


def _reencode(
    plan: KitPlan,
    archive: Archive,
    videos: list[_Video],
    settings: KitSettings,
    count: int,
) -> None:
    """Re-encode with ``preset``, as a last resort, the videos nothing else makes fit.

    First each video taller than :attr:`KitSettings.reencode_cap`; then, with a budget,
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


def _shrink(plan: KitPlan, archive: Archive, video: _Video, preset: media.Preset) -> None:
    """Put ``video`` re-encoded with ``preset`` in the kit, when that makes it smaller."""
    video.reencoded = True  # tried: never twice, whatever the outcome
    try:
        made = derive.transcoded(archive, video.origin, video.facts, preset, video.label)
    except media.MediaError as exc:
        video.kept_because = exc.reason
    else:
        if made.size >= video.source.size:
            video.kept_because = (
                f"re-encoded to {preset.name} it is no smaller ({format_bytes(made.size)})"
            )
    if video.kept_because:
        plan.warnings.append(f"{video.label}: kept as it was: {video.kept_because}")
        return
    video.source = made
    video.name = f"{video.folder}-{preset.name}.mp4"
    video.resolution = preset.name
    video.made = (*video.made, Making("reencoded", preset.name))
    plan.reencoded += 1


def _video_name(record: FileRecord, known: Derived, stem: str) -> str:
    """``Differencier-ses-pratiques-720p.mp4``: its folder's name (from its title), so that a
    copy in VLC or a downloads folder says which video it is, and its height as the instance
    gave it, else as FFmpeg read it."""
    height = record.resolution or known.height
    return f"{stem}-{height}p.mp4" if height else f"{stem}.mp4"
