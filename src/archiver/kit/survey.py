"""What an update may do in a kit folder archiver owns, found before it writes a byte
(:func:`survey`): every path the kit will hold checked, and what the folder holds besides sorted.

A link, a pipe, a device or a folder where a file goes (or a link or a file where a folder
goes) is refused, naming it, and so is a file archiver did not write, unless it already holds
the very bytes planned (a damaged list, an update interrupted before its manifests named it).
Of the rest of the folder, the files archiver wrote and no longer plans are to remove, and so
are the staging folder (:data:`STAGING`) and the staged files an update that was killed left;
what an operating system puts on any key is ignored; anything else is left, named in a warning.

Kept apart from :mod:`.ownership`, which decides whose the folder is (archiver's mark, the list
its manifests give) and is asked before downloading too, without a path of the plan: the survey
weighs every planned path against the folder as the update read it under its lock
(:class:`.tree.Tree`), one folder's answer kept for all its files. :class:`Claim`, what the
survey takes, and the names both sort a folder's files by (the staging folder, staged files,
the system's) are defined here, below :mod:`.ownership`, so that the two modules import one
way; they are importable from :mod:`.ownership` as they were.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KitError, KitRefused, describe_os_error
from ..files import file_sha256, unsafe_target
from .bag import JOURNAL, PAYLOAD
from .derive import Source
from .tree import Tree, walk_order

__all__ = [
    "LINKED_FOLDER",
    "NOT_OURS_HINT",
    "STAGING",
    "SYSTEM_FILES",
    "SYSTEM_FOLDERS",
    "TEMP_SUFFIX",
    "Claim",
    "Survey",
    "is_system",
    "is_temp",
    "survey",
]

# Where an update writes its files before renaming them into place: a hidden folder at the
# kit's root, outside the payload, so that until the renames start the kit holds nothing a
# validator would count (RFC 8493 lets a bag hold files its tag manifest does not list), and
# on the kit's own file system, so that a rename moves a file without copying it.
STAGING = ".archiver-staging"
# Earlier releases staged a file beside its final name, ``.NAME.archiver-tmp``: still removed.
TEMP_SUFFIX = ".archiver-tmp"
# What operating systems put in a key's folders on their own: it does not make a folder "not
# empty", and it is never archiver's.
SYSTEM_FOLDERS = frozenset(
    {
        "System Volume Information",
        "$RECYCLE.BIN",
        "RECYCLER",
        ".Trashes",
        ".Spotlight-V100",
        ".fseventsd",
        ".TemporaryItems",
        ".DocumentRevisions-V100",
        "lost+found",
    }
)
SYSTEM_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".directory"})
LINKED_FOLDER = "a symbolic link where the kit has a folder; archiver does not write through links"
NOT_OURS_HINT = (
    "move it out of the kit folder (or delete it if it is archiver's), then package again"
)
# A warning names this many of the files archiver leaves alone, then counts the rest.
NAMED_AT_MOST = 5


@dataclass(frozen=True)
class Claim:
    """What archiver may do in a kit folder: the paths it wrote there, and what they held."""

    new: bool  # empty or missing: no kit yet, nothing in it is archiver's
    owned: frozenset[str] = frozenset()
    recorded: Mapping[str, str] = field(default_factory=dict)  # payload path → sha256
    warnings: tuple[str, ...] = ()  # a list that could not be read whole


def is_temp(name: str) -> bool:
    """Whether a file name is one of archiver's staged files (``.NAME.archiver-tmp``)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def is_system(name: str) -> bool:
    """Whether a file or folder name is one an operating system makes on a key by itself."""
    return name in SYSTEM_FOLDERS or name in SYSTEM_FILES or name.startswith((".Trash-", "._"))


@dataclass(frozen=True)
class Survey:
    """What an update may do in a kit, found before it writes a byte."""

    adopted: frozenset[str]  # planned files there, not listed, holding the planned bytes
    stale: tuple[str, ...]  # files archiver wrote and no longer plans: to remove
    temps: tuple[Path, ...]  # files an earlier release staged beside their names: to remove
    warnings: tuple[str, ...]  # what is left alone, and why
    staging: Path | None = None  # the staging folder of an update that was killed: to remove
    # What each planned path holds now: a regular file (its lstat), or nothing (None).
    found: Mapping[str, os.stat_result | None] = field(default_factory=dict)


