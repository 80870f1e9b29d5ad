"""Writing a kit: only what changed, only what is archiver's, staged, then renamed in one go.

Before a byte is written, every path the kit will hold is checked: a link, a device, a pipe or
a folder where a file goes (or a link or a file where a folder goes) is refused, naming it, and
so is a file archiver did not write (:mod:`.ownership`) unless it already holds the very bytes
planned. Files no longer planned are removed only when archiver's list names them; anything
else is left, with a warning.

A payload file the kit's manifest lists with the planned sha256, at its size, is not read:
unless the archive's note (:mod:`.identity`) says it moved on disk since the last update, then
it is hashed and written again if its bytes differ. With ``--copy``, a file that is the
archive's own (hard-linked by an update without it) is written again as a copy. A tag file is
written when the kit's tag manifest lists other bytes than this release makes (but
``bag-info.txt``, which dates the bag's last change).

An update then writes every new or changed file, and every tag file that changes, in its
staging folder (:data:`~.survey.STAGING`, at the kit's root, outside the payload: nothing
there is a file of the bag); only when all of them are written does it note in a journal
(:data:`~.bag.JOURNAL`) the paths it is about to place, and rename them into place, payload
first, then the tag files, the bag's manifests last, and the journal goes. So a full key, a
removed key or a killed process while files are written leaves the previous kit as it was,
valid to ``archiver verify`` and to any BagIt validator (the staging folder is removed, or
ignored and removed by the next run); and an update interrupted while renaming leaves manifests
that disagree with the files, which ``archiver verify`` reports, and a journal that keeps what
it placed archiver's for the next run.

An update that only renames files (a video's new title renames its folder and files; a kit
made by an earlier release had other names for all of them) moves them within the kit: a file
to write whose bytes the kit holds at a path it no longer plans is hard-linked into the staging
folder and renamed into place with the others (on a file system without hard links, FAT or
exFAT, the file itself is renamed, with the others), never copied again (:func:`_moves`).

Before a byte is written, the update checks that the key has room for it all: the bytes it
writes, and the file system's share, :func:`archiver.choose.fs_margin` of the files and
folders it makes and the cluster the file system says it allocates by (what --fit's plan
keeps too, with FAT32's 32 KiB clusters).

What the kit's generated files were made from (a note in the archive, not the kit's) is
:mod:`.page_cache`; the steps an update takes on each file (staged, journaled, undone) are
:mod:`.staging`. Their names are importable from here as they were.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..choose import FAT32_CLUSTER, FS_RESERVE, fs_margin
from ..errors import KitError, writing
from ..files import file_sha256, fsync_dir
from ..progress import Progress
from ..units import format_bytes
from .bag import (
    BAG_INFO,
    JOURNAL,
    MANIFEST,
    PAYLOAD,
    TAGMANIFEST,
    format_manifest,
    salvage_manifest,
)
from .derive import Source
from .identity import Identity, Record, identity
from .ownership import JOURNAL_HEADER, STAGING, Claim, kit_name, survey
from .page_cache import pages_path, read_pages, write_pages
from .site import Deferred
from .staging import (
    _kit_error,
    _make_folders,
    _note_journal,
    _remove_emptied_folders,
    _stage,
    _unstage,
    _write_new,
)
from .tree import Tree

__all__ = ["FS_RESERVE", "Written", "pages_path", "read_pages", "write_kit", "write_pages"]

# The cluster of a file system that does not say its own: the largest FAT32 formats by default.
DEFAULT_CLUSTER = FAT32_CLUSTER


@dataclass(frozen=True)
class Written:
    """What an update of a kit wrote."""

    written: int
    bytes_written: int
    linked: int
    removed: int
    unchanged: int
    changed: tuple[str, ...]  # payload paths written, moved or removed
    warnings: tuple[str, ...] = ()  # files left alone, lists that could not be read whole
    # Generated files the plan thought the kit held (:class:`~.site.Deferred`) but that had to
    # be written after all, as made: their bag path, sha256 and size.
    made: tuple[tuple[str, str, int], ...] = ()
    # Files the kit held at a path no longer planned, given the path that wants their bytes
    # (a renamed video's folder and name): moved within the kit, not written (not counted
    # in ``written``).
    moved: int = 0
    # What each payload file is on disk now (:mod:`.identity`), for the archive's note; empty
    # when the caller keeps no note.
    identities: Record = field(default_factory=Record)


def write_kit(
    kit: Path,
    payload: Mapping[str, Source],
    tags: Mapping[str, bytes],
    *,
    claim: Claim,
    archive_root: Path,
    copy: bool,
    progress: Progress,
    tree: Tree | None = None,
    noted: Record | None = None,
    known_tags: Mapping[str, str] | None = None,
) -> Written:
    """Make ``kit`` hold ``payload`` (bag paths → sources) and the tag files ``tags`` (beside
    the bag's manifests, which this writes), removing what archiver wrote there before and no
    longer plans. ``claim`` says what in ``kit`` is archiver's. Raises :class:`KitRefused`
    (nothing written) for a path archiver must not write, :class:`KitError`, the previous kit
    intact, when a file cannot be written. ``tree``: the kit as read under its lock by the
    caller (:class:`.tree.Tree`), which asked it already whether its pages are there.

    ``noted``: what each payload file was on disk after the last update (:mod:`.identity`),
    ``None`` when the caller keeps no note (then :attr:`Written.identities` is left empty). A
    file the manifest lists at its size is trusted unless its identity moved since: then it is
    read, and written again when its bytes differ. With ``copy``, a file hard-linked to the
    archive's is written again as a copy of its own. ``known_tags``: the sha256 of tag files
    known without making them (``tags`` may make each when first read)."""
    # In order once: each later sort of its paths (the survey's, the manifest's) is then a
    # pass over a sorted list, not a sort of 40,000 names.
    payload = dict(sorted(payload.items(), key=lambda pair: pair[0]))
    owned = claim.owned  # names its manifests list, each checked with kit_name already
    for path in payload:
        if path not in owned and not kit_name(path):
            raise KitError(path, "not a name every USB key accepts")  # a bug if ever raised
    with writing(kit, "cannot create the kit", KitError):
        kit.mkdir(parents=True, exist_ok=True)
    found = survey(kit, claim, payload, tags, [MANIFEST, TAGMANIFEST], tree)
    adopted, stale, temps = found.adopted, found.stale, found.temps
    old = claim.recorded
    held_at = found.found
    # What each payload file the kit holds is on disk now, before this update: compared with
    # what was noted (the kit as the last update left it: two byte strings equal, no file to
    # compare), and noted again for those this update leaves as they are.
    paths = tuple(payload)
    infos = list(map(held_at.get, paths))
    current = Record() if noted is None else Record.of_stats(paths, infos)
    known = {} if noted is None or noted == current else noted.identities()
    todo = [
        (path, source)
        for path, source in payload.items()
        if path not in adopted
        and not _kept(kit, path, held_at.get(path), source, old.get(path), known, copy)
        and not _placed(kit / path, held_at.get(path), source, _journaled(path, claim))
    ]
    remade = [(path, _made(source)) for path, source in todo if isinstance(source, Deferred)]
    if remade:  # a file removed from the kit since it was listed: made again, listed as made
        payload = {**payload, **dict(remade)}
        todo = [(path, payload[path]) for path, _ in todo]
    _refuse_damaged_links(kit, todo, held_at, known)
    moves = _moves(kit, todo, found.stale, old, known)
    link = not copy and _same_filesystem(archive_root, kit)
    copied = sum(
        s.size for path, s in todo if path not in moves and not (link and s.path is not None)
    )

    manifest = format_manifest({path: s.sha256 for path, s in payload.items()})
    tag_files: dict[str, bytes] = {}
    if todo or stale or not _bag_complete(kit, manifest, tags, known_tags or {}):
        tag_files = {**tags, MANIFEST: manifest}
        checksums = {name: hashlib.sha256(data).hexdigest() for name, data in tag_files.items()}
        tag_files[TAGMANIFEST] = format_manifest(checksums)
        tag_files = {name: data for name, data in tag_files.items() if _differs(kit / name, data)}
    placing = [path for path, _ in todo] + sorted(tag_files)
    journal = b""  # an update that places and removes nothing notes nothing
    if placing or stale:
        # Everything archiver's until the manifests say so: what it wrote before (some of it
        # about to go), what it places, and what it took as its own.
        ours = sorted({*claim.owned, *(path for path, _ in todo), *adopted, *tag_files})
        journal = (JOURNAL_HEADER + "".join(f"{path}\n" for path in ours)).encode("utf-8")
        _check_space(
            kit,
            size=copied + sum(map(len, tag_files.values())) + len(journal),
            files=len(placing) + 1,  # and the journal
            folders=len(_folders_made(kit, placing)),
        )

    staging = kit / STAGING
    staged: list[tuple[Path, Path]] = []  # (staged, final), in the order they are renamed
    made: list[Path] = []  # the kit's folders made for the new files
    linked = bytes_written = 0
    staged_all = False
    progress.begin(len(todo) - len(moves), copied)
    try:
        for temp in temps:  # staged beside their final names by an earlier release
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        if found.staging is not None:  # the staging folder of an update that was killed
            shutil.rmtree(found.staging)
        for path, source in todo:
            if path in moves:  # the kit holds these bytes already, at a path it drops
                held = kit / moves[path]
                if _stage_move(held, staging / path):
                    staged.append((staging / path, kit / path))
                else:  # no hard links here (FAT): renamed in place with the other files
                    staged.append((held, kit / path))
                continue
            progress.started(path, path, source.size, 0)
            staged.append((staging / path, kit / path))
            if _stage(staging / path, source, link=link, progress=progress, key=path):
                linked += 1
            else:
                bytes_written += source.size
            progress.finished(path, failed=False)
        # The manifests last: until they are renamed, verify sees the old kit's.
        for name in sorted(tag_files, key=lambda n: (n == MANIFEST, n == TAGMANIFEST, n)):
            staged.append((staging / name, kit / name))
            staging.mkdir(exist_ok=True)
            _write_new(staging / name, tag_files[name])
        if staged or stale:
            staged_all = True
            for path, _ in todo:  # empty folders: no validator counts them
                made.extend(_make_folders(kit, (kit / path).parent))
            _note_journal(kit, staging, journal)
    except OSError as exc:
        _unstage(staging, made)
        failed_at = kit if staged_all or not staged else staged[-1][1]
        raise _kit_error(exc, kit, failed_at) from exc
    except BaseException:
        _unstage(staging, made)
        raise
    finally:
        progress.end()

    with writing(kit, "cannot update the kit", KitError):
        payload_count = len(todo)
        for temp, target in staged[:payload_count]:
            os.replace(temp, target)
        # The folders files went into, and those a file was moved out of (FAT: renamed).
        for folder in {p.parent for pair in staged[:payload_count] for p in pair}:
            if not folder.is_relative_to(staging):
                fsync_dir(folder)
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                (kit / path).unlink()
        _remove_emptied_folders(kit, [*(kit / path for path in stale), *temps])
        for temp, target in staged[payload_count:]:
            os.replace(temp, target)
        with contextlib.suppress(FileNotFoundError):
            (kit / JOURNAL).unlink()
        shutil.rmtree(staging, ignore_errors=True)  # empty folders by now
        fsync_dir(kit)
    changed = sorted({path for path, _ in todo} | {p for p in stale if p.startswith(f"{PAYLOAD}/")})
    identities = Record()
    if noted is not None:
        identities = Record.of(_identities(kit, paths, infos, todo)) if todo else current
    return Written(
        written=len(todo) - len(moves),
        bytes_written=bytes_written,
        linked=linked,
        removed=sum(1 for path in stale if path.startswith(f"{PAYLOAD}/")),
        unchanged=len(payload) - len(todo),
        changed=tuple(changed),
        warnings=found.warnings,
        made=tuple((path, source.sha256, source.size) for path, source in remade),
        moved=len(moves),
        identities=identities,
    )


def _moves(
    kit: Path,
    todo: Iterable[tuple[str, Source]],
    stale: Iterable[str],
    recorded: Mapping[str, str],
    noted: Mapping[str, Identity],
) -> dict[str, str]:
    """The files to move rather than write: ``{new path: old path}`` for each path to write
    whose bytes the kit holds at a path it no longer plans (its manifest lists them there, at
    their size). A renamed title renames a video's folder and files; a kit made by an earlier
    release has other names for all of them: on a USB key, gigabytes not copied again.

    Only a file archiver wrote and is about to remove (``stale``: listed, a regular file in
    real folders) is ever moved, and each once: the same bytes wanted at two paths are moved
    to the first and written at the other. The manifest is trusted as :func:`_unchanged`
    trusts it (``archiver verify`` is what reads every byte), and as :func:`_kept` does: a
    file whose identity moved since the last update (``noted``: an edit by hand, or only a
    link an interrupted move made) is read, and moved only if its bytes are still those
    listed (else its new path is written anew)."""
    held: dict[tuple[str, int], list[str]] = {}
    for path in sorted(stale, reverse=True):  # popped from the end: the first path first
        digest = recorded.get(path)
        if digest is None or not path.startswith(f"{PAYLOAD}/"):
            continue
        try:
            info = os.lstat(kit / path)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and _as_noted(kit / path, info, digest, noted.get(path)):
            held.setdefault((digest, info.st_size), []).append(path)
    moves: dict[str, str] = {}
    for path, source in todo:
        candidates = held.get((source.sha256, source.size))
        if candidates:
            moves[path] = candidates.pop()
    return moves


def _stage_move(held: Path, temp: Path) -> bool:
    """Stage a move of the kit's file ``held`` as a hard link at ``temp``: no byte copied,
    and until the renames the kit is as it was (the staging folder is not the bag's). False
    where the file system has no hard links (FAT, exFAT): the caller renames ``held`` itself,
    with the other files."""
    temp.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    try:
        os.link(held, temp, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EMLINK, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise
    return True


def _made(source: Deferred) -> Source:
    """A deferred file's bytes, made now, as a source of their own (their own sha256: what
    the manifest lists is what was written)."""
    if source.make is None:  # a bug if ever: a deferred file says how to make it
        raise ValueError("a deferred kit file without a maker")
    return Source.of_bytes(source.make())


def _folders_made(kit: Path, paths: Iterable[str]) -> set[str]:
    """The folders an update placing ``paths`` makes: all of them in its staging folder, and
    those the kit does not have yet."""
    made: set[str] = {STAGING}
    for path in paths:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth])
            made.add(f"{STAGING}/{folder}")
            if not (kit / folder).is_dir():
                made.add(folder)
    return made


def _unchanged(held: os.stat_result | None, source: Source, recorded: str | None) -> bool:
    """Whether the kit's file (``held``: its lstat, as the survey found it) is the one its
    manifest lists with ``source``'s sha256, at its size: it is not written again (the sha256
    is what ``archiver verify`` checks, not every update)."""
    return recorded == source.sha256 and held is not None and held.st_size == source.size


def _kept(
    kit: Path,
    path: str,
    held: os.stat_result | None,
    source: Source,
    recorded: str | None,
    noted: Mapping[str, Identity],
    copy: bool,
) -> bool:
    """Whether the kit's file at ``path`` stays as it is: :func:`_unchanged`, and

    - its identity is the one noted after the last update (``noted``; none noted: trusted,
      as before there were notes), or else its bytes hash to ``source``'s sha256: a file
      changed by hand at the same size, its time put back, moved its change time, and is
      written again;
    - with ``copy``, it is not the archive's file itself (a hard link made by an update
      without ``--copy``): ``--copy`` promises files of the kit's own. A link count of 1 says
      so without a system call; a file linked elsewhere too (a backup of the key made with
      hard links) is compared with the archive's file, not rewritten for that alone."""
    if held is None or not _unchanged(held, source, recorded):
        return False
    if copy and held.st_nlink > 1 and source.path is not None and _same_file(held, source.path):
        return False
    return _as_noted(kit / path, held, source.sha256, noted.get(path))


