"""Writing a kit: only what changed, staged under temporary names, then renamed in one go.

An update first writes every new or changed file, and every tag file that changes, beside its
final name (``.name.archiver-tmp``); only when all of them are written does it rename them into
place, payload first, then the tag files, the bag's manifests last. So a full key, a removed
key or a killed process while files are written leaves the previous kit as it was (the
temporary files are removed, or ignored and replaced by the next run); and an update
interrupted while renaming leaves manifests that disagree with the files, which
``archiver verify`` reports.
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

from ..errors import KitError, describe_os_error, writing
from ..files import atomic_write_bytes, fsync_dir
from ..names import MAX_NAME_LENGTH
from ..progress import Progress
from ..units import format_bytes
from .bag import MANIFEST, PAYLOAD, TAGMANIFEST, format_manifest, payload_files, read_manifest
from .derive import Source

__all__ = ["SPACE_MARGIN", "Written", "write_kit"]

# Left free on the key beyond what the kit needs: file system metadata, a little slack.
SPACE_MARGIN = 8 * 1024 * 1024
COPY_BLOCK = 4 * 1024 * 1024
TEMP_SUFFIX = ".archiver-tmp"
_FORBIDDEN = set('<>:"/\\|?*') | {chr(c) for c in range(32)}


@dataclass(frozen=True)
class Written:
    """What an update of a kit wrote."""

    written: int
    bytes_written: int
    linked: int
    removed: int
    unchanged: int
    changed: tuple[str, ...]  # payload paths written or removed


def write_kit(
    kit: Path,
    payload: Mapping[str, Source],
    tags: Mapping[str, bytes],
    *,
    archive_root: Path,
    copy: bool,
    progress: Progress,
) -> Written:
    """Make ``kit`` hold exactly ``payload`` (bag paths → sources) and the tag files ``tags``
    (beside the bag's manifests, which this writes). Raises :class:`KitError`, the previous
    kit intact, when a file cannot be written."""
    for path in payload:
        _check_name(path)
    with writing(kit, "cannot create the kit", KitError):
        kit.mkdir(parents=True, exist_ok=True)
    old = read_manifest(kit / MANIFEST) or {}
    todo = [
        (path, source)
        for path, source in sorted(payload.items())
        if not _unchanged(kit / path, source, old.get(path))
    ]
    # Files no longer planned, and the temporary files of an update that was killed.
    stale = [path for path in payload_files(kit) if path not in payload]
    link = not copy and _same_filesystem(archive_root, kit)
    needed = sum(s.size for _, s in todo if not (link and s.path is not None))
    _check_space(kit, needed)

    manifest = format_manifest({path: s.sha256 for path, s in payload.items()})
    tag_files: dict[str, bytes] = {}
    if todo or stale or not _bag_complete(kit, manifest):
        tag_files = {**tags, MANIFEST: manifest}
        checksums = {name: hashlib.sha256(data).hexdigest() for name, data in tag_files.items()}
        tag_files[TAGMANIFEST] = format_manifest(checksums)
        tag_files = {name: data for name, data in tag_files.items() if _differs(kit / name, data)}

    staged: list[tuple[Path, Path]] = []  # (temporary, final), in the order they are renamed
    linked = bytes_written = 0
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
            atomic_write_bytes(temp, tag_files[name])
    except OSError as exc:
        _unstage(kit, staged)
        raise _kit_error(exc, kit, staged[-1][1] if staged else kit) from exc
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
        _remove_empty_folders(kit / PAYLOAD)
        for temp, target in staged[payload_count:]:
            os.replace(temp, target)
        fsync_dir(kit)
    return Written(
        written=len(todo),
        bytes_written=bytes_written,
        linked=linked,
        removed=sum(1 for path in stale if not _is_temp(path)),
        unchanged=len(payload) - len(todo),
        changed=tuple(sorted([path for path, _ in todo] + [p for p in stale if not _is_temp(p)])),
    )


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


def _temp(target: Path) -> Path:
    return target.with_name(f".{target.name}{TEMP_SUFFIX}")


def _is_temp(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


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


def _stage(temp: Path, source: Source, *, link: bool, progress: Progress, key: str) -> bool:
    """Put one file's bytes at ``temp``, durably; True when hard-linked."""
    temp.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    if source.data is not None:
        atomic_write_bytes(temp, source.data)
        progress.advance(key, source.size)
        return False
    assert source.path is not None  # noqa: S101 - one of the two is always set
    if link:
        try:
            os.link(source.path, temp)
            return True  # no bytes written: none counted
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
    with source.path.open("rb") as reader, temp.open("wb") as writer:
        while block := reader.read(COPY_BLOCK):
            writer.write(block)
            progress.advance(key, len(block))
        writer.flush()
        os.fsync(writer.fileno())
    return False


def _remove_empty_folders(root: Path) -> None:
    for folder, dirs, files in os.walk(root, topdown=False):
        if not dirs and not files and Path(folder) != root:
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def _bag_complete(kit: Path, manifest: bytes) -> bool:
    try:
        return (kit / MANIFEST).read_bytes() == manifest and (kit / TAGMANIFEST).is_file()
    except OSError:
        return False
