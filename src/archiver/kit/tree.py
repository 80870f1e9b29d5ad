"""What a kit folder holds, read once for an update: the files at its root and everything
under ``data/``, one :func:`os.scandir` a folder, never following a link.

An update looks at each path three times: :func:`.site` asks whether the page it would make
is there at its size, :func:`.survey.survey` checks every path the kit will hold (and the
folders on the way), finds the files archiver wrote and no longer plans, and names the files
it did not write. A kit of 10,000 videos holds 40,000 files in 10,000 folders: read one
``lstat`` at a time, each question cost a system call and a path joined; read once, the
listing answers whether a path is there and what it is (the kind of file ``scandir`` gives
with its name), and the ``lstat`` of a file, read when first asked, answers the rest.

The listing is taken under the kit's lock, so nothing but a person's hand changes the kit
between it and the update's writes, as before (each check then read the disk a moment later).
A folder that cannot be listed is not in it: its paths are read one by one, as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import KitError, writing
from .bag import PAYLOAD

__all__ = ["Tree", "walk_order"]


class Tree:
    """The kit ``kit`` as it is now (see the module's doc); paths are bag paths
    (``data/videos/A/index.html``)."""

    def __init__(self, kit: Path) -> None:
        self.kit = kit
        self.root = str(kit)
        self._entries: dict[str, os.DirEntry[str]] = {}
        self._listed: set[str] = set()  # folders listed whole: "" is the kit's root
        # Every file, link or special file, in the order the folders were listed (unsorted:
        # :func:`walk_order` sorts the few a warning names).
        self._files: list[tuple[str, str]] = []
        self._read()

    def _read(self) -> None:
        reading = writing(self.kit, "cannot read the kit folder", KitError)
        with reading, os.scandir(self.kit) as scan:
            top = list(scan)
        self._listed.add("")
        for entry in top:
            self._entries[entry.name] = entry
            if not _is_folder(entry):
                self._files.append((entry.name, entry.name))
        payload = self._entries.get(PAYLOAD)
        if payload is None or not _is_folder(payload):
            return  # missing, or a link or a file: the update refuses it, naming it
        pending = [PAYLOAD]
        while pending:
            inside = pending.pop()
            try:
                with os.scandir(os.path.join(self.root, inside)) as scan:
                    found = list(scan)
            except OSError:
                continue  # as os.walk: a folder that cannot be listed is skipped
            self._listed.add(inside)
            folders = []
            for entry in found:
                path = f"{inside}/{entry.name}"
                self._entries[path] = entry
                if _is_folder(entry):
                    folders.append(path)
                else:
                    self._files.append((path, entry.name))
            pending.extend(folders)

    def files(self) -> Iterator[tuple[str, str]]:
        """Every file (or link, or special file) of the kit's root and of ``data/``, as
        ``(bag path, name)``."""
        return iter(self._files)

    def kind(self, path: str) -> str | None:
        """What ``path`` is: ``"folder"`` (a real one), ``"link"``, ``"file"`` (anything else),
        ``""`` when it is not there; ``None`` when its folder could not be listed (ask the
        disk)."""
        if path.rpartition("/")[0] not in self._listed:
            return None
        entry = self._entries.get(path)
        if entry is None:
            return ""
        try:
            if entry.is_symlink():
                return "link"
            return "folder" if entry.is_dir(follow_symlinks=False) else "file"
        except OSError:
            return None

    def lstat(self, path: str) -> os.stat_result | None:
        """The ``lstat`` of ``path``, read once; ``None`` when nothing is there or it cannot
        be read."""
        if path.rpartition("/")[0] in self._listed:
            entry = self._entries.get(path)
            if entry is None:
                return None
            try:
                return entry.stat(follow_symlinks=False)
            except OSError:
                return None
        try:
            return os.lstat(os.path.join(self.root, path))
        except OSError:
            return None


def walk_order(path: str) -> tuple[int, list[tuple[int, str]]]:
    """A bag path's place in a walk of the kit that lists the root's files, then ``data/``,
    each folder's files before its folders, each by name: the order warnings name files in.

    >>> sorted(["data/v/a/x", "data/index.html", "verifier.ps1", "data/v/b"], key=walk_order)
    ['verifier.ps1', 'data/index.html', 'data/v/b', 'data/v/a/x']
    """
    parts = path.split("/")
    if len(parts) == 1:
        return 0, [(0, path)]
    return 1, [*((1, folder) for folder in parts[1:-1]), (0, parts[-1])]


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False