def _as_noted(path: Path, info: os.stat_result, digest: str, before: Identity | None) -> bool:
    """Whether the kit's file at ``path`` (``info``: its lstat) is still what the manifest
    lists (``digest``): trusted when its identity is the one noted after the last update (or
    none was noted), else read."""
    if before is None or before == identity(info):
        return True
    try:
        return file_sha256(path) == digest
    except OSError:
        return False


def _refuse_damaged_links(
    kit: Path,
    todo: Iterable[tuple[str, Source]],
    held_at: Mapping[str, os.stat_result | None],
    noted: Mapping[str, Identity],
) -> None:
    """A file to write again that is the archive's own file (hard-linked), moved since the
    last update (``noted``) and no longer of its sha256, is the archive's copy damaged, not
    the kit's: linking it again would put the same bad bytes back and call the kit mended.
    Refused, before anything is written, naming the file. (One unmoved, or without a note, is
    trusted as everywhere: ``--copy`` makes it a copy of its own.)"""
    for path, source in todo:
        held = held_at.get(path)
        if held is None or source.path is None or not _same_file(held, source.path):
            continue
        before = noted.get(path)
        if before is None or before == identity(held):
            continue
        try:
            damaged = file_sha256(kit / path) != source.sha256
        except OSError:
            continue
        if damaged:
            raise KitError(
                kit / path,
                "it is the archive's own file (hard-linked), and its bytes are no longer those"
                " the archive recorded: the archive's copy is damaged",
                hint="run 'archiver verify --archive ARCHIVE', delete what it names, then sync"
                " or download again",
            )