def survey(
    kit: Path,
    claim: Claim,
    payload: Mapping[str, Source],
    tags: Mapping[str, bytes],
    manifests: Iterable[str],
    tree: Tree | None = None,
) -> Survey:
    """Check every path the kit will hold (``payload``, ``tags`` and the bag's
    ``manifests``) and sort what the folder holds besides. Raises :class:`KitRefused` for a
    path archiver must not write: a link, a special file, a folder where a file goes (or a
    link or file where a folder goes), or a file archiver did not write.

    ``tree``: the kit as the update read it under its lock (:class:`.tree.Tree`), else read
    now: one listing answers every check."""
    tree = tree if tree is not None else Tree(kit)
    guard = _Guard(kit, tree)
    planned = [*sorted(payload), *sorted(tags), *manifests]
    staging = _staging(kit)
    found: dict[str, os.stat_result | None] = {}
    adopted = _check_planned(kit, guard, claim, payload, tags, planned, found)
    stale, kept = _stale(kit, guard, claim.owned - set(planned))
    temps, others = _survey(kit, guard, tree, set(planned) | claim.owned)
    return Survey(
        adopted=frozenset(adopted),
        stale=tuple(stale),
        temps=tuple(temps),
        warnings=(*claim.warnings, *kept, *_left_alone(kit, sorted(others, key=walk_order))),
        staging=staging,
        found=found,
    )


def _staging(kit: Path) -> Path | None:
    """The staging folder an update that was killed left in ``kit`` (``None`` when there is
    none). Raises :class:`KitRefused` for anything else at its name: a link, a file."""
    path = kit / STAGING
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KitError(path, f"cannot read it: {describe_os_error(exc)}") from exc
    if stat.S_ISDIR(mode):
        return path
    why = unsafe_target(path) or "a file where archiver stages an update's files"
    raise KitRefused(path, f"{why}; nothing was written", hint=NOT_OURS_HINT)


_MISSING = ("", "")  # a folder not there (nor anything below it): see _Guard
# Why a folder on the way of a path is not a real folder, by what the listing says it is.
_WHY = {
    "": "",
    "folder": None,
    "link": LINKED_FOLDER,
    "file": "a file where the kit needs a folder",
}


class _Guard:
    """Whether a path of the kit may be written: every folder on the way a real folder (or
    not there yet), never a link; the answer for each folder kept, as many files share them
    (a kit of 10,000 videos has 40,000 files in 10,000 folders)."""

    def __init__(self, kit: Path, tree: Tree) -> None:
        self.kit = kit
        self.root = str(kit)
        self.tree = tree
        # A folder's state: None, a real folder (as is every one above it); _MISSING, it or
        # one above it is not there; else the first folder on the way that is not a real
        # folder, and why.
        self._states: dict[str, tuple[str, str] | None] = {}

    def folders(self, path: str) -> tuple[str, str] | None:
        """The first folder of ``path`` (a bag path) that is not a real folder, and why."""
        parent = path.rpartition("/")[0]
        state = self._state(parent) if parent else None
        return None if state is None or state is _MISSING else state

    def _state(self, folder: str) -> tuple[str, str] | None:
        if folder in self._states:
            return self._states[folder]
        above = folder.rpartition("/")[0]
        state = self._state(above) if above else None
        if state is None:
            why = self._why(folder)
            state = _MISSING if why == "" else None if why is None else (folder, why)
        self._states[folder] = state
        return state

    def _why(self, folder: str) -> str | None:
        kind = self.tree.kind(folder)  # from the listing: no system call
        if kind is not None:
            return _WHY[kind]
        try:
            mode = os.lstat(os.path.join(self.root, folder)).st_mode
        except FileNotFoundError:
            return ""
        except OSError as exc:
            return f"cannot be read ({describe_os_error(exc)})"
        if stat.S_ISLNK(mode):
            return LINKED_FOLDER
        if not stat.S_ISDIR(mode):
            return _WHY["file"]
        return None

    def refuse(self, path: str) -> os.stat_result | None:
        """Raise :class:`KitRefused` when ``path`` must not be written; else what the kit
        holds there (``lstat``: a regular file), or ``None``: nothing (yet)."""
        blocked = self.folders(path)
        if blocked is not None:
            folder, why = blocked
            raise KitRefused(self.kit / folder, f"{why}; nothing was written")
        parent = path.rpartition("/")[0]
        if parent and self._state(parent) is _MISSING:
            return None  # its folder is not there: nor is it
        # Missing; or the write that follows says why it cannot be read.
        found = self.tree.lstat(path)
        if found is None:
            return None
        if not stat.S_ISREG(found.st_mode):
            unsafe = unsafe_target(self.kit / path)
            raise KitRefused(self.kit / path, f"{unsafe}; nothing was written")
        return found


