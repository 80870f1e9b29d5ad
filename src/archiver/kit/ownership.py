"""Whose files a kit folder holds: archiver's mark, and the list of what it wrote there
(:func:`claim`), from which an update knows what it may write, replace and remove.

A folder is a kit of archiver's when its ``bag-info.txt`` names archiver as the software that
made the bag (``Bag-Software-Agent: archiver …``, the field RFC 8493 has for it, in every kit
archiver ever made), or when it holds the journal of an update archiver was making
(:data:`~.bag.JOURNAL`). What archiver wrote there is the list its manifests give: every
payload file ``manifest-sha256.txt`` names, every tag file ``tagmanifest-sha256.txt`` names,
the bag's own four files and, after an update interrupted while renaming, the paths its journal
names. Nothing else in the folder is archiver's, and :mod:`.write` never deletes nor replaces
it. A damaged manifest shrinks the list to the lines that still read: what archiver cannot
prove it wrote, it leaves.

An empty or missing folder becomes a kit. So does one holding only what an operating system
puts on any key (``System Volume Information``, ``.Trashes``…) or what a first build that was
killed left: its staging folder (:data:`STAGING`), or the temporary files an earlier release
staged beside their final names. Any other folder is refused, naming it: a USB key's root
holding a teacher's files is not archiver's to reorganise, and the kit goes into a folder of
its own (``--subfolder``). A kit that is the archive, inside it or holding it is refused too:
an update removes what it no longer plans, and the archive's files would be within its reach.

Kept apart from :mod:`.survey`, which checks, before an update writes a byte, every path the
kit will hold against this claim: the claim needs no plan, and is asked before downloading too
(``claim(kit, lists=False)``). :class:`Claim`, :func:`.survey.survey` and the names both sort
a folder's files by (:data:`STAGING`, staged files, the system's) are defined there, below this
module, and are importable from here as they were.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from ..errors import KitError, KitRefused, describe_os_error
from ..files import open_regular
from ..names import MAX_NAME_LENGTH
from .bag import (
    BAG_INFO,
    BAGIT_TXT,
    JOURNAL,
    MANIFEST,
    MAX_MANIFEST,
    TAGMANIFEST,
    salvage_manifest,
)
from .survey import (
    LINKED_FOLDER,
    NOT_OURS_HINT,
    STAGING,
    TEMP_SUFFIX,
    Claim,
    Survey,
    is_system,
    is_temp,
    survey,
)

__all__ = [
    "JOURNAL_HEADER",
    "LINKED_FOLDER",
    "MARK_AGENT",
    "NOT_OURS_HINT",
    "STAGING",
    "SUBFOLDER_HINT",
    "TEMP_SUFFIX",
    "Claim",
    "Survey",
    "claim",
    "is_temp",
    "kit_name",
    "refuse_overlap",
    "survey",
]

# The field of bag-info.txt that marks a kit as archiver's, and how its value starts.
MARK_FIELD = "bag-software-agent"
MARK_AGENT = "archiver "
JOURNAL_HEADER = "archiver: files of an update being put in place\n"
SUBFOLDER_HINT = "add --subfolder NAME to make the kit in a new folder NAME inside it"
STRUCTURE = frozenset({BAGIT_TXT, BAG_INFO, MANIFEST, TAGMANIFEST})
_FORBIDDEN = set('<>:"/\\|?*') | {chr(c) for c in range(32)}
_MARK_READ = 64 * 1024  # bag-info.txt is a few lines: never read a huge file to find the mark


def kit_name(path: str) -> bool:
    """Whether ``path`` (``data/videos/a/index.html``) is one archiver could have written: a
    relative path of names every USB key accepts, none hidden.

    >>> kit_name("data/videos/a/video-720p.mp4"), kit_name("../etc/passwd")
    (True, False)
    """
    return _KIT_PATH.fullmatch(path) is not None


# kit_name as one pattern (a part's test in Python was 5 µs, a path's 1.5 µs: a kit of 10,000
# videos checks 80,000): parts of ASCII without the forbidden characters, neither starting
# with "." nor ending with " " or "." (so a one-character part is neither), at most
# MAX_NAME_LENGTH long, joined by "/". The class lists the printable ASCII it allows (and DEL)
# rather than excluding the rest of Unicode: the same characters (tests/test_startup.py checks
# every code point), but it compiles in 0.5 ms instead of 23-43 ms at every start-up.
_ALLOWED = r"[ !#-)+-.0-9;=@-\[\]-{}~\x7f]"
_FIRST = rf"(?!\.){_ALLOWED}"
_LAST = rf"(?![ .]){_ALLOWED}"
_PART = rf"(?:(?![ .]){_ALLOWED}|{_FIRST}{_ALLOWED}{{0,{MAX_NAME_LENGTH - 2}}}{_LAST})"
_KIT_PATH = re.compile(rf"{_PART}(?:/{_PART})*")


def refuse_overlap(kit: Path, archive_root: Path) -> None:
    """Refuse a kit that is the archive, sits inside it or holds it, before anything is
    written. Both are resolved first (links, ``.``, ``..``): ``--kit .`` from inside the
    archive's parent holds the archive as surely as its full path does."""
    try:
        here, archive = kit.resolve(), archive_root.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links
        raise KitRefused(kit, f"cannot resolve the path: {exc}") from exc
    hint = "choose a kit folder outside the archive, and not one that holds it"
    if here == archive:
        raise KitRefused(kit, "this is the archive's folder; a kit needs one of its own", hint=hint)
    if here.is_relative_to(archive):
        raise KitRefused(kit, f"inside the archive {archive_root}; nothing was written", hint=hint)
    if archive.is_relative_to(here):
        raise KitRefused(kit, f"holds the archive {archive_root}; nothing was written", hint=hint)