def _same_file(held: os.stat_result, path: Path) -> bool:
    """Whether the kit's file (``held``) is ``path``'s very inode."""
    try:
        other = os.stat(path)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (held.st_dev, held.st_ino)


def _identities(
    kit: Path,
    paths: Iterable[str],
    found: Iterable[os.stat_result | None],
    todo: Iterable[tuple[str, Source]],
) -> dict[str, Identity]:
    """What each payload file (``paths``) is on disk once the update is in place: as the
    survey found it (``found``), or read again for those this update placed (a rename moves
    a file's change time). A file that cannot be read is not noted, and the record, no longer
    one of the manifest's paths, is not used: the next update trusts the manifest, as without
    one. A file the kit no longer plans is not noted."""
    held = zip(paths, found, strict=True)
    identities = {path: identity(info) for path, info in held if info is not None}
    for path, _ in todo:
        try:
            identities[path] = identity(os.lstat(kit / path))
        except OSError:
            identities.pop(path, None)
    return identities


def _journaled(path: str, claim: Claim) -> bool:
    """Whether ``path`` is archiver's only by the journal of an interrupted update."""
    return path in claim.owned and path not in claim.recorded


def _placed(target: Path, held: os.stat_result | None, source: Source, owned: bool) -> bool:
    """Whether ``target``, archiver's but not in its manifest (an update interrupted while
    renaming put it there, its journal says), holds ``source``'s bytes: hashed (read, not
    written again: a moved video stays moved when the next run finishes the update)."""
    if not owned or held is None or held.st_size != source.size:
        return False
    try:
        return file_sha256(target) == source.sha256
    except OSError:
        return False