def _check_planned(
    kit: Path,
    guard: _Guard,
    claim: Claim,
    payload: Mapping[str, Source],
    tags: Mapping[str, bytes],
    planned: Iterable[str],
    found: dict[str, os.stat_result | None],
) -> set[str]:
    """Check every path the kit will hold, noting in ``found`` what is there; the files there
    archiver did not list but that hold the very bytes planned (a list that was damaged, an
    update killed before it listed them): those are taken as archiver's. Raises
    :class:`KitRefused` for any other file."""
    adopted: set[str] = set()
    for path in planned:
        found[path] = guard.refuse(path)
        if path in claim.owned or found[path] is None:
            continue
        target = kit / path
        source, data = payload.get(path), tags.get(path)
        if _holds(target, source) if source is not None else _holds_bytes(target, data or b""):
            adopted.add(path)
        else:
            raise KitRefused(
                target,
                "a file archiver did not write (not in the kit's manifests); it will not"
                " replace it, and nothing was written",
                hint=NOT_OURS_HINT,
            )
    return adopted


def _holds(target: Path, source: Source) -> bool:
    """Whether ``target`` holds ``source``'s bytes (hashed only when the sizes agree)."""
    try:
        if target.stat().st_size != source.size:
            return False
        if source.path is not None and os.path.samefile(target, source.path):
            return True  # hard-linked to the archive's file
        return file_sha256(target) == source.sha256
    except OSError:
        return False


def _holds_bytes(target: Path, data: bytes) -> bool:
    """Whether ``target`` holds ``data`` (read only when the sizes agree)."""
    try:
        return target.stat().st_size == len(data) and target.read_bytes() == data
    except OSError:
        return False


def _stale(kit: Path, guard: _Guard, unplanned: Iterable[str]) -> tuple[list[str], list[str]]:
    """Of the files archiver wrote and no longer plans: those to remove, and a warning for
    each it leaves because it is no longer a plain file of archiver's (a link, a folder)."""
    stale: list[str] = []
    kept: list[str] = []
    for path in sorted(unplanned):
        blocked = guard.folders(path)
        if blocked is not None:
            kept.append(f"{kit / blocked[0]}: {blocked[1]}; {path} is left as it is")
            continue
        found = guard.tree.lstat(path)
        if found is None:
            continue  # gone already
        if stat.S_ISREG(found.st_mode):
            stale.append(path)
        else:
            target = kit / path
            kept.append(f"{target}: {unsafe_target(target)}; left as it is")
    return stale, kept


def _survey(
    kit: Path, guard: _Guard, tree: Tree, archivers: set[str]
) -> tuple[list[Path], list[str]]:
    """What the kit holds besides what archiver wrote: the staged files an update that was
    killed left behind (plain files in real folders, archiver's by their name, to remove),
    and the bag paths of the files archiver did not write (to leave)."""
    temps: list[Path] = []
    others: list[str] = []
    for path, name in tree.files():
        if is_temp(name):
            found = tree.lstat(path)
            if guard.folders(path) is None and found is not None and stat.S_ISREG(found.st_mode):
                temps.append(kit / path)
        elif path not in archivers and path != JOURNAL and not is_system(name):
            others.append(path)
    return temps, others


def _left_alone(kit: Path, left: list[str]) -> list[str]:
    """A warning naming the files in the kit that archiver did not write (it leaves them)."""
    if not left:
        return []
    shown = ", ".join(left[:NAMED_AT_MOST])
    more = f" and {len(left) - NAMED_AT_MOST} more" if len(left) > NAMED_AT_MOST else ""
    extra = any(path.startswith(f"{PAYLOAD}/") for path in left)
    said = "; archiver verify reports those under data/ as extra files" if extra else ""
    count = f"{len(left)} file{'s' if len(left) != 1 else ''} archiver did not write"
    verb = "they are" if len(left) != 1 else "it is"
    return [f"{kit}: {count} left as {verb}: {shown}{more}{said}"]
