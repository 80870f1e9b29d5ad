"""What goes into a kit: for each video of the manifest, the held version it shows (or why it
is left out), joined with its sound when PeerTube stores that apart, re-encoded when nothing
else fits, with its poster, captions and companion files.

Planning reads the archive and may make derived files (:mod:`.derive`); it writes nothing in
the kit. The result is a :class:`KitPlan`: every file of the kit's payload by its path, with
where its bytes come from.

A video's folder and file are named from its title (:func:`.pages.folder_names`, FAT32-safe
ASCII): ``data/videos/Differencier-ses-pratiques/Differencier-ses-pratiques-720p.mp4``. The
other files' names come from their role, never from a URL or the name the archive stores them
under: ``poster.jpg``, ``fiche.pdf``, ``transcription.pdf``, ``captions-fr.vtt``. A name's
extension comes from what the file's first bytes are, checked here: a companion that is not a
PDF, captions that are not WebVTT stay out of the kit, named in a warning. So two files of one
item never share a name, and none takes the name of the page (``index.html``) or of the
captions script (``captions.js``).

With ``--fit``, the versions chosen keep room for the kit's pages and posters and for the file
system's share, counted from each video's files (:func:`archiver.choose.kit_margin`): what
the check before writing the kit asks for.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import media, sniff
from ..archive import Archive, Derived, FileRecord
from ..choose import Rendition, best_under, kit_margin, kit_overhead, plan_fit, reencode_cap
from ..entry import Entry
from ..errors import UsageError
from ..manifest_reader import Manifest
from ..units import format_bytes
from . import derive
from .bag import PAYLOAD
from .derive import Source
from .pages import folder_names
from .provenance import KitFile, KitProvenance, Making
from .site import ASSET_LABELS, KitAsset, KitCaptions, KitItem, parse_vtt

__all__ = ["DEFAULT_SETTINGS", "DEFAULT_TITLE", "KitPlan", "KitSettings", "plan_kit"]

log = logging.getLogger(__name__)

DEFAULT_TITLE = "Vidéos de formation"
AUDIO = "audio"  # the archive's role of a video's sound, when PeerTube stores it apart
FAT32_LIMIT = 4 * 1024**3 - 1
POSTER_STEM = "poster"
POSTER_NAME = "poster.jpg"  # a frame ffmpeg makes is a JPEG
# A companion's name in the kit, by its role; its extension is that of a PDF, once checked.
ASSET_NAMES = {"fiche_pdf": "fiche", "transcript_pdf": "transcription"}
_LANGUAGE = re.compile(r"^[a-z0-9]{1,8}(-[a-z0-9]{1,8}){0,3}$")
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


def plan_kit(
    manifest: Manifest,
    archive: Archive,
    settings: KitSettings,
    chosen: Mapping[str, FileRecord] | None = None,
) -> KitPlan:
    """Every video's files in the kit, and the videos left out with their reason.

    ``chosen``: the version of each video a run chose for this kit (sync, which fetched the
    rendition ``--fit`` or ``--max-height`` asked for); else :meth:`Archive.for_kit` says.
    """
    return _plan(manifest, archive, settings, chosen or {})


def _plan(
    manifest: Manifest, archive: Archive, settings: KitSettings, chosen: Mapping[str, FileRecord]
) -> KitPlan:
    plan = KitPlan()
    videos = _videos(plan, manifest, archive, settings, chosen)
    _reencode(plan, archive, videos, settings, len(manifest.entries))
    ffmpeg_missing = False
    for video in videos:
        entry = video.entry
        folder = f"{PAYLOAD}/videos/{video.folder}"
        carried: list[tuple[FileRecord, str]] = []  # held files beside the video, for provenance
        preview = archive.held(entry.id, "preview")
        poster: Source | None = None
        poster_name = POSTER_NAME
        suffix = _image_suffix(plan, archive, video, preview) if preview is not None else None
        if preview is not None and suffix is not None:
            # The instance's own preview image beats a frame of ours.
            poster, poster_name = Source.held(archive, preview), f"{POSTER_STEM}{suffix}"
            carried.append((preview, f"{folder}/{poster_name}"))
        else:
            try:
                # From the held video: the same picture as its joined copy, made once.
                poster = derive.poster(archive, video.held, video.facts)
            except media.MediaUnavailable:
                ffmpeg_missing = True  # said once, after the loop
            except media.MediaError as exc:
                plan.warnings.append(f"{video.label}: no poster: {exc.reason}")
        if poster is not None:
            plan.payload[f"{folder}/{poster_name}"] = poster
        plan.payload[f"{folder}/{video.name}"] = video.source
        assets = []
        for asset in entry.assets:
            held = archive.held(entry.id, asset.kind)
            if held is None:
                plan.warnings.append(f"{video.label}: {asset.kind} not in the archive")
                continue
            if not _is_pdf(plan, archive, video.label, held):
                continue
            name = f"{ASSET_NAMES.get(asset.kind, asset.kind.replace('_', '-'))}.pdf"
            plan.payload[f"{folder}/{name}"] = Source.held(archive, held)
            carried.append((held, f"{folder}/{name}"))
            assets.append(KitAsset(ASSET_LABELS.get(asset.kind, asset.kind), name))
        captions = _captions(plan, archive, entry, folder, carried)
        plan.items.append(
            KitItem(
                entry=entry,
                video_name=video.name,
                video_size=video.source.size,
                poster_name=poster_name if poster is not None else None,
                duration=video.facts.duration or None,
                resolution=video.resolution,
                captions=captions,
                assets=tuple(assets),
                provenance=_provenance(archive, video, f"{folder}/{video.name}", carried),
                folder_name=video.folder,
            )
        )
    if ffmpeg_missing:
        plan.warnings.append("ffmpeg is not installed: the kit has no poster frames")
    return plan


def _provenance(
    archive: Archive, video: _Video, path: str, carried: list[tuple[FileRecord, str]]
) -> KitProvenance:
    """Where ``video`` (carried at ``path``) and the held files beside it came from."""
    facts = video.held_facts  # the archived bytes', not the kit's
    made = KitFile(path=path, sha256=video.source.sha256, size=video.source.size, made=video.made)
    return KitProvenance.of(
        video.entry,
        video.record,
        made,
        width=facts.width,
        height=facts.height,
        sound=video.sound,
        companions=sorted(carried, key=lambda held: held[1]),
    )


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


def _captions(
    plan: KitPlan,
    archive: Archive,
    entry: Entry,
    folder: str,
    carried: list[tuple[FileRecord, str]],
) -> tuple[KitCaptions, ...]:
    """The video's held caption files, carried into the kit (each added to ``carried`` with
    its path) and read into cues."""
    captions = []
    label = f"{entry.title} ({entry.id})"
    for track in archive.current_roles(entry.id, "caption_"):
        language = track.role.removeprefix("caption_").lower()
        if not _LANGUAGE.match(language):
            plan.warnings.append(f"{label}: captions {language!r}: not a language code; left out")
            continue
        path = archive.root / track.path
        try:
            sniff.check(path, sniff.CAPTIONS)
            text = path.read_text(encoding="utf-8")
        except (sniff.Mismatch, OSError, UnicodeDecodeError) as exc:
            plan.warnings.append(f"{label}: captions {language}: {_why(exc)}; left out")
            continue
        name = f"captions-{language}.vtt"
        if f"{folder}/{name}" in plan.payload:
            continue  # the same language under another spelling: one file a language
        plan.payload[f"{folder}/{name}"] = Source.held(archive, track)
        carried.append((track, f"{folder}/{name}"))
        captions.append(
            KitCaptions(
                language=language,
                label=LANGUAGES.get(language, language),
                href=name,
                cues=parse_vtt(text.removeprefix("\ufeff")),
            )
        )
    return tuple(captions)


def _video_name(record: FileRecord, known: Derived, stem: str) -> str:
    """``Differencier-ses-pratiques-720p.mp4``: its folder's name (from its title), so that a
    copy in VLC or a downloads folder says which video it is, and its height as the instance
    gave it, else as FFmpeg read it."""
    height = record.resolution or known.height
    return f"{stem}-{height}p.mp4" if height else f"{stem}.mp4"


def _is_pdf(plan: KitPlan, archive: Archive, label: str, record: FileRecord) -> bool:
    """Whether a held companion is a PDF (:func:`archiver.sniff.check`: an archive of an
    earlier release kept files unchecked); if not, it stays out of the kit, with a warning:
    a login page archived as "the PDF" is not shipped."""
    try:
        sniff.check(archive.root / record.path, sniff.PDF)
    except sniff.Mismatch as exc:
        plan.warnings.append(f"{label}: {record.role}: {exc.reason}; left out of the kit")
        return False
    return True


def _image_suffix(plan: KitPlan, archive: Archive, video: _Video, record: FileRecord) -> str | None:
    """The extension of a held preview image by its signature (JPEG, PNG, WebP: what the
    fetcher keeps; decoded when it was fetched); if it is none of them, ``None`` with a
    warning, and the poster is a frame of the video."""
    try:
        return sniff.check(archive.root / record.path, sniff.IMAGE, decode=False)
    except sniff.Mismatch as exc:
        plan.warnings.append(f"{video.label}: preview: {exc.reason}; a frame of the video is shown")
        return None


def _why(exc: Exception) -> str:
    return exc.reason if isinstance(exc, sniff.Mismatch) else str(exc)