def _differs(path: Path, data: bytes) -> bool:
    """Whether ``path`` holds other bytes than ``data`` (read only when the sizes agree)."""
    try:
        return path.stat().st_size != len(data) or path.read_bytes() != data
    except OSError:
        return True


def _same_filesystem(archive_root: Path, kit: Path) -> bool:
    try:
        return os.stat(archive_root).st_dev == os.stat(kit).st_dev
    except OSError:
        return False


def _check_space(kit: Path, *, size: int, files: int, folders: int) -> None:
    """Refuse an update the key has no room for, before a byte is written: ``size`` bytes in
    ``files`` new files and ``folders`` new folders, and the file system's share
    (:func:`~archiver.choose.fs_margin`, the one --fit's plan keeps)."""
    with writing(kit, "cannot read the free space", KitError):
        free = shutil.disk_usage(kit).free
        cluster = _cluster(kit)
    slack = fs_margin(files=files, folders=folders, cluster=cluster, reserve=FS_RESERVE)
    if size + slack > free:
        raise KitError(
            kit,
            f"the kit does not fit: it needs {format_bytes(size + slack)} more, with"
            f" {format_bytes(slack)} for the file system's own use; {format_bytes(free)} is free",
            hint="use a larger key, or fewer or smaller videos",
        )


