"""The one progress protocol: what long work (a download, a kit, an audit) tells whoever shows
it. The core only reports; :mod:`archiver.cli.progress` draws the bars, and nothing is drawn
when no one watches (:class:`NullProgress`).

A run is a number of *tasks* (files) and, when known, a number of bytes. Each task is named by
a key; it may start more than once (a retry resumes it at ``done`` bytes, or restarts it at
0), and its bytes are counted once whatever happens.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

__all__ = ["NullProgress", "Progress"]


class Progress(Protocol):
    """What long work reports, in order: ``begin``, then per task ``started`` (again on each
    attempt), ``advance``, maybe ``retrying``, and ``finished`` once; ``end`` last."""

    def begin(self, tasks: int, total: int | None) -> None:
        """``tasks`` to do, ``total`` bytes in all when known (more may be learnt later)."""

    def started(self, key: Hashable, label: str, total: int | None, done: int) -> None:
        """An attempt at a task starts, ``done`` of its ``total`` bytes already there."""

    def advance(self, key: Hashable, count: int) -> None:
        """``count`` more bytes of the task."""

    def retrying(self, key: Hashable, label: str, attempt: int, delay: float, why: str) -> None:
        """The task's attempt failed; another starts in ``delay`` seconds."""

    def finished(self, key: Hashable, *, failed: bool) -> None:
        """The task is over, done or failed."""

    def end(self) -> None:
        """The work is over."""


class NullProgress:
    """Shows nothing: the default, for cron and for library use."""

    def begin(self, tasks: int, total: int | None) -> None:
        pass

    def started(self, key: Hashable, label: str, total: int | None, done: int) -> None:
        pass

    def advance(self, key: Hashable, count: int) -> None:
        pass

    def retrying(self, key: Hashable, label: str, attempt: int, delay: float, why: str) -> None:
        pass

    def finished(self, key: Hashable, *, failed: bool) -> None:
        pass

    def end(self) -> None:
        pass
