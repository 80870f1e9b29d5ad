"""Many questions, one read: a table read whole once a run has asked enough of its rows one
at a time, and kept until the catalog changes.

Apart from the queries because it is a policy, not SQL (a ski rental, tuned by
:data:`READ_AT_ONCE_AFTER` and :data:`READ_AT_ONCE_SHARE`): the catalog's readers of files
and of derived rows each hold one :class:`_AtOnce`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import ArchiveError
from .records import FileRecord

__all__ = ["READ_AT_ONCE_AFTER", "READ_AT_ONCE_SHARE"]

# A run asks a question of every file (is it held? its poster? restored?): after this many
# asked one at a time since the catalog last changed, and at least one for every
# READ_AT_ONCE_SHARE rows the last read at once held, the next is answered from one read of
# them all. Reading them all costs about as much as that many questions: a run that asks few
# between writes (a download, which records each file as it comes) never pays for it.
READ_AT_ONCE_AFTER = 64
READ_AT_ONCE_SHARE = 16

_T = TypeVar("_T")


class _AtOnce(Generic[_T]):
    """One table read whole, when enough of its questions have been asked since this
    connection last changed anything (``changes``: its ``total_changes``), and kept until it
    does: a ski rental, so that reading it whole never costs more than a share of the
    questions it answers."""

    def __init__(self, read: Callable[[], _T], size: Callable[[_T], int]) -> None:
        self._read, self._size = read, size
        self._held: tuple[int, _T] | None = None
        self._asked = 0  # questions asked one at a time since ``_since`` changes
        self._since = -1
        self._last_size = 0  # rows the last read held
        self._unreadable_at = -1  # changes when a read met a damaged row

    def get(self, changes: int) -> _T | None:
        """The table as of ``changes``, or ``None``: ask this question of the catalog.

        A table that cannot be read whole (a damaged row of some item) is asked question by
        question until it changes: only the items asked about meet the damage.
        """
        if self._held is not None:
            if self._held[0] == changes:
                return self._held[1]
            self._last_size, self._held = self._size(self._held[1]), None
        if self._since != changes:
            self._since, self._asked = changes, 0
        self._asked += 1
        wanted = max(READ_AT_ONCE_AFTER, self._last_size // READ_AT_ONCE_SHARE)
        if self._asked < wanted or self._unreadable_at == changes:
            return None
        try:
            self._held = (changes, self._read())
        except ArchiveError:
            self._unreadable_at = changes
            return None
        return self._held[1]


@dataclass(frozen=True)
class _Files:
    """Every version of every file by item (in role and version order), and the restores."""

    by_item: dict[str, list[FileRecord]]
    restores: dict[tuple[str, str], int]
    size: int

    def current(self, item_id: str) -> Iterator[FileRecord]:
        return (r for r in self.by_item.get(item_id, ()) if r.current)

    def restored(self, item_id: str, role: str) -> FileRecord | None:
        version = self.restores.get((item_id, role))
        found = (r for r in self.by_item.get(item_id, ()) if r.role == role)
        return next((r for r in found if r.version == version), None)