def _cluster(kit: Path) -> int:
    """The unit in which the file system holding ``kit`` allocates space (a FAT cluster, an
    ext4 block), as it tells it."""
    found = os.statvfs(kit)
    return found.f_frsize or found.f_bsize or DEFAULT_CLUSTER


def _bag_complete(
    kit: Path, manifest: bytes, tags: Mapping[str, bytes], known: Mapping[str, str]
) -> bool:
    """Whether the kit's manifests are the ones this update would write, its tag manifest
    lists the tag files this update would write (a new release's LISEZMOI.txt, root page or
    PowerShell script reaches a kit whose videos did not change) and vouches for every tag
    file on disk: a damaged tag file or manifest makes the update rewrite them.

    ``bag-info.txt`` is the exception: it dates the bag (``Bagging-Date``) and names the
    release that last changed it, so a new one is written with the next change, not every day
    or at every release for itself. ``known``: the sha256 of tag files known without making
    them."""
    if _differs(kit / MANIFEST, manifest):
        return False
    read = salvage_manifest(kit / TAGMANIFEST)
    if read is None or read.damage or set(read.checksums) != {*tags, MANIFEST}:
        return False
    for name in tags:
        if name == BAG_INFO:
            continue
        planned = known.get(name) or hashlib.sha256(tags[name]).hexdigest()
        if planned != read.checksums[name]:
            return False
    # The payload manifest holds ``manifest``, just compared: hashed here, not read again.
    known = {MANIFEST: hashlib.sha256(manifest).hexdigest()}
    try:
        return all(
            (known.get(name) or file_sha256(kit / name)) == digest
            for name, digest in read.checksums.items()
        )
    except OSError:
        return False
