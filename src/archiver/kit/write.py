"""Writing a kit: only what changed, only what is archiver's, staged, then renamed in one go.

Before a byte is written, every path the kit will hold is checked: a link, a device, a pipe or
a folder where a file goes (or a link or a file where a folder goes) is refused, naming it, and
so is a file archiver did not write (:mod:`.ownership`) unless it already holds the very bytes
planned. Files no longer planned are removed only when archiver's list names them; anything
else is left, with a warning.

An update then writes every new or changed file, and every tag file that changes, beside its
final name (``.name.archiver-tmp``); only when all of them are written does it note in a
journal (:data:`~.bag.JOURNAL`) the paths it is about to place, and rename them into place,
payload first, then the tag files, the bag's manifests last, and the journal goes. So a full
key, a removed key or a killed process while files are written leaves the previous kit as it
was (the temporary files are removed, or ignored and removed by the next run); and an update
interrupted while renaming leaves manifests that disagree with the files, which ``archiver
verify`` reports, and a journal that keeps what it placed archiver's for the next run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import ArchiverError, KitError, describe_os_error, writing
from ..files import file_sha256, fsync_dir
from ..progress import Progress
from ..units import format_bytes
from .bag import (
    JOURNAL,
    MANIFEST,
    PAYLOAD,
    TAGMANIFEST,
    format_manifest,
    read_manifest,
)
from .derive import Source
from .ownership import JOURNAL_HEADER, TEMP_SUFFIX, Claim, kit_name, survey

__all__ = ["SPACE_MARGIN", "Written", "write_kit"]

# Left free on the key beyond what the kit needs: file system metadata, a little slack.
SPACE_MARGIN = 8 * 1024 * 1024
COPY_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Written:
    """What an update of a kit wrote."""

    written: int
    bytes_written: int
    linked: int
    removed: int
    unchanged: int
    changed: tuple[str, ...]  # payload paths written or removed
    warnings: tuple[str, ...] = ()  # files left alone, lists that could not be read whole


def write_kit(
    kit: Path,
    payload: Mapping[str, Source],
    tags: Mapping[str, bytes],
    *,
    claim: Claim,
    archive_root: Path,
    copy: bool,
    progress: Progress,
) -> Written:
    """Make ``kit`` hold ``payload`` (bag paths → sources) and the tag files ``tags`` (beside
    the bag's manifests, which this writes), removing what archiver wrote there before and no
    longer plans. ``claim`` says what in ``kit`` is archiver's. Raises :class:`KitRefused`
    (nothing written) for a path archiver must not write, :class:`KitError`, the previous kit
    intact, when a file cannot be written."""
    for path in payload:
        if not kit_name(path):
            raise KitError(path, "not a name every USB key accepts")  # a bug if ever raised
    with writing(kit, "cannot create the kit", KitError):
        kit.mkdir(parents=True, exist_ok=True)
    found = survey(kit, claim, payload, tags, [MANIFEST, TAGMANIFEST])
    adopted, stale, temps = found.adopted, found.stale, found.temps
    old = claim.recorded
    todo = [
        (path, source)
        for path, source in sorted(payload.items())
        if path not in adopted and not _unchanged(kit / path, source, old.get(path))
    ]
    link = not copy and _same_filesystem(archive_root, kit)
    needed = sum(s.size for _, s in todo if not (link and s.path is not None))
    _check_space(kit, needed)

    manifest = format_manifest({path: s.sha256 for path, s in payload.items()})
    tag_files: dict[str, bytes] = {}
    if todo or stale or not _bag_complete(kit, manifest, {*tags, MANIFEST}):
        tag_files = {**tags, MANIFEST: manifest}
        checksums = {name: hashlib.sha256(data).hexdigest() for name, data in tag_files.items()}
        tag_files[TAGMANIFEST] = format_manifest(checksums)
        tag_files = {name: data for name, data in tag_files.items() if _differs(kit / name, data)}

    for temp in temps:  # those of an update that was killed: archiver's by their name
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    staged: list[tuple[Path, Path]] = []  # (temporary, final), in the order they are renamed
    linked = bytes_written = 0
    staged_all = False
    progress.begin(len(todo), needed)
    try:
        for path, source in todo:
            target = kit / path
            progress.started(path, path, source.size, 0)
            temp = _temp(target)
            staged.append((temp, target))
            if _stage(temp, source, link=link, progress=progress, key=path):
                linked += 1
            else:
                bytes_written += source.size
            progress.finished(path, failed=False)
        # The manifests last: until they are renamed, verify sees the old kit's.
        for name in sorted(tag_files, key=lambda n: (n == MANIFEST, n == TAGMANIFEST, n)):
            temp = _temp(kit / name)
            staged.append((temp, kit / name))
            _write_new(temp, tag_files[name])
        if staged or stale:
            # Everything archiver's until the manifests say so: what it wrote before (some
            # of it about to go), what it places, and what it took as its own.
            ours = {*claim.owned, *(path for path, _ in todo), *adopted, *tag_files}
            staged_all = True
            _note_journal(kit, sorted(ours))
    except OSError as exc:
        _unstage(kit, staged)
        failed_at = kit if staged_all or not staged else staged[-1][1]
        raise _kit_error(exc, kit, failed_at) from exc
    except BaseException:
        _unstage(kit, staged)
        raise
    finally:
        progress.end()

    with writing(kit, "cannot update the kit", KitError):
        payload_count = len(todo)
        for temp, target in staged[:payload_count]:
            os.replace(temp, target)
        for folder in {target.parent for _, target in staged[:payload_count]}:
            fsync_dir(folder)
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                (kit / path).unlink()
        _remove_emptied_folders(kit, [*(kit / path for path in stale), *temps])
        for temp, target in staged[payload_count:]:
            os.replace(temp, target)
        with contextlib.suppress(FileNotFoundError):
            (kit / JOURNAL).unlink()
        fsync_dir(kit)
    changed = sorted({path for path, _ in todo} | {p for p in stale if p.startswith(f"{PAYLOAD}/")})
    return Written(
        written=len(todo),
        bytes_written=bytes_written,
        linked=linked,
        removed=sum(1 for path in stale if path.startswith(f"{PAYLOAD}/")),
        unchanged=len(payload) - len(todo),
        changed=tuple(changed),
        warnings=found.warnings,
    )


def _temp(target: Path) -> Path:
    return target.with_name(f".{target.name}{TEMP_SUFFIX}")


def _unstage(kit: Path, staged: Iterable[tuple[Path, Path]]) -> None:
    """Remove the temporary files of an update that failed, and the folders made for them:
    the kit is left exactly as it was."""
    for temp, _ in staged:
        with contextlib.suppress(OSError):
            temp.unlink()
        folder = temp.parent
        while folder != kit and folder.is_relative_to(kit):
            try:
                folder.rmdir()  # only when empty: a folder of the previous kit is not
            except OSError:
                break
            folder = folder.parent


def _kit_error(exc: OSError, kit: Path, writing_to: Path) -> KitError:
    """A failed update as one line: the file concerned (by its final name, not its temporary
    one; a full disk's error names none) and the reason."""
    named = Path(exc.filename) if isinstance(exc.filename, str) else None
    if named is not None and not named.is_relative_to(kit):  # a file of the archive
        reason = f"cannot read it ({describe_os_error(exc)}); the kit was left as it was"
        return KitError(named, reason)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return KitError(writing_to, "the key is full; the kit was left as it was")
    reason = f"cannot write the kit ({describe_os_error(exc)}); it was left as it was"
    return KitError(writing_to, reason)


def _unchanged(target: Path, source: Source, recorded: str | None) -> bool:
    if recorded != source.sha256:
        return False
    try:
        return target.stat().st_size == source.size
    except OSError:
        return False


def _differs(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() != data
    except OSError:
        return True


def _same_filesystem(archive_root: Path, kit: Path) -> bool:
    try:
        return os.stat(archive_root).st_dev == os.stat(kit).st_dev
    except OSError:
        return False


def _check_space(kit: Path, needed: int) -> None:
    with writing(kit, "cannot read the free space", KitError):
        free = shutil.disk_usage(kit).free
    if needed + SPACE_MARGIN > free:
        raise KitError(
            kit,
            f"the kit does not fit: it needs {format_bytes(needed)} more, "
            f"{format_bytes(free)} is free",
            hint="use a larger key, or fewer or smaller videos",
        )


def _create(path: Path) -> BinaryIO:
    """A new file at ``path``, open for writing: never an existing one, never through a link.
    Its mode follows the umask (0644 under 022), as any file the user makes."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o666), "wb")


def _write_new(temp: Path, data: bytes) -> None:
    """Write ``data`` durably to the new file ``temp`` (a staged name: none of it is seen)."""
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    with _create(temp) as writer:
        writer.write(data)
        writer.flush()
        os.fsync(writer.fileno())


def _stage(temp: Path, source: Source, *, link: bool, progress: Progress, key: str) -> bool:
    """Put one file's bytes at ``temp``, durably; True when hard-linked."""
    temp.parent.mkdir(parents=True, exist_ok=True)
    if source.data is not None:
        _write_new(temp, source.data)
        progress.advance(key, source.size)
        return False
    assert source.path is not None  # noqa: S101 - one of the two is always set
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    if link:
        try:
            os.link(source.path, temp)
            return True  # no bytes written: none counted
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
    with source.path.open("rb") as reader, _create(temp) as writer:
        while block := reader.read(COPY_BLOCK):
            writer.write(block)
            progress.advance(key, len(block))
        writer.flush()
        os.fsync(writer.fileno())
    return False


def _note_journal(kit: Path, paths: Iterable[str]) -> None:
    """Note, durably, the paths this update is about to put in place: were it interrupted
    before its manifests name them, they are still provably archiver's."""
    temp = _temp(kit / JOURNAL)
    try:
        text = JOURNAL_HEADER + "".join(f"{path}\n" for path in paths)
        _write_new(temp, text.encode("utf-8"))
        os.replace(temp, kit / JOURNAL)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(kit)


def _remove_emptied_folders(kit: Path, removed: Iterable[Path]) -> None:
    """Remove the folders that held only files this update removed, up to ``data/``: not
    an empty folder someone else made."""
    root = kit / PAYLOAD
    for path in sorted(removed, key=lambda p: len(p.parts), reverse=True):
        folder = path.parent
        while folder != root and folder.is_relative_to(root):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
            folder = folder.parent


def _bag_complete(kit: Path, manifest: bytes, tag_names: set[str]) -> bool:
    """Whether the kit's manifests are the ones this update would write and its tag manifest
    vouches for every tag file: a damaged tag file or manifest makes the update rewrite them."""
    try:
        if (kit / MANIFEST).read_bytes() != manifest:
            return False
        listed = read_manifest(kit / TAGMANIFEST)
    except (OSError, ArchiverError):
        return False
    if listed is None or set(listed) != tag_names:
        return False
    try:
        return all(file_sha256(kit / name) == digest for name, digest in listed.items())
    except OSError:
        return False