def claim(kit: Path, *, lists: bool = True) -> Claim:
    """What archiver may do in ``kit``. Raises :class:`KitRefused` for a folder that is not
    empty and not archiver's kit, or a path that is not a folder. Reads only. Without
    ``lists``, the kit's manifests are not read (only whether it may be written: a check
    before downloading; the update reads them under the kit's lock)."""
    try:
        mode = kit.stat().st_mode  # follows a link the user named as the kit: theirs to choose
    except FileNotFoundError:
        return Claim(new=True)
    except OSError as exc:
        raise KitError(kit, f"cannot read the kit folder: {describe_os_error(exc)}") from exc
    if not stat.S_ISDIR(mode):
        raise KitRefused(kit, "not a folder; nothing was written")
    journal = _read_journal(kit)
    if journal is None and not _marked(kit):
        found = _foreign(kit)
        if not found:
            return Claim(new=True)
        shown = ", ".join(found[:3]) + (", …" if len(found) > 3 else "")
        raise KitRefused(
            kit,
            f"not empty ({shown}) and not a kit archiver made; nothing was written",
            hint=SUBFOLDER_HINT,
        )
    if not lists:
        return Claim(new=False)
    return _own(kit, journal or ())


def _own(kit: Path, journal: tuple[str, ...]) -> Claim:
    """The list of what archiver wrote in its kit ``kit``, from the lines that still read."""
    warnings = []
    recorded: dict[str, str] = {}
    tags: dict[str, str] = {}
    for name, into in ((MANIFEST, recorded), (TAGMANIFEST, tags)):
        read = salvage_manifest(kit / name)
        if read is None:
            continue
        into.update(read.checksums)
        if read.damage:
            warnings.append(
                f"{kit / name}: damaged ({read.damage}); files archiver cannot prove it wrote"
                " are left as they are, and it is written anew"
            )
    owned = {path for path in (*recorded, *tags, *journal) if kit_name(path)} | STRUCTURE
    return Claim(
        new=False,
        owned=frozenset(owned),
        recorded={path: digest for path, digest in recorded.items() if path in owned},
        warnings=tuple(warnings),
    )


def _marked(kit: Path) -> bool:
    """Whether ``kit/bag-info.txt`` names archiver as the bag's software."""
    info = kit / BAG_INFO
    try:
        if not stat.S_ISREG(info.lstat().st_mode):
            return False
        with open_regular(info) as stream:
            text = stream.read(_MARK_READ).decode("utf-8", "replace")
    except OSError:
        return False
    for line in text.splitlines():
        label, colon, value = line.partition(":")
        if colon and label.strip().lower() == MARK_FIELD and value.strip().startswith(MARK_AGENT):
            return True
    return False


def _read_journal(kit: Path) -> tuple[str, ...] | None:
    """The paths an interrupted update was putting in place; ``None`` without a journal.

    A journal lists what a manifest lists, without the checksums: one over
    :data:`~.bag.MAX_MANIFEST` is damaged, and names nothing (its header still marks the kit
    as archiver's)."""
    path = kit / JOURNAL
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        with open_regular(path) as stream:
            data = stream.read(MAX_MANIFEST + 1)
    except OSError:
        return None
    if not data.startswith(JOURNAL_HEADER.encode("utf-8")):
        return None  # not archiver's journal: not its mark either
    if len(data) > MAX_MANIFEST:
        return ()
    text = data[len(JOURNAL_HEADER) :].decode("utf-8", "replace")
    return tuple(line for line in text.splitlines() if kit_name(line))


def _foreign(kit: Path) -> list[str]:
    """What makes ``kit`` not empty: the top-level names of every file or link in it that is
    neither the system's nor a staged file of archiver's, sorted."""
    found: set[str] = set()
    for entry in _scandir(kit):
        if is_system(entry.name):
            continue
        if entry.name == STAGING and entry.is_dir(follow_symlinks=False):
            continue  # a first build killed while staging: archiver's by its name
        if entry.is_dir(follow_symlinks=False):
            if _holds_files(Path(entry.path)):
                found.add(entry.name)
        elif not is_temp(entry.name):
            found.add(entry.name)
    return sorted(found)


def _holds_files(folder: Path) -> bool:
    """Whether ``folder`` holds anything but folders, the system's files and staged files;
    a folder that cannot be read is taken as holding something."""
    unreadable: list[OSError] = []
    for here, dirs, files in os.walk(folder, onerror=unreadable.append):
        if unreadable or any(not (is_temp(name) or is_system(name)) for name in files):
            return True
        if any(os.path.islink(os.path.join(here, name)) for name in dirs):
            return True
    return bool(unreadable)


def _scandir(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError as exc:
        raise KitError(folder, f"cannot read the kit folder: {describe_os_error(exc)}") from exc
