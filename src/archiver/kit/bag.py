"""BagIt (RFC 8493): the kit's checksum manifests, so any copy of a kit can be checked.

A kit is a bag: ``bagit.txt``, ``bag-info.txt``, ``manifest-sha256.txt`` listing every payload
file under ``data/``, and ``tagmanifest-sha256.txt`` listing the tag files. The payload manifest
and the tag manifest are written last by the packager, so an update interrupted midway leaves
manifests that disagree with the files: :func:`verify_bag` reports it instead of passing it.
What the tag files say is the kit's (:mod:`.site`); how they are written, :mod:`.write`.

Nothing in a kit is trusted to be what it claims: a manifest is read only up to
:data:`MAX_MANIFEST`, and a file is opened without waiting (a pipe put where a video was would
otherwise hold the reader for ever) and read only when it is a regular file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import KitRefused, describe_os_error
from ..files import file_sha256, open_regular
from ..progress import NullProgress, Progress
from ..units import format_bytes

__all__ = [
    "BAGIT_TXT",
    "JOURNAL",
    "MANIFEST",
    "MAX_MANIFEST",
    "NOT_REGULAR",
    "TAGMANIFEST",
    "BagProblem",
    "Salvaged",
    "bag_info",
    "format_manifest",
    "payload_files",
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
# A manifest line is a sha256, two spaces and a path: about 120 bytes, so even a kit of a
# hundred thousand files has a 12 MiB manifest. A larger file is no manifest archiver wrote,
# and reading it whole would take its size in memory (a gibibyte took 3 GB).
MAX_MANIFEST = 16 * 1024 * 1024
NOT_REGULAR = "not a regular file (a pipe, a device or a folder); it was not read"
NOT_A_KIT_HINT = "give the kit's own folder: the one holding bagit.txt and index.html"


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


def _read_bounded(path: Path, limit: int) -> bytes | int:
    """The bytes of the regular file ``path``, or its size when it holds more than ``limit``
    (then only its size is read, never its bytes)."""
    with open_regular(path) as stream:
        size = os.fstat(stream.fileno()).st_size
        if size > limit:
            return size
        data = stream.read(limit + 1)  # it may have grown since
    return data if len(data) <= limit else len(data)


@dataclass(frozen=True)
class Salvaged:
    """What could be read of a manifest: ``{path: sha256}`` from the lines that still read,
    and what is wrong with the rest (``None`` when nothing is)."""

    checksums: dict[str, str]
    damage: str | None = None


def salvage_manifest(path: Path) -> Salvaged | None:
    """What can still be read of a manifest; ``None`` when there is no such regular file (a
    link or a device is not read).

    A damaged line does not make the whole manifest unreadable: each line that still reads
    names a file archiver wrote, and only those are trusted. A file over
    :data:`MAX_MANIFEST` is not read at all: it is damaged, and nothing it says is trusted.
    """
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        data = _read_bounded(path, MAX_MANIFEST)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Salvaged({}, f"cannot be read: {describe_os_error(exc)}")
    if isinstance(data, int):
        limit = format_bytes(MAX_MANIFEST)
        return Salvaged({}, f"{format_bytes(data)}, more than a manifest ever holds ({limit})")
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
    damage = f"{unreadable} unreadable line{'s' if unreadable != 1 else ''}" if unreadable else None
    return Salvaged(checksums, damage)


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
    """Check every payload and tag file against the manifests: ``(files, bytes, problems)``.

    Raises :class:`KitRefused` (exit 2) for a folder that is no kit at all: missing, or
    without ``bagit.txt``; each problem of a kit is a :class:`BagProblem` instead.
    """
    progress = progress or NullProgress()
    _refuse_no_kit(kit)
    read = salvage_manifest(kit / MANIFEST)
    total = 0
    for name in read.checksums if read else {}:
        with contextlib.suppress(OSError):
            total += (kit / name).stat().st_size if _inside(kit, kit / name) else 0
    progress.begin(len(read.checksums) if read else 0, total)
    try:
        return _verify(kit, read, progress)
    finally:
        progress.end()


def _refuse_no_kit(kit: Path) -> None:
    """Raise :class:`KitRefused` when ``kit`` is not a bag at all: the command was given the
    wrong folder, and a list of "missing" files would only hide that."""
    try:
        mode = kit.stat().st_mode
    except FileNotFoundError:
        raise KitRefused(kit, "not a kit: no such folder", hint=NOT_A_KIT_HINT) from None
    except OSError as exc:
        raise KitRefused(kit, f"cannot read the folder: {describe_os_error(exc)}") from exc
    if not stat.S_ISDIR(mode):
        raise KitRefused(kit, "not a kit: not a folder", hint=NOT_A_KIT_HINT)
    if not os.path.lexists(kit / BAGIT_TXT):
        raise KitRefused(kit, f"not a kit: no {BAGIT_TXT}", hint=NOT_A_KIT_HINT)


def _verify(
    kit: Path, read: Salvaged | None, progress: Progress
) -> tuple[int, int, list[BagProblem]]:
    problems: list[BagProblem] = []
    if read is None:
        if os.path.lexists(kit / MANIFEST):
            return 0, 0, [BagProblem(MANIFEST, NOT_REGULAR)]
        return 0, 0, [BagProblem(MANIFEST, "missing: the kit was never finished")]
    manifest = read.checksums
    if read.damage:
        problems.append(_damaged(MANIFEST, read.damage))
    if (kit / JOURNAL).exists():
        problems.append(
            BagProblem(JOURNAL, "an update was interrupted; packaging again completes it")
        )
    checked = 0
    size = 0
    for name, expected in sorted(manifest.items()):
        progress.started(name, name, None, 0)
        actual, problem = _check(kit, name, on_bytes=functools.partial(progress.advance, name))
        if problem is None:
            checked += 1
            with contextlib.suppress(OSError):
                size += (kit / name).stat().st_size
            if actual != expected:
                problem = BagProblem(name, f"corrupt: sha256 is {actual}, expected {expected}")
        if problem is not None:
            problems.append(problem)
        progress.finished(name, failed=problem is not None)
    for name in payload_files(kit):
        if name not in manifest:
            problems.append(BagProblem(name, "not in the kit's manifest (extra file)"))
    read = salvage_manifest(kit / TAGMANIFEST)
    if read is None:
        missing = not os.path.lexists(kit / TAGMANIFEST)
        reason = "missing: the kit was never finished" if missing else NOT_REGULAR
        problems.append(BagProblem(TAGMANIFEST, reason))
    else:
        if read.damage:
            problems.append(_damaged(TAGMANIFEST, read.damage))
        for name, expected in sorted(read.checksums.items()):
            actual, problem = _check(kit, name, limit=MAX_MANIFEST)
            if problem is None and actual != expected:
                problem = BagProblem(name, "corrupt: does not match the tag manifest")
            if problem is not None:
                problems.append(problem)
    return checked, size, problems


def _check(
    kit: Path,
    name: str,
    *,
    limit: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[str | None, BagProblem | None]:
    """The sha256 of the kit's file ``name``, or what keeps it from being read. A file over
    ``limit`` bytes is not read: no tag file archiver writes is that large."""
    target = kit / name
    if not _inside(kit, target):
        return None, BagProblem(name, "outside the kit; refusing to read it")
    try:
        found = target.stat()  # never opened when it is no regular file: a pipe would block
        if not stat.S_ISREG(found.st_mode):
            return None, BagProblem(name, NOT_REGULAR)
        if limit is not None and found.st_size > limit:
            size = format_bytes(found.st_size)
            return None, BagProblem(name, f"corrupt: {size}, not the file listed")
        return file_sha256(target, on_bytes=on_bytes), None  # which opens it without blocking
    except FileNotFoundError:
        return None, BagProblem(name, "missing")
    except OSError as exc:
        return None, BagProblem(name, f"unreadable: {describe_os_error(exc)}")


def _damaged(name: str, damage: str) -> BagProblem:
    return BagProblem(name, f"damaged ({damage}); packaging again rebuilds it")


def _inside(kit: Path, target: Path) -> bool:
    try:
        target.resolve().relative_to(kit.resolve())
    except ValueError:
        return False
    return True
