"""BagIt (RFC 8493): the kit's checksum manifests, so any copy of a kit can be checked.

A kit is a bag: ``bagit.txt``, ``bag-info.txt``, ``manifest-sha256.txt`` listing every payload
file under ``data/``, and ``tagmanifest-sha256.txt`` listing the tag files. The payload manifest
and the tag manifest are written last by the packager, so an update interrupted midway leaves
manifests that disagree with the files: :func:`verify_bag` reports it instead of passing it.
What the tag files say is the kit's (:mod:`.site`); how they are written, :mod:`.write`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArchiverError, describe_os_error
from ..files import file_sha256
from ..progress import NullProgress, Progress

__all__ = [
    "BAGIT_TXT",
    "JOURNAL",
    "MANIFEST",
    "TAGMANIFEST",
    "BagProblem",
    "bag_info",
    "format_manifest",
    "payload_files",
    "read_manifest",
    "salvage_manifest",
    "verify_bag",
]

BAGIT_TXT = "bagit.txt"
BAG_INFO = "bag-info.txt"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
PAYLOAD = "data"
BAGIT_DECLARATION = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
# Present only while an update renames its files into place (see :mod:`.write`): the paths it
# is placing, so that an interrupted update leaves them provably archiver's.
JOURNAL = ".archiver-update-in-progress"


_NOT_HEX = re.compile(r"[^0-9a-fA-F]")


@dataclass(frozen=True)
class BagProblem:
    """One thing wrong with a bag: a file and what is wrong with it."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _encode(path: str) -> str:
    # RFC 8493 §2.1.3: CR, LF and % in a file path are percent-encoded.
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _decode(path: str) -> str:
    return (
        path.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%0d", "\r")
        .replace("%0a", "\n")
        .replace("%25", "%")
    )


def format_manifest(checksums: Mapping[str, str]) -> bytes:
    """Manifest lines ``<sha256>  <path>``, sorted by path."""
    lines = (f"{checksums[path]}  {_encode(path)}\n" for path in sorted(checksums))
    return "".join(lines).encode("utf-8")


def read_manifest(path: Path) -> dict[str, str] | None:
    """A manifest file as ``{path: sha256}``; ``None`` when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ArchiverError(f"{path}: cannot read: {describe_os_error(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise ArchiverError(f"{path}: cannot read: {exc}") from exc
    checksums: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        name = name.strip()
        if len(digest) != 64 or not name:
            raise ArchiverError(f"{path}: line {number} is not '<sha256>  <path>'")
        checksums[_decode(name)] = digest.lower()
    return checksums


def salvage_manifest(path: Path) -> tuple[dict[str, str], int] | None:
    """What can still be read of a manifest: ``({path: sha256}, lines unreadable)``; ``None``
    when there is no such regular file (a link or a device is not read).

    Unlike :func:`read_manifest`, a damaged line does not make the whole manifest unreadable:
    each line that still reads names a file archiver wrote, and only those are trusted.
    """
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return {}, 1
    checksums: dict[str, str] = {}
    unreadable = 0
    for line in data.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        name = name.strip()
        if len(digest) != 64 or not name or _NOT_HEX.search(digest) or "\ufffd" in name:
            unreadable += 1
            continue
        checksums[_decode(name)] = digest.lower()
    return checksums, unreadable


def payload_files(kit: Path) -> Iterator[str]:
    """Every file under ``data/``, as a bag path (``data/…``), in a stable order."""
    root = kit / PAYLOAD
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            yield (Path(folder, name).relative_to(kit)).as_posix()


def bag_info(fields: Sequence[tuple[str, str]]) -> bytes:
    r"""``bag-info.txt``: one ``Label: value`` line a field, in order (RFC 8493, 2.2.2).

    >>> bag_info([("Bag-Size", "1.5 Mo"), ("Payload-Oxum", "1536.2")])
    b'Bag-Size: 1.5 Mo\nPayload-Oxum: 1536.2\n'
    """
    lines = []
    for label, value in fields:
        # A value is one line: a line break would start a field of the reader's guessing.
        lines.append(f"{label}: {' '.join(value.split())}\n")
    return "".join(lines).encode("utf-8")


def verify_bag(kit: Path, *, progress: Progress | None = None) -> tuple[int, int, list[BagProblem]]:
    """Check every payload and tag file against the manifests: ``(files, bytes, problems)``."""
    progress = progress or NullProgress()
    manifest = (salvage_manifest(kit / MANIFEST) or ({}, 0))[0]
    total = 0
    for name in manifest:
        with contextlib.suppress(OSError):
            total += (kit / name).stat().st_size if _inside(kit, kit / name) else 0
    progress.begin(len(manifest), total)
    try:
        return _verify(kit, progress)
    finally:
        progress.end()


def _verify(kit: Path, progress: Progress) -> tuple[int, int, list[BagProblem]]:
    problems: list[BagProblem] = []
    if not (kit / BAGIT_TXT).is_file():
        return 0, 0, [BagProblem(str(kit), "not a kit: no bagit.txt")]
    read = salvage_manifest(kit / MANIFEST)
    if read is None:
        return 0, 0, [BagProblem(MANIFEST, "missing: the kit was never finished")]
    manifest, unreadable = read
    if unreadable:
        problems.append(_damaged(MANIFEST, unreadable))
    if (kit / JOURNAL).exists():
        problems.append(
            BagProblem(JOURNAL, "an update was interrupted; packaging again completes it")
        )
    checked = 0
    size = 0
    for name, expected in sorted(manifest.items()):
        target = kit / name
        if not _inside(kit, target):
            problems.append(BagProblem(name, "outside the kit; refusing to read it"))
            continue
        progress.started(name, name, None, 0)
        try:
            actual = file_sha256(target, on_bytes=functools.partial(progress.advance, name))
            size += target.stat().st_size
        except FileNotFoundError:
            problems.append(BagProblem(name, "missing"))
            progress.finished(name, failed=True)
            continue
        except OSError as exc:
            problems.append(BagProblem(name, f"unreadable: {describe_os_error(exc)}"))
            progress.finished(name, failed=True)
            continue
        checked += 1
        if actual != expected:
            problems.append(BagProblem(name, f"corrupt: sha256 is {actual}, expected {expected}"))
        progress.finished(name, failed=actual != expected)
    for name in payload_files(kit):
        if name not in manifest:
            problems.append(BagProblem(name, "not in the kit's manifest (extra file)"))
    read = salvage_manifest(kit / TAGMANIFEST)
    if read is None:
        problems.append(BagProblem(TAGMANIFEST, "missing: the kit was never finished"))
    else:
        tags, unreadable = read
        if unreadable:
            problems.append(_damaged(TAGMANIFEST, unreadable))
        for name, expected in sorted(tags.items()):
            target = kit / name
            if not _inside(kit, target) or not target.is_file():
                problems.append(BagProblem(name, "missing"))
                continue
            try:
                actual = file_sha256(target)
            except OSError as exc:
                problems.append(BagProblem(name, f"unreadable: {describe_os_error(exc)}"))
                continue
            if actual != expected:
                problems.append(BagProblem(name, "corrupt: does not match the tag manifest"))
    return checked, size, problems


def _damaged(name: str, unreadable: int) -> BagProblem:
    lines = f"{unreadable} unreadable line{'s' if unreadable != 1 else ''}"
    return BagProblem(name, f"damaged ({lines}); packaging again rebuilds it")


def _inside(kit: Path, target: Path) -> bool:
    try:
        target.resolve().relative_to(kit.resolve())
    except ValueError:
        return False
    return True
