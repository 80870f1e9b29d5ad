"""What goes into a kit: for each video of the manifest, its item's folder, with the video
:mod:`.videos` chose for it (or why it is left out), its poster, captions and companion files,
and where each of them came from.

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

Which held version of each video the kit carries (``--fit``, ``--max-height``, a restored or
pinned one), joined with its sound, re-encoded when nothing else fits, is :mod:`.videos`, with
:class:`KitSettings` and :class:`KitPlan`; their names are importable from here as they were.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from .. import media, sniff
from ..archive import Archive, FileRecord
from ..entry import Entry
from ..manifest_reader import Manifest
from . import derive
from .bag import PAYLOAD
from .derive import Source
from .provenance import KitFile, KitProvenance
from .site import ASSET_LABELS, KitAsset, KitCaptions, KitItem, parse_vtt
from .videos import (
    DEFAULT_SETTINGS,
    DEFAULT_TITLE,
    KitPlan,
    KitSettings,
    _reencode,
    _Video,
    _videos,
)

__all__ = ["DEFAULT_SETTINGS", "DEFAULT_TITLE", "KitPlan", "KitSettings", "plan_kit"]

log = logging.getLogger(__name__)

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
